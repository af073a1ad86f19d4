"""glibc allocator settings for processes that blur images in a loop.

F allocates and frees buffers of a few MB on every call. By default glibc serves such blocks with
mmap and hands them back to the kernel when they are freed (and trims the top of the heap), so the
next call page-faults the same memory in again: thousands of page faults per 256x256 image, up to
half of a learned blur's time on the CPU. :func:`keep_freed_memory` tells glibc to keep freed
memory for reuse instead; it is process-wide, so the library never calls it on its own (the
``kernelaug`` command line, which owns its process, does).
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
DEFAULT_THRESHOLD = 512 * 2**20


def keep_freed_memory(threshold: int = DEFAULT_THRESHOLD) -> bool:
    """Keep freed blocks below ``threshold`` bytes in this process instead of returning them to
    the kernel (glibc's ``mallopt`` M_MMAP_THRESHOLD and M_TRIM_THRESHOLD, as the environment
    variables ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` do at start-up).

    Call it once per process that runs the blur, e.g. in a DataLoader ``worker_init_fn``. The
    process then holds on to up to ``threshold`` bytes of freed memory. Returns True when glibc
    accepted both settings, False elsewhere (macOS, Windows, musl), where nothing changes."""
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0:
        raise ValueError(f"threshold must be a non-negative number of bytes, got {threshold!r}")
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    value = min(threshold, 2**31 - 1)
    return bool(mallopt(M_MMAP_THRESHOLD, value)) and bool(mallopt(M_TRIM_THRESHOLD, value))
