"""Linux ``prctl(2)`` for the process attributes the executor sets on itself (subreaper.py,
privacy.py): one binding, errors as OSError."""

from __future__ import annotations

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)
_libc.prctl.argtypes = [
    ctypes.c_int,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
]
_libc.prctl.restype = ctypes.c_int


def prctl(option: int, arg: int, name: str) -> int:
    """``prctl(option, arg, 0, 0, 0)``; its result, or OSError naming the option."""
    result = _libc.prctl(option, arg, 0, 0, 0)
    if result < 0:
        error = ctypes.get_errno()
        raise OSError(error, f"prctl({name}): {os.strerror(error)}")
    return int(result)
