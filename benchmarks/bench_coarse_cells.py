"""Would coarser code cells pay? The blur's time with 128-px cells, and what F loses on real pairs.

The spatially varying blur is the largest stage of F (benchmarks/results/operator.md), and its FFT
windows are one cell plus the blending band plus the PSF's support: with 128-px cells instead of 64
there are a quarter as many windows, each about 1.5x as long. This script measures both sides of
that trade before anyone retrains for it:

* speed: ``nonuniform_blur`` of a 256x256 RGB image with the model's PSF size and blending band,
  cells of 64 and of 128 px, interleaved rounds on one thread;
* quality: on the real GoPro pairs that share no frame with the shipped models' training frames
  (centre 256x256 crops), F(x, k) against y with k refined by ``--steps`` Adam steps on |F(x, k) - y|
  (as kernelaug.learn.refine does), once free per 64-px cell and once held constant over 2x2 cells
  (what a 128-px cell can express; blending between equal PSFs changes nothing, so it is the
  128-px operator's blur up to its bilinear maps). Refined codes show what F can reach; a model
  trained at 128 px could not do better with the same operator.

Run: python benchmarks/bench_coarse_cells.py --data ../shared/data/gopro/pairs [--models gopro-lean gopro-small]
Writes benchmarks/results/coarse_cells.{json,md}.
"""

from __future__ import annotations

import argparse
import fnmatch
import time

import torch
import torch.nn.functional as F

from _common import write_results
from bench_gopro import DEPENDENT
from kernelaug.data.pairs import find_pairs
from kernelaug.learn.evaluate import load_crops
from kernelaug.learn.refine import REFINE_LR
from kernelaug.metrics import psnr
from kernelaug.models import load_model
from kernelaug.models.nonuniform import nonuniform_blur


def blur_ms(psf_size: int, band: int, cell: int, rounds: int) -> list[float]:
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 256, 256, generator=generator)
    psfs = torch.rand(1, 256 // cell, 256 // cell, psf_size, psf_size, generator=generator)
    psfs /= psfs.sum((-1, -2), keepdim=True)
    times = []
    for _ in range(rounds):
        nonuniform_blur(image, psfs, cell, band)
        best = float("inf")
        for _ in range(20):
            start = time.perf_counter()
            nonuniform_blur(image, psfs, cell, band)
            best = min(best, time.perf_counter() - start)
        times.append(best * 1e3)
    return times


def refined_psnr(model, sharp, blurry, code, expand, steps: int) -> float:
    """PSNR of F(x, expand(k)) against y after ``steps`` Adam steps on k. kernelaug.learn.refine_codes'
    loop, with the code expanded before F (the coarse code lives on 2x2 cells)."""
    code = code.detach().clone().requires_grad_(True)
    optimiser = torch.optim.Adam([code], lr=REFINE_LR)
    for _ in range(steps):
        loss = (model.apply(sharp, expand(code)) - blurry).abs().mean()
        (code.grad,) = torch.autograd.grad(loss, code)
        optimiser.step()
    with torch.no_grad():
        return float(psnr(model.apply(sharp, expand(code)), blurry)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True, help="real paired folder (GoPro layout)")
    parser.add_argument("--models", nargs="+", default=["gopro-lean", "gopro-small"])
    parser.add_argument("--steps", type=int, default=100, help="refinement steps per code")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    args = parser.parse_args()
    torch.set_num_threads(1)
    pairs = [p for p in find_pairs(args.data) if not any(fnmatch.fnmatch(p.pair_id, g) for g in DEPENDENT)]
    rows, lines = [], ["| model | blur, 64-px cells | blur, 128-px cells | ratio | pairs | blurry vs sharp | "
                       "F, refined per 64-px cell | F, refined per 128-px cell | difference |",
                       "|---|---|---|---|---|---|---|---|---|"]
    tile = lambda code: code.repeat_interleave(2, -1).repeat_interleave(2, -2)  # noqa: E731
    for name in args.models:
        model = load_model(name).eval().requires_grad_(False)
        size, band = model.config.psf_size, model.config.blend_band or model.cell
        fine_ms, coarse_ms = [], []
        for _ in range(args.rounds):  # interleaved: this machine drifts between runs minutes apart
            fine_ms += blur_ms(size, band, 64, 1)
            coarse_ms += blur_ms(size, band, 128, 1)
        sharps, blurries = load_crops(pairs, 256, model.cell)
        per_pair = []
        for pair, sharp, blurry in zip(pairs, sharps, blurries):
            x, y = sharp[None], blurry[None]
            with torch.no_grad():
                code = model.extract(x, y)
            per_pair.append({"pair_id": pair.pair_id, "blurry_psnr": float(psnr(x, y)[0]),
                             "fine": refined_psnr(model, x, y, code, lambda k: k, args.steps),
                             "coarse": refined_psnr(model, x, y, F.avg_pool2d(code, 2), tile, args.steps)})
            print(name, per_pair[-1], flush=True)
        mean = {key: sum(p[key] for p in per_pair) / len(per_pair) for key in ("blurry_psnr", "fine", "coarse")}
        fine, coarse = min(fine_ms), min(coarse_ms)
        rows.append({"model": name, "psf_size": size, "blend_band": band, "blur_ms_cell64": fine_ms,
                     "blur_ms_cell128": coarse_ms, "refine_steps": args.steps, "mean": mean, "pairs": per_pair})
        lines.append(f"| {name} | {fine:.2f} ms | {coarse:.2f} ms | {coarse / fine:.2f}x | {len(per_pair)} | "
                     f"{mean['blurry_psnr']:.2f} dB | {mean['fine']:.2f} dB | {mean['coarse']:.2f} dB | "
                     f"{mean['coarse'] - mean['fine']:+.2f} dB |")
    text = "\n".join(lines) + (
        f"\n\nBlur: `nonuniform_blur` of one 256x256 RGB image, one thread, best of 20 calls per round, the "
        f"best of {args.rounds} interleaved rounds. PSNR: centre 256x256 crops of the real pairs that share no "
        f"frame with the models' training frames, codes refined by {args.steps} Adam steps (lr {REFINE_LR}) "
        "from G's code, per 64-px cell or held constant over 2x2 cells (started from G's code averaged over them).")
    print(text)
    write_results("coarse_cells", {"rows": rows}, text)


if __name__ == "__main__":
    main()
