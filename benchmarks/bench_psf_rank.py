"""Would a low-rank PSF basis pay? Its speed, and what F loses with it on real pairs.

Issue 17 lists "separable or low-rank PSF bases" among the means: instead of one FFT window per
cell, blur the whole image with R basis PSFs and mix the R results per pixel. With the cells' PSFs
P_c = sum_r A_cr B_r (the SVD of one image's cell PSFs) and blending weights w_c(p),

    sum_c w_c(p) (x * P_c)(p) = sum_r [sum_c w_c(p) A_cr] (x * B_r)(p),

so at full rank (R = number of cells) the basis blur is exactly ``nonuniform_blur``; a lower rank
fits the PSFs by their mean and R - 1 principal components (each fit still sums to 1). This script measures both sides of that trade:

* speed: ``nonuniform_blur`` against the basis blur at each rank (one whole-image ``rfft2``, R
  products and ``irfft2``s, the per-pixel mixing; the fit's SVD timed with it), 256x256 RGB, the model's
  PSF size and blending band, one thread, interleaved rounds;
* how much of the PSFs a rank holds: the relative Frobenius error of the rank-R fit of each image's
  16 cell PSFs (mean and principal components), decoded from ``--draws`` codes of the model's own bank on a 4x4 grid;
* quality: on the real GoPro pairs that share no frame with the shipped models' training frames
  (centre 256x256 crops), PSNR of F(x, G(x, y)) against y with the exact blur and with the basis
  blur at each rank (the same codes; only the blur stage changes).

Run: python benchmarks/bench_psf_rank.py --data ../shared/data/gopro/pairs [--models gopro-lean synth-lean]
Writes benchmarks/results/psf_rank.{json,md}.
"""

from __future__ import annotations

import argparse
import fnmatch
from unittest import mock

import torch
import torch.nn.functional as F

from _common import best_per_call, write_results
from bench_gopro import DEPENDENT
from kernelaug.bank.codes import adapt_grid
from kernelaug.bank import resolve_bank
from kernelaug.data.pairs import find_pairs
from kernelaug.learn.evaluate import load_crops
from kernelaug.metrics import psnr
from kernelaug.models import load_model, psf as psf_module
from kernelaug.models.nonuniform import cell_weights, fast_fft_size, nonuniform_blur


