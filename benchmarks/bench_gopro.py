"""Reconstruction of real GoPro blur: PSNR of F(x, G(x, y)) vs y on real pairs, per model, crops and whole frames.

Run: python benchmarks/bench_gopro.py --data ../shared/data/gopro/pairs [--models gopro-small synth-small]
Writes benchmarks/results/gopro_reconstruction.{json,md}. With --refine N the crop rows also report F(x, k_N),
k_N = G(x, y) refined by N gradient steps on |F(x, k) - y| (kernelaug.learn.refine, as `kernelaug evaluate
--refine N` does; the gap to F(x, G(x, y)) is what G's one-shot code leaves). The pairs of --dependent (default: the four GOPR0477
pairs with S = 165, 171, 178, 198, made from the frames gopro-small was trained on) are reported apart from
the independent ones. Whole frames are 1280x720 cut to 1280x704 (a multiple of the 64-px code cell).
"""

from __future__ import annotations

import argparse
import fnmatch

import numpy as np
import torch

from _common import write_results
from kernelaug.data.pairs import find_pairs
from kernelaug.learn.evaluate import evaluate, load_crops
from kernelaug.models import load_model

DEPENDENT = ("*/GOPR0477_11_00/st_frame-165_*", "*/GOPR0477_11_00/st_frame-171_*",
             "*/GOPR0477_11_00/st_frame-178_*", "*/GOPR0477_11_00/st_frame-198_*")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True, help="real paired folder (GoPro layout)")
    parser.add_argument("--models", nargs="+", default=["gopro-small", "synth-small"])
    parser.add_argument("--dependent", nargs="*", default=list(DEPENDENT),
                        help="globs of pair ids that share frames with the training data")
    parser.add_argument("--crops", nargs="+", type=int, default=[256, 100_000], help="centre-crop sides (large: whole)")
    parser.add_argument("--refine", type=int, default=0, metavar="N",
                        help="also score codes refined by N gradient steps (crops under 1000 px only)")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    pairs = find_pairs(args.data)
    groups = {"independent": [p for p in pairs if not any(fnmatch.fnmatch(p.pair_id, g) for g in args.dependent)],
              "dependent": [p for p in pairs if any(fnmatch.fnmatch(p.pair_id, g) for g in args.dependent)]}
    rows = []
    for name in args.models:
        model = load_model(name)
        for crop in args.crops:
            for group, members in groups.items():
                if not members:
                    continue
                sharps, blurries = load_crops(members, crop, model.cell)
                result = evaluate(model, sharps, blurries, per_pair=True)
                if args.refine and crop < 1000:
                    refined = evaluate(model, sharps, blurries, per_pair=True, refine=args.refine)
                    result["refined_psnr"] = refined["recon_psnr"]
                    result["refined_psnr_per_pair"] = refined["recon_psnr_per_pair"]
                    result["refine_steps"] = args.refine
                rows.append({"model": name, "crop": "whole" if crop >= 10_000 else crop,
                             "size": list(sharps[0].shape[1:]), "group": group, "pair_ids": [p.pair_id for p in members],
                             **result})
                print(rows[-1]["model"], rows[-1]["crop"], group, f"{result['recon_psnr']:.2f}",
                      f"{result['blurry_psnr']:.2f}", flush=True)
    lines = ["| model | pairs | crop | F(x, G(x, y)) vs y | blurry vs sharp | gain | per pair gain (dB) | "
             f"G refined by {args.refine} steps | its gain | per pair gain (dB) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        blurry = np.array(r["blurry_psnr_per_pair"])
        gains = np.array(r["recon_psnr_per_pair"]) - blurry
        lines.append(f"| {r['model']} | {r['group']} ({r['pairs']}) | {r['crop']} ({r['size'][1]}x{r['size'][0]}) "
                     f"| {r['recon_psnr']:.2f} dB | {r['blurry_psnr']:.2f} dB | **{r['recon_psnr'] - r['blurry_psnr']:+.2f} dB** "
                     f"| {', '.join(f'{g:+.1f}' for g in gains)} | "
                     + (f"{r['refined_psnr']:.2f} dB | **{r['refined_psnr'] - r['blurry_psnr']:+.2f} dB** | "
                        + ", ".join(f"{g:+.1f}" for g in np.array(r["refined_psnr_per_pair"]) - blurry) + " |"
                        if "refined_psnr" in r else "- | - | - |"))
    print(write_results("gopro_reconstruction", {"data": args.data, "rows": rows}, "\n".join(lines)))


if __name__ == "__main__":
    main()
