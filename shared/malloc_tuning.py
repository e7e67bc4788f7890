"""Large blocks go back to the system as soon as they are freed.

glibc serves a block of at least M_MMAP_THRESHOLD bytes with a mapping of its own, which
``free`` unmaps at once. But the threshold moves: freeing such a block raises it to the
block's size (up to 32 MiB), so after the first 8 MiB request every later one is carved
from the heap, and the heap keeps the pages after the request is gone. A server that
took a burst of large requests would then hold their memory for good. Setting the
threshold explicitly turns the moving off (mallopt(3)); 1 MiB keeps ordinary allocations
on the heap, where they are cheap.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 1024 * 1024


def return_large_blocks_to_the_system() -> bool:
    """Pin glibc's mmap threshold; False where there is no glibc (nothing changes)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
