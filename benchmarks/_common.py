"""What every benchmark records beside its numbers: the machine and the command."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from kernelaug.runinfo import machine_info

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    return machine_info()


def command() -> str:
    return "python " + " ".join(sys.argv)


def add_allocator_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keep-freed-memory", action=argparse.BooleanOptionalAction, default=True,
                        help="call kernelaug.keep_freed_memory() first, as the README asks of every process "
                             "that blurs in a loop (default); --no-keep-freed-memory: glibc's defaults")


def apply_allocator_option(args: argparse.Namespace) -> str:
    """Apply ``--keep-freed-memory``; returns the sentence the results state it in."""
    import kernelaug as ka

    if args.keep_freed_memory and ka.keep_freed_memory():
        return "Allocator: `kernelaug.keep_freed_memory()` called first (freed memory kept for reuse)."
    return "Allocator: glibc's defaults (freed blocks handed back to the kernel)."


def write_results(name: str, payload: dict, markdown: str) -> Path:
    """Write results/<name>.json and results/<name>.md, each naming the machine and command."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"command": command(), "machine": machine(), **payload}
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    header = f"Command: `{payload['command']}`\n\nMachine: {json.dumps(payload['machine'])}\n\n"
    (RESULTS / f"{name}.md").write_text(header + markdown + "\n")
    return RESULTS / f"{name}.md"


def best_per_call(fn, calls: int, repeats: int, reset=None) -> tuple[float, float]:
    """Best wall-clock and best process CPU seconds per call over ``repeats`` rounds of ``calls``.

    CPU time (all threads of this process) is the steadier figure on a shared machine: time spent
    waiting for a core while other jobs run is not counted in it. ``reset`` (untimed, before every
    round) reseeds a transform whose cost depends on its random draws, so that every round times
    the same draws: without it the best round is the one that drew the cheapest parameters."""
    fn()  # warm-up
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        if reset is not None:
            reset()
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
        best_cpu = min(best_cpu, (time.process_time() - start_cpu) / calls)
    return best, best_cpu
