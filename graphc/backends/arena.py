"""The workspace arena: scratch memory that every compiled function of the process shares.

Imports numpy and the standard library only. A compiled function's workspace (the llvm
backend's scratch bytes) is taken from the arena for one call and given back when the
call returns, so functions that are alive but idle hold nothing, and a new function's
first call runs in pages an earlier call already touched instead of faulting in fresh ones.

- A call takes the smallest idle block at least as large as it needs (a hit). When no idle
  block is large enough (a miss) it maps a new block, rounded up to a size class (a
  quarter power of two, whole pages), and frees the idle blocks: each is smaller than
  the new one, which serves every call they served. In sequential use the arena is one
  block that grows to the largest workspace; concurrent calls each hold their own.
- A block is in use by exactly one call: take and give run under one lock, and a block
  is handed out only when it is idle. Two threads never share a live workspace; a call
  made while another is running (a thread, or reentered from a signal handler or a
  finalizer) takes another block.
- Idle blocks above the limit (`set_workspace_limit`, bytes) are freed when a block is
  given back, smallest first, so the largest stays warm unless it alone exceeds the limit;
  a limit of 0 frees every block as its call returns. A call needs its workspace whatever
  the limit: a workspace larger than the limit is mapped, used and freed.
- Blocks are anonymous memory maps (`mmap`), zero until written and returned to the system
  when freed (not kept by malloc). Their contents between calls are whatever the last call
  left; compiled code never reads scratch it has not written in the same call.

The default limit is a quarter of the machine's memory (1 GiB where it cannot be read).
"""

from __future__ import annotations

import bisect
import mmap
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

_PAGE = mmap.PAGESIZE
_FALLBACK_LIMIT = 1 << 30


def _default_limit() -> int:
    """A quarter of physical memory, or 1 GiB where the OS does not say."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return _FALLBACK_LIMIT
    return total // 4 if total > 0 else _FALLBACK_LIMIT


def size_class(nbytes: int) -> int:
    """`nbytes` rounded up to 2**k * (1, 1.25, 1.5 or 1.75), then to whole pages (at least one page)."""
    if nbytes <= _PAGE:
        return _PAGE
    step = 1 << max(0, (nbytes - 1).bit_length() - 3)  # a quarter of the power of two below
    rounded = -(-nbytes // step) * step
    return -(-rounded // _PAGE) * _PAGE


def _map(nbytes: int) -> np.ndarray:
    """A fresh anonymous mapping of `nbytes` as a uint8 array (page-aligned; unmapped when the array is freed)."""
    try:
        memory = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE)  # MAP_SHARED (the default) reaches forked children
    except OSError as error:  # ENOMEM: say it as NumPy does when an array does not fit
        raise MemoryError(f"graphc: cannot allocate a workspace of {nbytes:,} bytes ({error.strerror})") from error
    return np.frombuffer(memory, dtype=np.uint8)


@dataclass(frozen=True)
class WorkspaceStats:
    """gc.workspace_stats(): what the arena holds now, and how calls have found it since the process started.

    `limit` (gc.set_workspace_limit); `idle_bytes`, `idle_blocks`: kept for the next calls;
    `in_use_bytes`, `in_use_blocks`: held by calls running now; `peak_bytes`: the most the
    arena has held at once; `hits`: calls that found an idle block large enough; `misses`:
    calls that mapped a new one. Workspaces under 256 KiB stay with their function and are
    not counted.
    """

    limit: int  # bytes of idle blocks kept between calls (gc.set_workspace_limit)
    idle_bytes: int  # blocks no call is using, kept for the next calls
    idle_blocks: int
    in_use_bytes: int  # blocks running calls hold
    in_use_blocks: int
    peak_bytes: int  # the most the arena has held at once (idle + in use)
    hits: int  # calls that found an idle block large enough
    misses: int  # calls that mapped a new block


class Arena:
    """Blocks of scratch memory shared by every compiled function; `take` one per call, `give` it back."""

    def __init__(self, limit: int) -> None:
        self._lock = threading.RLock()  # reentrant: a finalizer or signal handler may call a function
        self._idle: list[np.ndarray] = []  # ascending size
        self._sizes: list[int] = []  # their sizes: bisect finds the smallest fit in C
        self.limit = limit
        self.idle_bytes = 0
        self.in_use_bytes = 0
        self.in_use_blocks = 0
        self.peak_bytes = 0
        self.hits = 0
        self.misses = 0

    def take(self, nbytes: int) -> np.ndarray:
        """A block of at least `nbytes` that no other call holds: the smallest idle one that fits, or a new one."""
        with self._lock:
            i = bisect.bisect_left(self._sizes, nbytes)
            if i < len(self._sizes):  # a hit: bytes move from idle to in use, the total stays
                size = self._sizes.pop(i)
                self.idle_bytes -= size
                self.in_use_bytes += size
                self.in_use_blocks += 1
                self.hits += 1
                return self._idle.pop(i)
            superseded = self._trim(0)  # all smaller than nbytes: the new block serves what they served
            self.misses += 1
        del superseded  # unmapped here, outside the lock
        block = _map(size_class(nbytes))
        with self._lock:
            self.in_use_bytes += block.nbytes
            self.in_use_blocks += 1
            self.peak_bytes = max(self.peak_bytes, self.in_use_bytes + self.idle_bytes)
        return block

    def give(self, block: np.ndarray) -> None:
        """Take back a block a call is done with; free idle blocks beyond the limit, smallest first."""
        size = block.nbytes
        with self._lock:
            self.in_use_bytes -= size
            self.in_use_blocks -= 1
            at = bisect.bisect_left(self._sizes, size)
            self._sizes.insert(at, size)
            self._idle.insert(at, block)
            self.idle_bytes += size
            if self.idle_bytes <= self.limit:
                return
            freed = self._trim(self.limit)
        del freed  # unmapped here, outside the lock

    def _trim(self, limit: int) -> list[np.ndarray]:
        """Remove idle blocks, smallest first, until they total at most `limit`; return them (the caller drops them)."""
        removed = []
        while self._idle and self.idle_bytes > limit:
            self.idle_bytes -= self._sizes.pop(0)
            removed.append(self._idle.pop(0))
        return removed

    def after_fork(self) -> None:
        """In a forked child: a fresh lock (another thread may have held this one), and no calls in flight."""
        self._lock = threading.RLock()
        self.in_use_bytes = 0
        self.in_use_blocks = 0

    def release(self) -> None:
        """Free every idle block (blocks in use are given back, and kept or freed, when their calls return)."""
        with self._lock:
            freed = self._trim(0)
        del freed

    def set_limit(self, limit: int) -> None:
        with self._lock:
            self.limit = limit
            freed = self._trim(limit)
        del freed

    def stats(self) -> WorkspaceStats:
        with self._lock:
            return WorkspaceStats(
                self.limit,
                self.idle_bytes,
                len(self._idle),
                self.in_use_bytes,
                self.in_use_blocks,
                self.peak_bytes,
                self.hits,
                self.misses,
            )


ARENA = Arena(_default_limit())
"""The process's arena: every compiled function takes its large workspaces here."""
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: ARENA.after_fork())


