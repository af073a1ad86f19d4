"""The learned blur with glibc's default allocator settings vs after ``kernelaug.keep_freed_memory()``.

The setting is process-wide and cannot be undone, so each measurement runs in a fresh process, the
two settings interleaved (default, kept, default, kept, ...); one thread each, as in a DataLoader
worker; each path in its own process, since what a process freed before changes glibc's automatic
thresholds. Per 256x256 image: best-of wall time and minor page faults of ``kernelaug.LearnedBlur``
(numpy uint8) and of ``model.apply``.

Run: python benchmarks/bench_allocator.py [--model synth-small] [--rounds 2]
Writes benchmarks/results/allocator.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from _common import write_results

CHILD = """
import json, resource, sys, time
import numpy as np, torch
import kernelaug as ka
torch.set_num_threads(1)
if sys.argv[2] == "kept":
    assert ka.keep_freed_memory()
aug = ka.LearnedBlur(sys.argv[1], p=1.0, seed=0)
image = (np.random.default_rng(0).random((256, 256, 3)) * 255).astype(np.uint8)
tensor = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
# zeros of the code's shape: the content does not change the cost, and extracting a code first
# would free large buffers that change glibc's automatic thresholds for what follows.
code = torch.zeros(1, aug.model.kernel_dim, 256 // aug.model.cell, 256 // aug.model.cell)

def measure(fn, calls=10, repeats=5):
    fn()
    best, faults = float("inf"), resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return {"ms": best * 1e3, "faults": (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / (calls * repeats)}

with torch.no_grad():
    if sys.argv[3] == "LearnedBlur (numpy uint8)":
        print(json.dumps(measure(lambda: aug(image))))
    else:
        print(json.dumps(measure(lambda: aug.model.apply(tensor, code))))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="synth-small")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    env = {"OMP_NUM_THREADS": "1"}
    names = ["LearnedBlur (numpy uint8)", "model.apply"]
    runs = []
    for round_ in range(args.rounds):
        for name in names:
            for setting in ("default", "kept"):
                out = subprocess.run([sys.executable, "-c", CHILD, args.model, setting, name], capture_output=True,
                                     text=True, check=True, env={**os.environ, **env})
                runs.append({"round": round_, "setting": setting, name: json.loads(out.stdout)})
    lines = ["| path | round | default: ms / faults per image | kept: ms / faults per image | default / kept |",
             "|---|---|---|---|---|"]
    for name in names:
        for round_ in range(args.rounds):
            d, k = (next(r[name] for r in runs if r["round"] == round_ and r["setting"] == s and name in r)
                    for s in ("default", "kept"))
            lines.append(f"| {name} | {round_ + 1} | {d['ms']:.1f} / {d['faults']:.0f} | {k['ms']:.1f} / {k['faults']:.0f} "
                         f"| {d['ms'] / k['ms']:.2f}x |")
    body = ("# Learned blur with glibc's default allocator vs `keep_freed_memory()`\n\n"
            f"Model `{args.model}`, 256x256, one thread, best of 5 rounds of 10 calls, each setting in a fresh "
            "process (interleaved).\n\n" + "\n".join(lines))
    print(write_results("allocator", {"settings": vars(args), "runs": runs}, body))
    print(body)


if __name__ == "__main__":
    main()
