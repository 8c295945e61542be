"""An on-disk cache of compiled object code, safe against damage and concurrent writers.

Responsibility: keys (graph hash + host CPU + llvmlite/LLVM version + format version),
the entry format (header, length, checksum), atomic writes. Never raises on an unusable
directory: it just does not cache. Imports llvmlite (versions) and jit.host_cpu.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import struct
import tempfile
from pathlib import Path

import llvmlite
import llvmlite.binding as llvm

from graphc.backends.llvm.jit import host_cpu

FORMAT_VERSION = 1
_MAGIC = b"graphc-obj\0"
_HEADER = struct.Struct(f"<{len(_MAGIC)}sIQ32s")  # magic, version, length, sha256
_KEY = re.compile(r"[0-9a-f]{64}")


def _default_directory() -> Path:
    configured = os.environ.get("GRAPHC_CACHE_DIR")
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "graphc"


def _digest(key: str, obj: bytes) -> bytes:
    """The checksum covers the key too: a file under another entry's name is stale."""
    return hashlib.sha256(key.encode() + b"\0" + obj).digest()


def _encode(key: str, obj: bytes) -> bytes:
    header = _HEADER.pack(_MAGIC, FORMAT_VERSION, len(obj), _digest(key, obj))
    return header + obj


def _decode(key: str, data: bytes) -> bytes | None:
    """The object code in `data`, or None if it is truncated, corrupted or stale."""
    if len(data) < _HEADER.size:
        return None
    magic, version, length, digest = _HEADER.unpack_from(data)
    if magic != _MAGIC or version != FORMAT_VERSION:
        return None
    obj = data[_HEADER.size :]
    if len(obj) != length or _digest(key, obj) != digest:
        return None
    return obj


class ObjectCache:
    """Object files on disk, one per key; damaged entries are deleted and rebuilt."""

    def __init__(self, directory: str | os.PathLike[str] | None = None, enabled: bool = True) -> None:
        """`directory` None means $GRAPHC_CACHE_DIR, else ~/.cache/graphc."""
        if directory is None:
            directory = _default_directory()
        self.directory = Path(directory)
        self.enabled = enabled
        self.hits = 0
        self.misses = 0

    def key(self, structural_hash: str) -> str:
        """The entry name: the graph's hash with everything that changes object code."""
        cpu, features = host_cpu()
        parts = (
            f"graphc object cache v{FORMAT_VERSION}",
            structural_hash,
            cpu,
            features,
            f"llvmlite {llvmlite.__version__}",
            "llvm {}.{}.{}".format(*llvm.llvm_version_info),
        )
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()

    def _path(self, key: str) -> Path:
        if not _KEY.fullmatch(key):
            raise ValueError(f"not a cache key from ObjectCache.key: {key!r}")
        return self.directory / f"{key}.o"

    def load(self, key: str) -> bytes | None:
        """The cached object code, or None (missing or damaged; damage is deleted)."""
        if not self.enabled:
            return None
        path = self._path(key)
        try:
            data = path.read_bytes()
        except OSError:
            self.misses += 1
            return None
        obj = _decode(key, data)
        if obj is None:
            with contextlib.suppress(OSError):
                path.unlink()
            self.misses += 1
            return None
        self.hits += 1
        return obj

    def store(self, key: str, obj: bytes) -> None:
        """Write the entry atomically (temp file + rename); on any OS error, skip it."""
        if not self.enabled:
            return
        path = self._path(key)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        except OSError:
            return
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(_encode(key, obj))
            os.replace(temp, path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(temp)
