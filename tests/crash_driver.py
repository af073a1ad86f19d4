"""Kill an extraction at every file write and flush, then resume it (run by tests/test_reliability.py).

``python crash_driver.py SPEC.json``: SPEC holds ``model``, ``data``, ``root`` (an empty folder),
``settings`` (keyword arguments of ``extract_bank``) and ``phase``:

* ``"extract"``: one uninterrupted extraction into ``root/reference/bank.h5``; then, for every call
  k of the run to a function that writes or flushes (``os.pwrite``/``write``/``fsync``/
  ``ftruncate``/``replace``/``rename``/``unlink`` and h5py dataset writes, resizes, attribute
  writes, flushes and closes), a run killed with ``os._exit`` just before call k into
  ``root/k<k>/bank.h5`` (for writes also one killed after writing half the bytes), resumed once.
* ``"resume"``: one run killed after its first committed batch; then, from a copy of its journal
  for each k, its resume killed just before call k, then resumed again.

Runs are forked children of this process (torch is imported once, with one thread, so forking is
safe). Prints one JSON line: the calls seen and, per run, its exit codes.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

import torch

torch.set_num_threads(1)

import h5py  # noqa: E402

import kernelaug.learn.extract as E  # noqa: E402

KILLED = 17
_WRITES = {"write", "pwrite"}
# os._exit keeps the page cache: for these kills an fsync changes nothing on disk. Each call still
# counts (and is a kill point); skipping the work saves seconds per hundred runs.
os.fsync = lambda fd: None


class Killer:
    """Counts calls to the wrapped functions and kills the process at call ``at``."""

    def __init__(self, at: int | None = None, torn: bool = False):
        self.at, self.torn, self.calls = at, torn, []

    def wrap(self, owner, name: str, label: str) -> None:
        original = getattr(owner, name)
        killer = self

        def wrapper(*args, **kwargs):
            killer.calls.append(label)
            if killer.at is not None and len(killer.calls) == killer.at:
                if killer.torn and name in _WRITES:
                    fd, data = args[0], bytes(args[1])
                    half = data[:max(1, len(data) // 2)]
                    original(fd, half, *args[2:])
                os._exit(KILLED)
            return original(*args, **kwargs)

        setattr(owner, name, wrapper)

    def install(self) -> "Killer":
        for name in ("write", "pwrite", "fsync", "ftruncate", "replace", "rename", "unlink"):
            self.wrap(os, name, f"os.{name}")
        for name in ("__setitem__", "resize"):
            self.wrap(h5py.Dataset, name, f"Dataset.{name}")
        self.wrap(h5py.AttributeManager, "__setitem__", "attrs.__setitem__")
        for name in ("flush", "close"):
            self.wrap(h5py.File, name, f"File.{name}")
        self.wrap(h5py.Group, "create_dataset", "Group.create_dataset")
        return self


def child(fn) -> int:
    """Run ``fn`` in a forked child; its exit code (0 done, KILLED, 1 on an exception)."""
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            fn()
        except BaseException:  # noqa: BLE001 -- reported through the exit code and stderr
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def main() -> None:
    spec = json.loads(open(sys.argv[1]).read())
    root, settings = spec["root"], spec["settings"]

    def extract(out, killer=None, **extra):
        def run():
            if killer is not None:
                killer.install()
            E.extract_bank(spec["model"], spec["data"], out, **{**settings, **extra})
        return run

    def counted(out, **extra) -> list[str]:
        counter_file = os.path.join(root, "calls.json")

        def run():
            killer = Killer().install()
            try:
                E.extract_bank(spec["model"], spec["data"], out, **{**settings, **extra})
            finally:
                with open(counter_file, "w") as handle:
                    handle.write(json.dumps(killer.calls))
        assert child(run) == 0
        return json.loads(open(counter_file).read())

    E.load_model(spec["model"])  # first use imports parts of torch: once here, not in every child
    report = {"runs": []}
    if spec["phase"] == "extract":
        reference = os.path.join(root, "reference", "bank.h5")
        os.makedirs(os.path.dirname(reference))
        report["calls"] = counted(reference)
        for k in range(1, len(report["calls"]) + 1):
            for torn in ((False, True) if report["calls"][k - 1].split(".")[-1] in _WRITES else (False,)):
                out = os.path.join(root, f"k{k}{'-torn' if torn else ''}", "bank.h5")
                os.makedirs(os.path.dirname(out))
                killed = child(extract(out, Killer(k, torn)))
                resumed = child(extract(out, resume=True))
                report["runs"].append({"k": k, "torn": torn, "call": report["calls"][k - 1], "out": out,
                                       "killed": killed, "resumed": resumed})
    else:
        start = os.path.join(root, "start", "bank.h5")
        os.makedirs(os.path.dirname(start))

        def killed_after_one_batch():
            E._batch_flushed = lambda path, done: os._exit(KILLED)
            E.extract_bank(spec["model"], spec["data"], start, **settings)
        assert child(killed_after_one_batch) == KILLED
        snapshot = open(start + ".partial", "rb").read()
        probe = os.path.join(root, "probe-resume", "bank.h5")
        os.makedirs(os.path.dirname(probe))
        with open(probe + ".partial", "wb") as handle:
            handle.write(snapshot)
        report["calls"] = counted(probe, resume=True)
        for k in range(1, len(report["calls"]) + 1):
            out = os.path.join(root, f"r{k}", "bank.h5")
            os.makedirs(os.path.dirname(out))
            with open(out + ".partial", "wb") as handle:
                handle.write(snapshot)
            killed = child(extract(out, Killer(k), resume=True))
            resumed = child(extract(out, resume=True))
            report["runs"].append({"k": k, "torn": False, "call": report["calls"][k - 1], "out": out,
                                   "killed": killed, "resumed": resumed})
    print(json.dumps(report))


if __name__ == "__main__":
    main()
