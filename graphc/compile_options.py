"""gc.compile's options that outlive one call: the thread count (gc.set_num_threads) and progress reporting.

Imports nothing from graphc (numpy and the standard library only); compile.py uses it.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

import numpy as np

# --- threads -------------------------------------------------------------------------------


def usable_cores() -> int:
    """The CPUs this process may run on: its affinity mask where the OS has one, else the CPU count."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


_NUM_THREADS: list[int] = []  # what gc.set_num_threads chose; empty: the usable cores


def check_threads(value: object, what: str) -> int:
    """`value` as a thread count (an int >= 1); TypeError or ValueError naming `what` otherwise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what}: the number of threads must be an int >= 1, got {value!r} ({type(value).__name__})")
    if value < 1:
        raise ValueError(f"{what}: the number of threads must be >= 1, got {value}")
    return int(value)


def check_flag(value: object, name: str, what: str) -> bool:
    """`value` as a yes/no option: a bool (or NumPy bool); TypeError naming the option otherwise.

    An int, a string or None where a flag goes is refused rather than read by its truth:
    `check_finite=1` or `optimize="no"` (which is true) would otherwise pass silently.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{what}: {name} must be True or False, got {value!r} ({type(value).__name__})")
    return bool(value)


def set_num_threads(n: int) -> None:
    """gc.set_num_threads: the threads that functions compiled from now on share large kernels among.

    `gc.compile(..., threads=None)` takes this number; functions compiled earlier keep
    theirs (the count is part of their machine code). The default is the cores this
    process may use (os.sched_getaffinity). Results do not depend on it.
    """
    count = check_threads(n, "gc.set_num_threads")
    _NUM_THREADS[:] = [count]


def get_num_threads() -> int:
    """gc.get_num_threads: the thread count gc.compile uses by default (gc.set_num_threads, else the usable cores)."""
    return _NUM_THREADS[0] if _NUM_THREADS else usable_cores()


# --- progress ------------------------------------------------------------------------------

Progress = Callable[[str, int, int], object]
PROGRESS_AFTER_S = 2.0
"""progress=None stays quiet for compiles shorter than this (a module constant, so tests can lower it)."""


class Reporter:
    """gc.compile's progress: the callback at each stage, or stderr lines once the compile runs long.

    Lines: once `after` seconds have passed (a timer notices it during a long stage), one
    line for the stage running then and one for each stage that starts later, and a last
    line with the total time. `after=0` reports every stage; None never prints.
    """

    def __init__(self, callback: Progress | None, after: float | None, what: str, stream: TextIO) -> None:
        self.callback = callback
        self.after = after
        self.what = what
        self.stream = stream
        self.start = time.perf_counter()
        self.stage = ""
        self.done = 0
        self.total = 0
        self.spoke = False
        self.lock = threading.Lock()
        self.timer: threading.Timer | None = None
        if after is not None and after > 0:
            self.timer = threading.Timer(after, self._late)
            self.timer.daemon = True
            self.timer.start()

    def begin(self, stage: str, done: int, total: int) -> None:
        """Stage `stage` starts, `done` of `total` stages being done."""
        with self.lock:
            self.stage, self.done, self.total = stage, done, total
            if self.after is not None and time.perf_counter() - self.start >= self.after:
                self._say()
        if self.callback is not None:
            self.callback(stage, done, total)

    def close(self) -> None:
        """Stop the timer: nothing is printed after this (a compile that failed says no more)."""
        if self.timer is not None:
            self.timer.cancel()
        with self.lock:
            self.after = None

    def finish(self) -> None:
        """Every stage is done: the callback hears ("done", total, total); a compile that spoke says its time."""
        self.close()
        if self.callback is not None:
            self.callback("done", self.total, self.total)
        if self.spoke:
            self.stream.write(f"graphc: compiled {self.what} in {time.perf_counter() - self.start:.1f} s\n")
            self.stream.flush()

    def _late(self) -> None:
        with self.lock:
            if self.after is not None and self.stage:
                self._say()

    def _say(self) -> None:
        elapsed = time.perf_counter() - self.start
        self.spoke = True
        stage = f"{self.stage} ({self.done + 1}/{self.total})"
        self.stream.write(f"graphc: compiling {self.what}: {stage}, {elapsed:.1f} s so far\n")
        self.stream.flush()


def reporter(progress: object, what: str) -> Reporter:
    """The reporter for gc.compile's `progress`: None, False, True or a callable (stage, done, total)."""
    if progress is None:
        return Reporter(None, PROGRESS_AFTER_S, what, sys.stderr)
    if progress is False:
        return Reporter(None, None, what, sys.stderr)
    if progress is True:
        return Reporter(None, 0.0, what, sys.stderr)
    if callable(progress):
        return Reporter(progress, None, what, sys.stderr)
    raise TypeError(
        f"gc.compile: progress must be None (a line per stage on stderr once a compile takes over "
        f"{PROGRESS_AFTER_S:g} s), False, True or a callable(stage, done, total), got {type(progress).__name__}"
    )


__all__ = [
    "PROGRESS_AFTER_S",
    "Progress",
    "Reporter",
    "check_threads",
    "get_num_threads",
    "reporter",
    "set_num_threads",
    "usable_cores",
]