def blend_profiles(cells: int, cell: int, band: int) -> torch.Tensor:
    """Each cell's 1-D blending weight over the image's pixels, (cells, cells * cell)."""
    weights = cell_weights(cells, cell, band=band)
    full = torch.zeros(cells, cells * cell + band)
    for i in range(cells):
        full[i, i * cell:i * cell + cell + band] = weights[i]
    return full[:, band // 2:band // 2 + cells * cell]


def low_rank(psfs: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image's best fit of its cell PSFs (B, cells, K * K) by their mean and ``rank - 1`` principal
    components: (coefficients (B, cells, rank), basis (B, rank, K * K)). Every fitted PSF sums to 1,
    as the PSFs do (the components of the centred PSFs sum to 0)."""
    mean = psfs.mean(1, keepdim=True)
    _, _, vh = torch.linalg.svd(psfs - mean, full_matrices=False)
    components = vh[:, :rank - 1]
    basis = torch.cat((mean, components), 1)
    coefficients = torch.cat((torch.ones_like(psfs[..., :1]), (psfs - mean) @ components.transpose(1, 2)), -1)
    return coefficients, basis


def basis_blur(image: torch.Tensor, psfs: torch.Tensor, cell: int, band: int, rank: int) -> torch.Tensor:
    """``nonuniform_blur`` with each image's cell PSFs replaced by their rank-``rank`` fit
    (:func:`low_rank`), computed as ``rank`` whole-image convolutions mixed per pixel."""
    batch, rows, cols, size, _ = psfs.shape
    height, width = image.shape[-2:]
    radius = size // 2
    coefficients, basis = low_rank(psfs.reshape(batch, rows * cols, size * size), rank)
    coefficients = coefficients.reshape(batch, rows, cols, rank)
    basis = basis.reshape(batch, rank, size, size)
    tall, wide = fast_fft_size(height + 2 * radius), fast_fft_size(width + 2 * radius)
    padded = F.pad(image, (radius,) * 4, mode="replicate")
    spectrum = torch.fft.rfft2(padded, s=(tall, wide))                     # B, C, tall, wide / 2 + 1
    kernels = torch.fft.rfft2(basis, s=(tall, wide))                       # B, R, tall, wide / 2 + 1
    blurred = torch.fft.irfft2(spectrum[:, None] * kernels[:, :, None], s=(tall, wide))
    blurred = blurred[..., 2 * radius:2 * radius + height, 2 * radius:2 * radius + width]  # B, R, C, H, W
    maps = torch.einsum("iy,bijr,jx->bryx", blend_profiles(rows, cell, band), coefficients,
                        blend_profiles(cols, cell, band))                   # B, R, H, W
    return (blurred * maps[:, :, None]).sum(1)


def best_ms(fn) -> float:
    """Best of 10 calls, in ms."""
    return best_per_call(fn, calls=1, repeats=10)[0] * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True, help="real paired folder (GoPro layout)")
    parser.add_argument("--models", nargs="+", default=["gopro-lean", "synth-lean"])
    parser.add_argument("--ranks", nargs="+", type=int, default=[1, 2, 4, 8, 16])
    parser.add_argument("--draws", type=int, default=256, help="bank codes for the rank statistics")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    args = parser.parse_args()
    torch.set_num_threads(1)
    pairs = [p for p in find_pairs(args.data) if not any(fnmatch.fnmatch(p.pair_id, g) for g in DEPENDENT)]
    rows = []
    lines = ["| model | blur | ms, 256x256 | vs per-cell windows | PSF error, median / 90th pct | "
             "F vs real blurry | difference |", "|---|---|---|---|---|---|---|"]
    for name in args.models:
        model = load_model(name).eval().requires_grad_(False)
        cell, band = model.cell, model.config.blend_band or model.cell
        bank = resolve_bank(None, name)
        grid = adapt_grid(torch.from_numpy(bank.sample(args.draws, rng=0)), 4, 4, "resize")
        with torch.inference_mode():
            psfs = model.decode(grid).psf                                     # draws, 4, 4, K, K
        flat = psfs.flatten(3).flatten(1, 2).double()                         # draws, 16, K * K
        error = {}
        for rank in args.ranks:
            coefficients, basis = low_rank(flat, rank)
            error[rank] = (coefficients @ basis - flat).norm(dim=(1, 2)) / flat.norm(dim=(1, 2))

        generator = torch.Generator().manual_seed(0)
        image = torch.rand(1, 3, 256, 256, generator=generator)
        one = psfs[:1].clone()
        full = basis_blur(image, one, cell, band, 16)  # full rank: the same blur, or this script is wrong
        if not torch.allclose(full, nonuniform_blur(image, one, cell, band), atol=1e-4):
            raise AssertionError(f"{name}: the full-rank basis blur differs from nonuniform_blur")
        timings = {"windows": []} | {rank: [] for rank in args.ranks}
        for _ in range(args.rounds):  # interleaved: this machine drifts between runs minutes apart
            timings["windows"].append(best_ms(lambda: nonuniform_blur(image, one, cell, band)))
            for rank in args.ranks:
                timings[rank].append(best_ms(lambda rank=rank: basis_blur(image, one, cell, band, rank)))

        sharps, blurries = load_crops(pairs, 256, cell)
        exact, approximate = [], {rank: [] for rank in args.ranks}
        for sharp, blurry in zip(sharps, blurries):
            x, y = sharp[None], blurry[None]
            with torch.inference_mode():
                code = model.extract(x, y)
                exact.append(float(psnr(model.apply(x, code), y)[0]))
                for rank in args.ranks:
                    blur = lambda image, p, cell, band, rank=rank: basis_blur(image, p, cell, band, rank)  # noqa: E731
                    with mock.patch.object(psf_module, "nonuniform_blur", blur):
                        approximate[rank].append(float(psnr(model.apply(x, code), y)[0]))
        mean = lambda v: sum(v) / len(v)  # noqa: E731
        windows_ms = min(timings["windows"])
        lines.append(f"| {name} | per-cell windows (shipped) | {windows_ms:.2f} | 1 | exact | {mean(exact):.2f} dB | |")
        result = {"model": name, "psf_size": model.config.psf_size, "blend_band": band, "pairs": len(exact),
                  "windows_ms": timings["windows"], "exact_psnr": exact, "ranks": []}
        for rank in args.ranks:
            e = error[rank]
            ms, dbs = min(timings[rank]), approximate[rank]
            lines.append(f"| {name} | rank {rank} basis | {ms:.2f} | {ms / windows_ms:.2f}x | "
                         f"{e.median():.3f} / {e.quantile(0.9):.3f} | {mean(dbs):.2f} dB | "
                         f"{mean(dbs) - mean(exact):+.2f} dB |")
            result["ranks"].append({"rank": rank, "ms": timings[rank], "psf_error_median": float(e.median()),
                                    "psf_error_p90": float(e.quantile(0.9)), "psnr": dbs})
        rows.append(result)
        print("\n".join(lines), flush=True)
    text = "\n".join(lines) + (
        f"\n\nBlur: one 256x256 RGB image with one bank draw's 4x4 PSFs, one thread, best of 10 calls per round, "
        f"the best of {args.rounds} interleaved rounds; the basis blur's time includes the fit's SVD. PSF error: "
        f"relative Frobenius error of the fit of each image's 16 cell PSFs by their mean and R - 1 principal components, over {args.draws} draws "
        "from the model's bank (seed 0). PSNR: F(x, G(x, y)) against y on centre 256x256 crops of the real pairs "
        "that share no frame with the models' training frames, mean over pairs; the same codes with each blur.")
    print(text)
    write_results("psf_rank", {"rows": rows}, text)


if __name__ == "__main__":
    main()
