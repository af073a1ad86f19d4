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

Run: python benchmarks/bench_operator.py [--models gopro-small synth-small model.safetensors preset:psf-fast] [--size 256] [--repeats 7]
Writes benchmarks/results/operator.{json,md}.
"""

from __future__ import annotations

import argparse
import math

import torch

from _common import add_allocator_option, apply_allocator_option, best_per_call, write_results
import kernelaug as ka
from kernelaug.models.nonuniform import fast_fft_size
from kernelaug.models.pretrained import PRETRAINED


def best_ms(fn, calls: int, repeats: int) -> float:
    return best_per_call(fn, calls, repeats)[0] * 1e3


def fft_flops(n: int, count: int, real: bool) -> float:
    return count * (2.5 if real else 5.0) * n * math.log2(n)


def blur_flops(channels: int, height: int, width: int, cell: int, size: int, band: int) -> float:
    """The arithmetic of nonuniform_blur (see its docstring for the transforms)."""
    rows, cols, radius = height // cell, width // cell, size // 2
    n = fast_fft_size(cell + band + 2 * radius)
    freqs = n // 2 + 1
    tall = (rows - 1) * cell + n
    flops = fft_flops(n, channels * tall * cols, real=True)                   # rfft along x
    flops += 2 * fft_flops(n, channels * cols * freqs * rows, real=False)     # fft and ifft along y
    flops += 6 * channels * cols * freqs * rows * n                           # complex products
    flops += fft_flops(n, rows * cols * size, True) + fft_flops(n, rows * cols * freqs, False)  # PSF spectra
    flops += fft_flops(n, channels * rows * cell * cols, real=True)           # irfft along x, per image row
    flops += 4 * channels * cols * freqs * rows * (cell + band)               # weights and overlap-adds: y (complex)
    flops += 2 * channels * rows * cell * cols * (cell + band)                #  and x (real)
    return flops


def uniform_blur_flops(channels: int, height: int, width: int, size: int) -> float:
    """One forward and one inverse 2-D real FFT per channel of the image padded by the PSF."""
    tall, wide = fast_fft_size(height + size - 1), fast_fft_size(width + size - 1)
    pixels = tall * wide
    return 2 * channels * 2.5 * pixels * math.log2(pixels) + 6 * channels * tall * (wide // 2 + 1)


def load(spec: str, size: int):
    """A pretrained name with a code from its bank, or a model file or ``preset:NAME`` (untrained) with a
    seeded random code: the operator's cost does not depend on the code's values."""
    if spec.startswith("preset:"):
        torch.manual_seed(0)
        model = ka.build_model(spec.split(":", 1)[1]).eval()
    else:
        model = ka.load_model(spec).float().eval()
        if spec in PRETRAINED:
            bank = ka.resolve_bank(None, spec)
            return model, torch.from_numpy(bank.sample(1, rng=0, grid=model.code_shape(size, size)[1:]))
    return model, torch.randn(1, *model.code_shape(size, size), generator=torch.Generator().manual_seed(0)) * 0.1


def measure_model(name: str, size: int, calls: int, repeats: int) -> dict:
    model, code = load(name, size)
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    config = model.config
    cell, psf_size, width, scale = config.cell, config.psf_size, config.residual_width, config.residual_scale
    band = config.blend_band or cell
    pixels = size * size
    stages = []
    with torch.inference_mode():
        params = model.decode(code)
        curve, boost, log_gain = model.tone_maps(params, (size, size))
        linear = model.tone_in(x, curve, boost)
        blurred_linear = model.blur(linear, params)
        blurred = model.tone_out(blurred_linear, curve, log_gain)
        small = pixels / scale ** 2
        # Elementwise operations per pixel and channel of the tone stages (exp and log count as one): the
        # learned gamma's curves, or the lean presets' fixed ones (none for "linear", square and root for "square").
        tone_ops = {"gamma": (12, 9, 16), "linear": (4, 5, 9), "square": (4, 9, 13)}[config.tone_curve]
        conv_flops = 2 * small * 9 * (6 * width + width * 3) + 2 * small * width * 2  # + features, activation
        entries = [
            ("decode the code (PSFs, maps)", lambda: model.decode(code), 0.0),
            ("upsample the maps, gamma constants", lambda: model.tone_maps(params, (size, size)), tone_ops[0] * pixels),
            ("tone in: linear light, highlight boost", lambda: model.tone_in(x, curve, boost), 3 * pixels * tone_ops[1]),
            ("spatially varying blur (nonuniform_blur)", lambda: model.blur(linear, params),
             blur_flops(3, size, size, cell, psf_size, band)),
            ("tone out: gain, soft clip, display gamma", lambda: model.tone_out(blurred_linear, curve, log_gain),
             3 * pixels * tone_ops[2]),
            (f"residual network ({'none' if not width else f'width {width}, 1/{scale} resolution'})",
             # in place, as render runs it: each call adds its correction into `blurred` again (same cost)
             lambda: model.correct(blurred, x, params.features, in_place=True), conv_flops),
            ("model.apply (all of it)", lambda: model.apply(x, code), None),
        ]
        for label, fn, flops in entries:
            ms = best_ms(fn, calls, repeats)
            stages.append({"stage": label, "ms": round(ms, 3), "mflop": None if flops is None else round(flops / 1e6, 1)})
        stages[-1]["mflop"] = round(sum(s["mflop"] for s in stages[:-1]), 1)

        # Reference rates measured here, on the shapes the operator uses.
        n = fast_fft_size(cell + band + 2 * (psf_size // 2))
        windows = torch.rand(48, n, n)
        forward = best_ms(lambda: torch.fft.rfft(windows, dim=-1), calls, repeats)
        spectra = torch.fft.rfft(windows, dim=-1)
        inverse = best_ms(lambda: torch.fft.irfft(spectra, n=n, dim=-1), calls, repeats)
        fft_rate = 2 * fft_flops(n, 48 * n, real=True) / (forward + inverse) / 1e6
        features = torch.rand(1, 6, size, size)
        conv = torch.nn.Conv2d(6, 16, 3, padding=1)
        conv_rate = 2 * pixels * 9 * 6 * 16 / best_ms(lambda: conv(features), calls, repeats) / 1e6
        a, b = torch.rand(1, 3, size, size), torch.rand(1, 3, size, size)
        mul_rate = 3 * pixels / best_ms(lambda: a * b, calls * 10, repeats) / 1e6
    bound = uniform_blur_flops(3, size, size, psf_size) / (fft_rate * 1e9) + conv_flops / (conv_rate * 1e9)
    return {"model": name, "psf_size": psf_size, "cell": cell, "band": band, "fft_size": n, "stages": stages,
            "fft_gflops": round(fft_rate, 1), "conv_gflops": round(conv_rate, 1), "mul_gelems": round(mul_rate, 2),
            "bound_ms": round(bound * 1e3, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["gopro-small", "synth-small"])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=7)
    add_allocator_option(parser)
    args = parser.parse_args()
    allocator = apply_allocator_option(args)
    torch.set_num_threads(1)
    results = [measure_model(name, args.size, args.calls, args.repeats) for name in args.models]
    lines = [f"One {args.size}x{args.size} RGB image, one thread, best of {args.repeats} rounds of {args.calls} calls. "
             f"{allocator}", ""]
    for r in results:
        total = r["stages"][-1]
        lines += [f"### {r['model']} (PSF {r['psf_size']}x{r['psf_size']}, cell {r['cell']}, blending band "
                  f"{r['band']}, FFT windows {r['fft_size']})", "",
                  f"Measured here: 1-D FFTs of length {r['fft_size']} along the last axis (forward + inverse, the "
                  f"operator's own) {r['fft_gflops']} GFLOP/s; a 6->16 3x3 convolution at full size "
                  f"{r['conv_gflops']} GFLOP/s; an image-sized multiply {r['mul_gelems']} G elements/s.",
                  "", "| stage | ms | MFLOP | GFLOP/s reached |", "|---|---|---|---|"]
        for s in r["stages"]:
            rate = f"{s['mflop'] / s['ms']:.1f}" if s["mflop"] and s["ms"] else "-"
            lines.append(f"| {s['stage']} | {s['ms']:.3f} | {s['mflop'] if s['mflop'] is not None else '-'} | {rate} |")
        lines += ["", f"Lower bound at the measured rates (one uniform blur of the padded image by FFT, plus the "
                      f"residual's convolutions): {r['bound_ms']} ms, {total['ms'] / r['bound_ms']:.1f}x below "
                      f"the measured {total['ms']:.2f} ms.", ""]
    payload = {"size": args.size, "keep_freed_memory": args.keep_freed_memory, "results": results}
    print(write_results("operator", payload, "\n".join(lines)).read_text())


if __name__ == "__main__":
    main()
