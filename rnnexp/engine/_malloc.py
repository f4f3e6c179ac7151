"""glibc's malloc, told to keep the NumPy engine's large temporaries in the heap.

A stacked step of the NumPy RNN allocates and frees arrays of a few hundred KB to a few MB (a
gradient of W_hh is M x H x H doubles: 1.2 MB at 60 members of hidden 50). Above its mmap
threshold glibc maps each such array afresh and unmaps it when freed, and past its trim
threshold it gives the heap's top back, so an epoch can pay the kernel's page faults for memory it
just returned. glibc raises both thresholds itself as it sees large blocks freed, but not always
soon: benchmarks/numpy_engine_bench.py, a fresh process per setting, gives a 60- to 480-member
stack 1.5-2x faster with the thresholds set (the mmap threshold at its ceiling, 32 MB, and the
heap trimmed only past 64 MB free) than without; a 1000-epoch Q1 sweep of 60-member stacks
48-56 against 35-40 ms a run. Over the Q1 tables' 5000 and 10000 epochs glibc gets there within
the run, and they take as long either way. The cost: at most 64 MB of freed memory kept by the
process. Other platforms, or a libc without mallopt, are left as they are.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX)
TRIM_THRESHOLD = 64 * 1024 * 1024

@functools.cache
def keep_large_blocks() -> bool:
    """Set the thresholds once per process; whether glibc took them."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and \
            bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
