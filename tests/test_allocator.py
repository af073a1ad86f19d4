"""keep_freed_memory: glibc keeps freed blocks, so a loop that allocates and frees buffers of a
few MB (as F does) stops page-faulting them in again on every call."""

import subprocess
import sys
import textwrap

import pytest

import kernelaug as ka

GLIBC = sys.platform.startswith("linux") and "glibc" in " ".join(__import__("platform").libc_ver())

LOOP = textwrap.dedent("""
    import resource, sys
    import numpy as np
    import kernelaug as ka
    if sys.argv[1] == "keep":
        assert ka.keep_freed_memory()
    if sys.argv[1] == "cli":  # any command, even one that fails, runs in a process that keeps freed memory
        from kernelaug.cli import main
        assert main(["bank-info", "no-such-bank.h5"]) == 2
    for _ in range(3):
        np.ones(40 * 2**20, np.uint8)
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        np.ones(40 * 2**20, np.uint8)          # allocated, written, freed
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start)
""")


def faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", LOOP, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


class TestKeepFreedMemory:
    @pytest.mark.parametrize("bad", [-1, 1.5, "512M", True])
    def test_bad_threshold_is_a_clear_error(self, bad):
        with pytest.raises(ValueError, match="threshold"):
            ka.keep_freed_memory(bad)

    @pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
    def test_freed_buffers_are_reused_instead_of_faulted_in_again(self):
        default, kept = faults("default"), faults("keep")
        # 40 MB is above glibc's largest automatic mmap threshold (32 MB): by default every buffer
        # is mapped afresh and faulted in (10240 small pages, or 20 transparent huge pages); kept,
        # the same heap memory is reused.
        assert default >= 20 * 10
        assert kept < default / 10

    @pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
    def test_the_command_line_keeps_freed_memory(self):
        assert faults("cli") < faults("default") / 10

    def test_import_does_not_change_the_allocator(self):
        assert faults("default") >= 20 * 10 or not GLIBC
