"""Blind deblurring (generic, DIP prior): PSNR / SSIM of the result against the sharp image on held-out
synthetic pairs, next to the blurry input's; then the two real blurry seed photos as pictures.

    OMP_NUM_THREADS=1 python benchmarks/bench_deblur.py --data data/synth --pairs 4 --crop 128 \
        --photo-iterations 400

Writes benchmarks/results/deblur.{json,md} (rewritten after every image, so a cut-off run keeps
what it measured) and docs/deblur_*.jpg.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch
from skimage.metrics import structural_similarity

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._common import write_results  # noqa: E402
from kernelaug.bank import KernelBank  # noqa: E402
from kernelaug.models.checkpoint import load_model  # noqa: E402
from kernelaug.data.pairs import find_pairs, read_image, read_pair  # noqa: E402
from kernelaug.deblur import deblur_generic, resolve_preset  # noqa: E402
from kernelaug.metrics import aligned_psnr, psnr  # noqa: E402
from kernelaug.tools.pictures import label, write_picture  # noqa: E402
from kernelaug.models.pretrained import bank_path  # noqa: E402
from kernelaug.tools.transfer import to_tensor, to_uint8  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def scores(estimate: torch.Tensor, sharp: torch.Tensor) -> tuple[float, float]:
    ssim = structural_similarity(to_uint8(estimate), to_uint8(sharp), channel_axis=2, data_range=255)
    return float(psnr(estimate, sharp)[0]), float(ssim)


def write_figure(path: Path, panels: list[tuple[str, torch.Tensor]]) -> None:
    write_picture(path, np.hstack([label(to_uint8(image), text) for text, image in panels]))


def markdown(payload: dict) -> str:
    rows = payload["pairs"]
    lines = [f"Generic blind deblurring (DIP prior), preset `{payload['preset']}` ({payload['iterations']} "
             f"iterations after {payload['warmup']} warm-up steps per DIP), model `{payload['model']}`, start "
             f"code: the bank's mean. Held-out pairs of `{payload['data']}` (split test), "
             f"{payload['crop']}x{payload['crop']} centre crops, one thread; PSF-centring weight "
             f"{payload.get('centre_weight', 0)}.", "",
             "| pair | blurry PSNR | result PSNR | blurry / result PSNR, aligned (shift) | blurry SSIM | result SSIM "
             "| re-blur vs input | time |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['pair']} | {r['blurry_psnr']:.2f} | {r['result_psnr']:.2f} | {r['blurry_aligned_psnr']:.2f} / "
                     f"{r['result_aligned_psnr']:.2f} {tuple(r['result_shift'])} | {r['blurry_ssim']:.3f} | "
                     f"{r['result_ssim']:.3f} | {r['reblur_psnr']:.2f} | {r['seconds']:.0f} s |")
    if rows:
        keys = ("blurry_psnr", "result_psnr", "blurry_aligned_psnr", "result_aligned_psnr", "blurry_ssim", "result_ssim")
        mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
        lines.append(f"| **mean of {len(rows)}** | {mean['blurry_psnr']:.2f} | {mean['result_psnr']:.2f} | "
                     f"{mean['blurry_aligned_psnr']:.2f} / {mean['result_aligned_psnr']:.2f} | "
                     f"{mean['blurry_ssim']:.3f} | {mean['result_ssim']:.3f} | | |")
    lines += ["", "Aligned: PSNR after the best integer shift of the image within +-4 px, on the interior every "
              "shift covers (blind deconvolution cannot tell a shifted image under an off-centre PSF from the "
              "unshifted one)."]
    if payload["photos"]:
        lines += ["", f"Real blurry photos (no ground truth), whole 256x256 frames, "
                  f"{payload['photo_iterations']} iterations after {payload['warmup']} warm-up steps:", "",
                  "| photo | re-blur vs input | time | figure |", "|---|---|---|---|"]
        for r in payload["photos"]:
            lines.append(f"| {r['photo']} | {r['reblur_psnr']:.2f} dB | {r['seconds']:.0f} s | `{r['figure']}` |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="synth-small")
    parser.add_argument("--data", required=True, help="a paired dataset; the shipped bank's own: "
                        "kernelaug make-synthetic data/synth --pairs 2000 --size 256 --seed 2026 --workers 2")
    parser.add_argument("--pairs", type=int, default=5, help="held-out pairs, spread evenly over the test split")
    parser.add_argument("--crop", type=int, default=128, help="centre-crop side of each synthetic pair")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--iterations", type=int)
    parser.add_argument("--warmup", type=int)
    parser.add_argument("--photo-iterations", type=int,
                        help="main iterations for the real photos (default: as for the pairs)")
    parser.add_argument("--photos", nargs="*", default=["examples/images/blur1.png", "examples/images/blur2.png"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--centre-weight", type=float, help="weight of the PSF-centring term (default: the preset's)")
    parser.add_argument("--pair-ids", nargs="+", help="these test pairs (e.g. shake_0008/000085) instead of --pairs")
    parser.add_argument("--name", default="deblur", help="results/<name>.{json,md}")
    args = parser.parse_args()

    torch.set_num_threads(1)
    model = load_model(args.model)
    bank = KernelBank(bank_path(args.model))
    preset = resolve_preset(args.preset, args.iterations, args.warmup)
    if args.centre_weight is not None:
        preset = dataclasses.replace(preset, centre_weight=args.centre_weight)
    test = find_pairs(args.data, split="test")
    if args.pair_ids:
        by_id = {pair.pair_id.removeprefix("test/"): pair for pair in test}
        missing = [i for i in args.pair_ids if i.removeprefix("test/") not in by_id]
        if missing:
            parser.error(f"no test pairs {missing} in {args.data}")
        chosen = [by_id[i.removeprefix("test/")] for i in args.pair_ids]
    else:
        chosen = [test[i] for i in np.linspace(0, len(test) - 1, args.pairs).round().astype(int)]
    payload = {"model": args.model, "data": args.data, "crop": args.crop, "preset": preset.name,
               "iterations": preset.iterations, "warmup": preset.warmup_iterations,
               "centre_weight": preset.centre_weight, "pairs": [], "photos": [],
               "photo_iterations": args.photo_iterations or preset.iterations}

    def run(blurry, iterations=None):
        return deblur_generic(blurry, model, bank=bank, start_code="mean", preset=preset, iterations=iterations,
                              seed=args.seed)

    for i, pair in enumerate(chosen):
        sharp, blurry = read_pair(pair)
        top, left = (sharp.shape[0] - args.crop) // 2, (sharp.shape[1] - args.crop) // 2
        window = (slice(top, top + args.crop), slice(left, left + args.crop))
        sharp, blurry = to_tensor(sharp[window]), to_tensor(blurry[window])
        result = run(blurry)
        blurry_psnr, blurry_ssim = scores(blurry, sharp)
        result_psnr, result_ssim = scores(result.sharp, sharp)
        aligned, shift = aligned_psnr(result.sharp, sharp)
        blurry_aligned, _ = aligned_psnr(blurry, sharp)
        payload["pairs"].append({"pair": pair.pair_id, "blurry_psnr": blurry_psnr, "result_psnr": result_psnr,
                                 "blurry_ssim": blurry_ssim, "result_ssim": result_ssim,
                                 "blurry_aligned_psnr": blurry_aligned, "result_aligned_psnr": aligned,
                                 "result_shift": shift,
                                 "reblur_psnr": float(psnr(result.reblurred, blurry)[0]),
                                 "seconds": result.seconds, "final_loss": result.losses[-1] if result.losses else None})
        if i == 0 and args.name == "deblur":
            write_figure(ROOT / "docs" / "deblur_synthetic.jpg",
                         [("blurry", blurry), ("deblurred", result.sharp), ("sharp", sharp)])
        write_results(args.name, payload, markdown(payload))
        print(f"{pair.pair_id}: {blurry_psnr:.2f} -> {result_psnr:.2f} dB (aligned {blurry_aligned:.2f} -> "
              f"{aligned:.2f}, shift {shift}), SSIM {blurry_ssim:.3f} -> {result_ssim:.3f} ({result.seconds:.0f} s)",
              flush=True)

    for photo in args.photos:
        blurry = to_tensor(read_image(ROOT / photo))
        result = run(blurry, args.photo_iterations)
        figure = Path("docs") / f"deblur_{Path(photo).stem}.jpg"
        write_figure(ROOT / figure, [("blurry", blurry), ("deblurred", result.sharp)])
        payload["photos"].append({"photo": photo, "reblur_psnr": float(psnr(result.reblurred, blurry)[0]),
                                  "seconds": result.seconds, "figure": str(figure)})
        write_results(args.name, payload, markdown(payload))
        print(f"{photo}: re-blur {payload['photos'][-1]['reblur_psnr']:.2f} dB ({result.seconds:.0f} s)", flush=True)

    rows = payload["pairs"]
    if rows:
        print(f"{len(rows)} pairs: PSNR {np.mean([r['blurry_psnr'] for r in rows]):.2f} -> "
              f"{np.mean([r['result_psnr'] for r in rows]):.2f} dB, SSIM {np.mean([r['blurry_ssim'] for r in rows]):.3f} -> "
              f"{np.mean([r['result_ssim'] for r in rows]):.3f}; {len(payload['photos'])} photos")


if __name__ == "__main__":
    main()
