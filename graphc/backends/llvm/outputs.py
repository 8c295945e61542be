"""Large results in recycled memory: an output of LEASED_FROM bytes or more lives in a block a dropped result left.

Imports numpy, ctypes, mmap and the arena (for its limit and size classes) only. A fresh
NumPy array of tens of megabytes is a fresh memory map: every call that returns one
faults in and zeroes its pages (for W3's 80 MB gradient, a third of the call's CPU time),
and freeing it unmaps them again. Here a large output is an ndarray over a block of the
size class of its bytes (arena.size_class), whose base is a small holder object: when the
last array or view over the block dies, the holder's finalizer gives the block back, and
the next call asking for that size class writes into pages that are already mapped.

- A block is held by one result only: it is idle (in the pool) or under exactly one
  holder, never both. Views keep the holder alive (NumPy's base chain stops at it), so
  the block cannot return while any view can still read it.
- The pool keeps at most KEEP blocks per size class, and no idle block while the arena's
  limit (gc.set_workspace_limit) would be exceeded by it together with the arena's own
  idle bytes: a limit of 0 keeps nothing, and results then cost what np.empty costs.
- Results are ordinary writable C-ordered ndarrays; they do not own their data
  (`flags.owndata` is False, so `ndarray.resize` refuses, as for any view).
- Thread-safe (one reentrant lock: a finalizer may run inside `lease` when a collection
  starts there) and fork-safe (a child starts with a fresh lock; blocks are private
  mappings, so what a child writes into one it inherited is its own copy).
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
import threading

import numpy as np

from graphc.backends.arena import ARENA, also_kept, size_class

LEASED_FROM = 1 << 22
"""Outputs of this many bytes or more are leased (4 MiB: below that, NumPy's allocator reuses warm memory)."""
KEEP = 2
"""The most idle blocks kept per size class (a result still held while the next call runs needs a second)."""


class _Pool:
    """Idle blocks by size class; `lease` hands one out under a fresh holder, whose finalizer gives it back."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._idle: dict[int, list[mmap.mmap]] = {}
        self._holders: dict[int, type[ctypes.Array[ctypes.c_char]]] = {}
        self.idle_bytes = 0

    def lease(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """An uninitialized C-ordered array of `shape` and `dtype` over a recycled (or new) block."""
        size = size_class(int(np.prod(shape, dtype=np.int64)) * dtype.itemsize)
        with self._lock:
            blocks = self._idle.get(size)
            block = blocks.pop() if blocks else None
            if block is not None:
                self.idle_bytes -= size
            holder_type = self._holders.get(size)
            if holder_type is None:
                holder_type = self._holders[size] = _holder_type(size)
        if block is None:
            block = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE)  # a forked child writes its own copy
        holder = holder_type.from_buffer(block)
        holder.block = block  # type: ignore[attr-defined]
        return np.ndarray(shape, dtype, buffer=holder)  # type: ignore[arg-type]

    def give(self, block: mmap.mmap) -> None:
        """Take back a block no array reads any more: keep it idle if the class and the limit allow, else unmap it."""
        size = len(block)
        with self._lock:
            blocks = self._idle.setdefault(size, [])
            if len(blocks) < KEEP and self.idle_bytes + size + ARENA.idle_bytes <= ARENA.limit:
                blocks.append(block)
                self.idle_bytes += size
                return
        # not kept: unmapped when `block` goes (its last export, the holder, is already gone)

    def trim(self, limit: int) -> None:
        """Unmap idle blocks, largest first, until they and the arena's idle blocks total at most `limit`."""
        with self._lock:
            dropped = []
            for size in sorted(self._idle, reverse=True):
                blocks = self._idle[size]
                while blocks and self.idle_bytes + ARENA.idle_bytes > limit:
                    dropped.append(blocks.pop())
                    self.idle_bytes -= size
        del dropped

    def release(self) -> None:
        """Unmap every idle block."""
        self.trim(-1)

    def after_fork(self) -> None:
        """In a forked child: a fresh lock (another thread may have held this one)."""
        self._lock = threading.RLock()


def _finalize(holder: ctypes.Array[ctypes.c_char]) -> None:
    """A holder's __del__: its block goes back to the pool (quietly at interpreter exit, when the pool may be gone)."""
    block = holder.__dict__.get("block")
    if block is not None:
        with contextlib.suppress(Exception):  # a finalizer must not raise; the block is then simply unmapped
            POOL.give(block)


def _holder_type(size: int) -> type[ctypes.Array[ctypes.c_char]]:
    """A ctypes char-array type of `size` bytes whose instances give their block back when they die."""
    return type(f"Lease{size}", (ctypes.c_char * size,), {"__del__": _finalize})


POOL = _Pool()
"""The process's pool of large-output blocks."""
also_kept(POOL.trim)  # gc.set_workspace_limit and gc.release_workspaces cover it
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: POOL.after_fork())


def leased(shape: tuple[int, ...], dtype: np.dtype) -> bool:
    """Whether an output of this shape and dtype comes from the pool (LEASED_FROM bytes or more)."""
    return int(np.prod(shape, dtype=np.int64)) * dtype.itemsize >= LEASED_FROM