def _check_limit(nbytes: object) -> int:
    """`nbytes` as a limit: an int >= 0; TypeError or ValueError naming gc.set_workspace_limit otherwise."""
    if isinstance(nbytes, (bool, np.bool_)) or not isinstance(nbytes, (int, np.integer)):
        raise TypeError(
            f"gc.set_workspace_limit: the limit is a number of bytes (an int >= 0), "
            f"got {nbytes!r} ({type(nbytes).__name__})"
        )
    value = int(nbytes)  # a plain int: an int subclass's own comparisons are not asked
    if value < 0:
        raise ValueError(f"gc.set_workspace_limit: the limit must be >= 0 bytes, got {value}")
    return value


_ALSO_KEPT: list[Callable[[int], None]] = []
"""Other pools of idle memory under the same limit (large results: backends.llvm.outputs): each is called
with the limit to trim itself to, now 0 to free everything, whenever the limit is set or memory released."""


def also_kept(trim: Callable[[int], None]) -> None:
    """Put another pool of idle memory under gc.set_workspace_limit and gc.release_workspaces."""
    _ALSO_KEPT.append(trim)


def set_workspace_limit(nbytes: int) -> None:
    """gc.set_workspace_limit: the most bytes of idle workspace the process keeps between calls.

    Compiled functions share one arena of scratch memory: a call takes a block and gives it
    back when it returns. Idle blocks beyond this limit are freed (smallest first; now, and
    whenever a call returns); 0 frees each block as its call returns. A call always gets
    the workspace it needs, whatever the limit. The default is a quarter of the machine's
    memory. Results do not depend on it.
    """
    limit = _check_limit(nbytes)
    ARENA.set_limit(limit)
    for trim in _ALSO_KEPT:
        trim(limit)


def get_workspace_limit() -> int:
    """gc.get_workspace_limit: the bytes of idle workspace kept between calls (gc.set_workspace_limit)."""
    return ARENA.limit


def workspace_stats() -> WorkspaceStats:
    """gc.workspace_stats: the arena's idle and in-use bytes and blocks, its peak, and its hits and misses."""
    return ARENA.stats()


def release_workspaces() -> None:
    """gc.release_workspaces: free every idle workspace block now (the next calls map fresh ones).

    Idle blocks kept for large results (results of 4 MiB or more, llvm backend) are freed too.
    """
    ARENA.release()
    for trim in _ALSO_KEPT:
        trim(0)
