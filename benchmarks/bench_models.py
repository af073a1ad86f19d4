"""Parameters and forward time per 256x256 image of each preset's F (apply) and G (extract), on this machine.

Run: python benchmarks/bench_models.py [--presets paper small psf] [--repeats 5]
Writes benchmarks/results/models.{json,md}. The reference code's paper-sized F took 0.26 s per image here.
"""

from __future__ import annotations

import argparse
import time

import torch

from _common import write_results
from kernelaug.models import build_model

REFERENCE_F_SECONDS = 0.26


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--presets", nargs="+", default=["paper", "small", "psf"])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = []
    for name in args.presets:
        model = build_model(name).eval()
        sharp, blurry = torch.rand(1, 3, args.size, args.size), torch.rand(1, 3, args.size, args.size)
        with torch.inference_mode():
            code = model.extract(sharp, blurry)
            f_time = best_time(lambda: model.apply(sharp, code), args.repeats)
            g_time = best_time(lambda: model.extract(sharp, blurry), args.repeats)
        rows.append({"preset": name, "arch": model.config.arch,
                     "parameters_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
                     "F_seconds": round(f_time, 4), "G_seconds": round(g_time, 4),
                     "F_vs_reference_figure": round(f_time / REFERENCE_F_SECONDS, 3)})
        print(rows[-1], flush=True)
    paper = next((r for r in rows if r["preset"] == "paper"), None)
    for row in rows:
        row["F_vs_paper_same_run"] = round(row["F_seconds"] / paper["F_seconds"], 3) if paper else None
    lines = [f"Forward time per {args.size}x{args.size} image, batch 1, best of {args.repeats}; "
             f"reference code's paper-sized F: {REFERENCE_F_SECONDS} s here.", "",
             "| preset | arch | parameters (M) | F apply (s) | G extract (s) | F / paper-preset F (this run) "
             "| F / 0.26 s reference figure |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['preset']} | {r['arch']} | {r['parameters_M']} | {r['F_seconds']} | {r['G_seconds']} | "
              f"{r['F_vs_paper_same_run']} | {r['F_vs_reference_figure']} |" for r in rows]
    print(write_results("models", {"size": args.size, "rows": rows}, "\n".join(lines)).read_text())


if __name__ == "__main__":
    main()
