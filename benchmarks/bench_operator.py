"""How far the learned blur F is from this machine's limit: FLOPs, time and FLOP/s of each stage.

For each model (``--models``, default both shipped ones) and one ``--size`` x ``--size`` RGB image on
one thread, the stages of ``PsfBlurModel.render`` are timed one by one, each with the same functions
render calls: decoding the code, the tone curve into linear light (gamma curve and highlight boost),
the spatially varying blur (``nonuniform_blur``), the tone curve back (gain, soft clip, display
gamma) and the residual network. Each stage's arithmetic is counted analytically (an FFT of length
n: 2.5 n log2 n flops real, 5 n log2 n complex; a convolution: 2 flops per multiply-add; an
elementwise op: 1 flop per element), and set against rates measured in the same process: a batch of
FFTs of the blur's own window size, a 3x3 convolution of the residual's own shape, and a
multiply of an image-sized tensor. The lower bound beside them is one uniform blur of the image
(one forward and one inverse FFT per channel of the image padded by the PSF) plus the residual's
convolutions: what any operator with this PSF size and residual network must pay.

Run: python benchmarks/bench_operator.py [--models gopro-small synth-small] [--size 256] [--repeats 7]
Writes benchmarks/results/operator.{json,md}.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F

from _common import write_results
import kernelaug as ka
from kernelaug.models.nonuniform import fast_fft_size, nonuniform_blur
from kernelaug.models.psf import GammaCurve, add_upsampled, conv3x3_by_taps, soft_clip, upsample_bilinear


def best_ms(fn, calls: int, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e3


def fft_flops(n: int, count: int, real: bool) -> float:
    return count * (2.5 if real else 5.0) * n * math.log2(n)


def blur_flops(channels: int, height: int, width: int, cell: int, size: int) -> float:
    """The arithmetic of nonuniform_blur (see its docstring for the transforms)."""
    rows, cols, radius = height // cell, width // cell, size // 2
    n = fast_fft_size(2 * cell + 2 * radius)
    freqs = n // 2 + 1
    tall = (rows - 1) * cell + n
    flops = fft_flops(n, channels * tall * cols, real=True)                   # rfft along x
    flops += 2 * fft_flops(n, channels * cols * freqs * rows, real=False)     # fft and ifft along y
    flops += 6 * channels * cols * freqs * rows * n                           # complex products
    flops += fft_flops(n, rows * cols * size, True) + fft_flops(n, rows * cols * freqs, False)  # PSF spectra
    flops += fft_flops(n, channels * (rows + 1) * cell * cols, real=True)     # irfft along x
    flops += 4 * channels * ((rows + 1) * cell) * (cols + 1) * cell * 2       # weights and overlap-adds
    return flops


def uniform_blur_flops(channels: int, height: int, width: int, size: int) -> float:
    """One forward and one inverse 2-D real FFT per channel of the image padded by the PSF."""
    tall, wide = fast_fft_size(height + size - 1), fast_fft_size(width + size - 1)
    pixels = tall * wide
    return 2 * channels * 2.5 * pixels * math.log2(pixels) + 6 * channels * tall * (wide // 2 + 1)


def measure_model(name: str, size: int, calls: int, repeats: int) -> dict:
    model = ka.load_model(name).float().eval()
    bank = ka.resolve_bank(name)
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    code = torch.from_numpy(bank.sample(1, rng=0, grid=model.code_shape(size, size)[1:]))
    cell, psf_size, width = model.cell, model.config.psf_size, model.config.residual_width
    pixels = size * size
    stages = []
    with torch.inference_mode():
        params = model.decode(code)
        maps = upsample_bilinear(torch.cat((params.log_gamma, params.boost, params.log_gain), dim=1), (size, size))
        curve = GammaCurve(maps[:, :1].exp().mul(model.gamma))
        knee = torch.sigmoid(model.knee_raw)

        def tone_in():
            linear = curve.to_linear(x)
            return torch.addcmul(linear, maps[:, 1:2], F.relu(linear - knee).div(1 - knee))

        linear = tone_in()
        blurred_linear = nonuniform_blur(linear, params.psf, cell)

        def tone_out():
            gained = blurred_linear.mul(maps[:, 2:3].exp())
            return curve.to_display(soft_clip(gained, model.sharpness_raw.exp()))

        blurred = tone_out()
        first, act, last = model.residual

        def residual():
            hidden = act(add_upsampled(first(torch.cat((blurred, x), dim=1)), params.features))
            return blurred + conv3x3_by_taps(hidden, last.weight, last.bias)

        def maps_and_curve():
            grid = upsample_bilinear(torch.cat((params.log_gamma, params.boost, params.log_gain), dim=1), (size, size))
            return GammaCurve(grid[:, :1].exp().mul(model.gamma))

        conv_flops = 2 * pixels * 9 * (6 * width + width * 3) + 2 * pixels * width * 2  # + features, activation
        entries = [
            ("decode the code (PSFs, maps)", lambda: model.decode(code), 0.0),
            ("upsample the maps, gamma constants", maps_and_curve, 12 * pixels),
            ("tone in: linear light, highlight boost", tone_in, 3 * pixels * 9),
            ("spatially varying blur (nonuniform_blur)", lambda: nonuniform_blur(linear, params.psf, cell),
             blur_flops(3, size, size, cell, psf_size)),
            ("tone out: gain, soft clip, display gamma", tone_out, 3 * pixels * 14),
            ("residual network (two 3x3 convolutions)", residual, conv_flops),
            ("model.apply (all of it)", lambda: model.apply(x, code), None),
        ]
        for label, fn, flops in entries:
            ms = best_ms(fn, calls, repeats)
            stages.append({"stage": label, "ms": round(ms, 3), "mflop": None if flops is None else round(flops / 1e6, 1)})
        total_flops = sum(s["mflop"] for s in stages[:-1]) * 1e6
        stages[-1]["mflop"] = round(total_flops / 1e6, 1)

        # Reference rates measured here, on the shapes the operator uses.
        n = fast_fft_size(2 * cell + 2 * (psf_size // 2))
        windows = torch.rand(48, n, n)
        fft_ms = best_ms(lambda: torch.fft.rfft2(windows), calls, repeats)
        spectra = torch.fft.rfft2(windows)
        ifft_ms = best_ms(lambda: torch.fft.irfft2(spectra, s=(n, n)), calls, repeats)
        fft_rate = 2 * fft_flops(n * n, 48, real=True) / (fft_ms + ifft_ms) / 1e6
        features = torch.rand(1, 6, size, size)
        conv = torch.nn.Conv2d(6, width, 3, padding=1)
        conv_rate = 2 * pixels * 9 * 6 * width / best_ms(lambda: conv(features), calls, repeats) / 1e6
        a, b = torch.rand(1, 3, size, size), torch.rand(1, 3, size, size)
        mul_rate = 3 * pixels / best_ms(lambda: a * b, calls * 10, repeats) / 1e6
    bound = uniform_blur_flops(3, size, size, psf_size) / (fft_rate * 1e6) + conv_flops / (conv_rate * 1e6)
    return {"model": name, "psf_size": psf_size, "cell": cell, "fft_size": n, "stages": stages,
            "fft_gflops": round(fft_rate, 1), "conv_gflops": round(conv_rate, 1), "mul_gelems": round(mul_rate, 2),
            "bound_ms": round(bound * 1e3, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["gopro-small", "synth-small"])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = [measure_model(name, args.size, args.calls, args.repeats) for name in args.models]
    lines = [f"One {args.size}x{args.size} RGB image, one thread, best of {args.repeats} rounds of {args.calls} calls.", ""]
    for r in results:
        total = r["stages"][-1]
        lines += [f"### {r['model']} (PSF {r['psf_size']}x{r['psf_size']}, cell {r['cell']}, FFT windows {r['fft_size']})", "",
                  f"Measured here: FFTs of {r['fft_size']}x{r['fft_size']} windows (forward + inverse) "
                  f"{r['fft_gflops']} GFLOP/s; the residual's 6->{ka.load_model(r['model']).config.residual_width} "
                  f"3x3 convolution {r['conv_gflops']} GFLOP/s; an image-sized multiply {r['mul_gelems']} G elements/s.",
                  "", "| stage | ms | MFLOP | GFLOP/s reached |", "|---|---|---|---|"]
        for s in r["stages"]:
            rate = f"{s['mflop'] / s['ms']:.1f}" if s["mflop"] and s["ms"] else "-"
            lines.append(f"| {s['stage']} | {s['ms']:.3f} | {s['mflop'] if s['mflop'] is not None else '-'} | {rate} |")
        lines += ["", f"Lower bound at the measured rates (one uniform blur of the padded image by FFT, plus the "
                      f"residual's convolutions): {r['bound_ms']} ms, {total['ms'] / r['bound_ms']:.1f}x below "
                      f"the measured {total['ms']:.2f} ms.", ""]
    print(write_results("operator", {"size": args.size, "results": results}, "\n".join(lines)).read_text())


if __name__ == "__main__":
    main()
