"""Throughput of offline augmentation (``kernelaug augment``) on one thread.

Sharp sources: the sharp images of the first ``--images`` held-out pairs of the synthetic shake
set (``kernelaug.data.synthetic.make_pair(2026, "test", i)``: deterministic, no dataset needed), at
256x256 and at 512x512. For each setting the whole command runs into a fresh folder (reading the
images, drawing, F, writing two PNGs per output, the manifest), ``--repeats`` times; the best round
is reported (the machine may be shared). A resume pass over a finished folder (everything skipped)
is timed too.

Run: python benchmarks/bench_augment.py [--model synth-small] [--images 16] [--per-image 4] [--repeats 3]
Writes benchmarks/results/augment.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import torch

from _common import add_allocator_option, apply_allocator_option, write_results
import kernelaug as ka
from kernelaug.tools.augment import AugmentSettings, augment_folder
from kernelaug.data.synthetic import make_pair


def write_sources(folder: Path, count: int, size: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        sharp, _, _ = make_pair(2026, "test", i, size=size)
        cv2.imwrite(str(folder / f"{i:03d}.png"), sharp[..., ::-1])


def best_run(model, bank, images: Path, work: Path, settings: AugmentSettings, repeats: int) -> tuple[float, dict]:
    best, summary = float("inf"), {}
    for _ in range(repeats):
        out = work / "out"
        shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        summary = augment_folder(model, bank, images, out, settings, progress=False)
        best = min(best, time.perf_counter() - start)
    return best, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="synth-small")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--per-image", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    add_allocator_option(parser)  # the kernelaug command keeps freed memory: measure it the same way
    args = parser.parse_args()
    allocator = apply_allocator_option(args)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)

    model = ka.load_model(args.model)
    bank = ka.KernelBank(ka.pretrained.bank_path(args.model))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size, count in ((256, args.images), (512, max(1, args.images // 4))):
            images = Path(tmp) / f"sharp{size}"
            write_sources(images, count, size)
            for mix in (0.0, 0.5):
                settings = AugmentSettings(per_image=args.per_image, mix=mix, seed=0)
                seconds, summary = best_run(model, bank, images, Path(tmp), settings, args.repeats)
                start = time.perf_counter()
                augment_folder(model, bank, images, Path(tmp) / "out", settings, progress=False)
                resume = time.perf_counter() - start
                outputs = summary["outputs"]
                rows.append({"size": size, "images": count, "per_image": args.per_image, "mix": mix,
                             "outputs": outputs, "learned": summary["learned"], "parametric": summary["parametric"],
                             "seconds": seconds, "outputs_per_s": outputs / seconds,
                             "ms_per_output": 1000 * seconds / outputs, "resume_all_skipped_s": resume})
                print(rows[-1])
    load = os.getloadavg()
    lines = [f"`kernelaug augment` with model {args.model}, torch/OpenCV threads {args.threads}, best of "
             f"{args.repeats} runs, each from scratch (read, draw, blur, write 2 PNGs per output, manifest). "
             f"Load average at the end: {tuple(round(v, 2) for v in load)}. {allocator}", "",
             "| image size | sources x per image | learned / parametric | outputs / s | ms / output | resume pass (all skipped) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['size']}x{r['size']} | {r['images']} x {r['per_image']} | {r['learned']} / {r['parametric']} "
                     f"| {r['outputs_per_s']:.1f} | {r['ms_per_output']:.1f} | {r['resume_all_skipped_s']:.2f} s |")
    path = write_results("augment", {"model": args.model, "threads": args.threads, "repeats": args.repeats,
                                     "keep_freed_memory": args.keep_freed_memory, "load_average": load, "rows": rows},
                         "\n".join(lines))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
