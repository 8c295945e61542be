"""An on-disk cache of compiled object code, safe against damage and concurrent writers.

Responsibility: keys (graph hash + host CPU + llvmlite/LLVM version + format version),
the entry format (header, length, checksum), atomic writes, and trust. Never raises on
an unusable directory: it just does not cache. Imports llvmlite (versions) and jit.host_cpu.

The cache holds machine code that every process using it will run, so whoever can
write it can run code in those processes. As ssh does with ~/.ssh, the cache is used
only if its directory belongs to this user and no one else can write it (created 0700
when missing); otherwise it warns once and compiles without the cache. An entry file
owned by another user or writable by others is ignored (and not deleted). An empty
`directory` is refused (ValueError): it would mean the current directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import struct
import tempfile
import warnings
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


_WARNED: set[str] = set()  # directories already warned about (one warning per process and directory)


def distrust(info: os.stat_result, uid: int, what: str) -> str | None:
    """Why a cache directory or file with this stat may not be trusted by user `uid`, or None if it may."""
    if info.st_uid != uid:
        return f"{what} belongs to uid {info.st_uid}, not to this user (uid {uid})"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{what} can be written by others (mode {stat.S_IMODE(info.st_mode):o})"
    return None


def _current_uid() -> int:
    return os.geteuid() if hasattr(os, "geteuid") else -1


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

    def __init__(
        self, directory: str | os.PathLike[str] | None = None, enabled: bool = True, suffix: str = ".o"
    ) -> None:
        """`directory` None means $GRAPHC_CACHE_DIR, else ~/.cache/graphc; "" is a ValueError.

        `suffix`: the entries' file ending (".o" object code; ".plan" the graph-level cache's entries).
        """
        if directory is None:
            directory = _default_directory()
        if isinstance(directory, str) and not directory.strip():
            raise ValueError(
                "cache_dir='' would put compiled code in the current directory; "
                "pass a directory, or cache=False for no cache"
            )
        self.directory = Path(directory)
        self.enabled = enabled
        self.suffix = suffix
        self.hits = 0
        self.misses = 0
        self._trusted: bool | None = None

    def trusted(self) -> bool:
        """Whether the directory may be used (created 0700 if missing); decided once, warning if not."""
        if self._trusted is None:
            try:
                self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                reason = self._check_directory()
            except OSError:  # unusable (not creatable, not readable): no cache, as ever, silently
                self._trusted = False
                return False
            self._trusted = reason is None
            if reason is not None and str(self.directory) not in _WARNED:
                _WARNED.add(str(self.directory))
                warnings.warn(
                    f"graphc is not using the compile cache {self.directory}: {reason}; "
                    "compiling without it (make it yours and private: chmod 700)",
                    RuntimeWarning,
                    stacklevel=2,
                )
        return self._trusted

    def _check_directory(self) -> str | None:
        info = os.stat(self.directory)
        if not stat.S_ISDIR(info.st_mode):
            return "it is not a directory"
        return distrust(info, _current_uid(), "the directory")

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
        return self.directory / f"{key}{self.suffix}"

    def load(self, key: str) -> bytes | None:
        """The cached object code, or None (missing or damaged; damage is deleted)."""
        if not self.enabled:
            return None
        if not self.trusted():
            self.misses += 1
            return None
        path = self._path(key)
        try:
            with open(path, "rb") as file:
                if distrust(os.fstat(file.fileno()), _current_uid(), "the entry") is not None:
                    self.misses += 1
                    return None  # someone else's file: never run it, never delete it
                data = file.read()
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
        if not self.enabled or not self.trusted():
            return
        path = self._path(key)
        try:
            fd, temp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")  # mode 0600
        except OSError:
            return
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(_encode(key, obj))
            os.replace(temp, path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(temp)
