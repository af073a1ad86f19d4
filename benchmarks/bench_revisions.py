"""The learned-blur transforms of two revisions of kernelaug, timed on the same machine, interleaved.

These machines' speed drifts by 10 % and more between runs minutes apart, so a speed-up measured
against an earlier results file says little. This script times both revisions in alternating
fresh processes (base, head, base, head, ...), one thread each, and reports head / base per round.
Each revision's ``kernelaug`` package is taken from git (``git archive``) into a temporary folder
and imported from there; both use this checkout's ``pretrained/`` files and installed packages.

Per 256x256 image: ``LearnedBlur`` on a numpy uint8 image and ``LearnedBlurBatch`` per image of a
batch of 32; ``LearnedBlur`` on a 720x1280 image; ``kernelaug.keep_freed_memory()`` called first,
best of ``--repeats`` rounds.

Run: python benchmarks/bench_revisions.py --base 3819a1b [--head HEAD] [--models gopro-small gopro-lean] [--rounds 3]
Writes benchmarks/results/revisions.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

from _common import write_results

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np, torch
import kernelaug as ka
assert ka.__file__.startswith(sys.argv[1]), ka.__file__
torch.set_num_threads(1)
ka.keep_freed_memory()
image = (np.random.default_rng(0).random((256, 256, 3)) * 255).astype(np.uint8)
large = (np.random.default_rng(2).random((720, 1280, 3)) * 255).astype(np.uint8)
batch = torch.from_numpy(np.random.default_rng(1).random((32, 3, 256, 256), dtype=np.float32))
repeats = int(sys.argv[3])

def best(fn, calls):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls)
    return min(times) * 1e3

out = {}
for name in sys.argv[2].split(","):
    engine = ka.LearnedBlur(name, seed=0)
    batched = ka.LearnedBlurBatch(name, seed=0)
    out[name] = {"LearnedBlur": best(lambda: engine(image), 40),
                 "LearnedBlurBatch": best(lambda: batched(batch), 1) / 32,
                 "LearnedBlur 720x1280": best(lambda: engine(large), 2)}
print(json.dumps(out))
"""


def extract(revision: str, into: Path) -> str:
    """``kernelaug/`` of ``revision`` under ``into``, beside a link to this checkout's pretrained files."""
    sha = subprocess.run(["git", "rev-parse", "--short", revision], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.strip()
    archive = subprocess.run(["git", "archive", sha, "kernelaug"], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    (into / "pretrained").symlink_to(ROOT / "pretrained")
    return sha


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the earlier revision (any git revision name)")
    parser.add_argument("--head", default="HEAD", help="the later revision (default HEAD: commit your changes first)")
    parser.add_argument("--models", nargs="+", default=["gopro-small", "gopro-lean"])
    parser.add_argument("--rounds", type=int, default=3, help="alternations of base and head")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds per measurement (the best is kept)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trees = {}
        for label in ("base", "head"):
            tree = Path(tmp) / label
            tree.mkdir()
            trees[label] = (extract(getattr(args, label), tree), tree)
        runs = []
        for round_ in range(args.rounds):
            for label, (sha, tree) in trees.items():
                result = subprocess.run([sys.executable, "-c", CHILD, str(tree), ",".join(args.models), str(args.repeats)],
                                        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
                if result.returncode:
                    sys.exit(f"the {label} revision {sha} failed:\n{result.stderr}")
                runs.append({"round": round_ + 1, "revision": label, "sha": sha, "ms": json.loads(result.stdout)})
                print(runs[-1], flush=True)
    lines = ["| model | transform | base ms per image, by round | head ms per image, by round | head / base, by round | median |",
             "|---|---|---|---|---|---|"]
    summary = {}
    for name in args.models:
        for transform in ("LearnedBlur", "LearnedBlurBatch", "LearnedBlur 720x1280"):
            base = [r["ms"][name][transform] for r in runs if r["revision"] == "base"]
            head = [r["ms"][name][transform] for r in runs if r["revision"] == "head"]
            ratios = [h / b for h, b in zip(head, base)]
            summary[f"{name} {transform}"] = statistics.median(ratios)
            lines.append(f"| {name} | {transform} | {' / '.join(f'{v:.2f}' for v in base)} | "
                         f"{' / '.join(f'{v:.2f}' for v in head)} | {' / '.join(f'{v:.2f}' for v in ratios)} | "
                         f"**{statistics.median(ratios):.2f}** |")
    base_sha, head_sha = trees["base"][0], trees["head"][0]
    body = (f"# kernelaug {head_sha} (head) against {base_sha} (base)\n\n"
            f"256x256 RGB unless named, one thread in each measuring process, `keep_freed_memory()` called first; best of {args.repeats} rounds per "
            f"measurement (`LearnedBlur`: 40 calls on a numpy uint8 image; `LearnedBlurBatch`: one batch of 32, "
            f"per image; `LearnedBlur 720x1280`: 2 calls, ms per image); each revision in its own fresh process, alternating base and head, {args.rounds} rounds.\n\n"
            + "\n".join(lines))
    print(write_results("revisions", {"settings": vars(args), "base": base_sha, "head": head_sha, "runs": runs,
                                      "median_ratio": summary}, body))


if __name__ == "__main__":
    main()
