"""The compile cache loads machine code from disk: only a private directory of this user's is trusted.

As ssh treats ~/.ssh: the directory is created 0700; a directory (or entry file) owned by
another user or writable by group or others is refused with one warning, and the
function compiles without the cache (never reading or writing there). `cache_dir=""` is
a ValueError rather than the current directory. The trust rule itself is tested on
injected stat results, so it is covered whatever user runs the suite; the ownership
test on a real directory uses chown when run as root (as CI does) and a directory
owned by root otherwise.
"""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("llvmlite")

import graphc as gc
from graphc.backends.llvm import cache as cache_module
from graphc.backends.llvm.cache import ObjectCache, distrust

ME = os.geteuid()
OTHER = 65534 if ME != 65534 else 65533


def fake_stat(uid: int, mode: int) -> os.stat_result:
    return os.stat_result((stat.S_IFDIR | mode, 0, 0, 2, uid, 0, 4096, 0, 0, 0))


@pytest.mark.parametrize(
    ("uid", "mode", "trusted"),
    [(ME, 0o700, True), (ME, 0o755, True), (ME, 0o500, True), (ME, 0o770, False), (ME, 0o707, False),
     (ME, 0o1777, False), (OTHER, 0o700, False), (OTHER, 0o755, False), (0 if ME else 1, 0o700, False)],
)  # fmt: skip
def test_the_trust_rule(uid: int, mode: int, trusted: bool) -> None:
    reason = distrust(fake_stat(uid, mode), ME, "the directory")
    assert (reason is None) == trusted
    if not trusted:
        assert "belongs to uid" in reason or "written by others" in reason  # type: ignore[operator]


def compile_with(directory: object) -> gc.CompiledFunction:
    x = gc.var("x", (4,))
    return gc.compile([x], gc.exp(x) * 3.0 - 1.0, backend="llvm", cache_dir=directory)  # type: ignore[arg-type]


def test_a_new_cache_directory_is_private(tmp_path: Path) -> None:
    directory = tmp_path / "a" / "cache"
    fn = compile_with(directory)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    entries = list(directory.glob("*.o"))
    assert len(entries) == 1
    assert stat.S_IMODE(entries[0].stat().st_mode) & 0o077 == 0
    assert compile_with(directory)._built.cache_hit
    assert fn(np.zeros(4)).tolist() == [2.0] * 4


@pytest.mark.parametrize("mode", [0o770, 0o777, 0o722])
def test_a_directory_others_can_write_is_refused_with_one_warning(tmp_path: Path, mode: int) -> None:
    directory = tmp_path / "shared"
    directory.mkdir()
    directory.chmod(mode)
    cache_module._WARNED.discard(str(directory))
    with pytest.warns(RuntimeWarning, match="not using the compile cache .* written by others"):
        fn = compile_with(directory)
    assert list(directory.iterdir()) == []  # nothing written
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second compile does not warn again
        again = compile_with(directory)
    assert not again._built.cache_hit
    assert fn(np.zeros(4)).tolist() == [2.0] * 4


def test_a_planted_entry_in_a_refused_directory_is_never_loaded(tmp_path: Path) -> None:
    private = tmp_path / "private"
    compile_with(private)
    (entry,) = private.glob("*.o")
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / entry.name).write_bytes(entry.read_bytes())  # a valid entry, planted
    shared.chmod(0o777)
    cache_module._WARNED.discard(str(shared))
    with pytest.warns(RuntimeWarning):
        assert not compile_with(shared)._built.cache_hit


def test_an_entry_file_others_can_write_is_ignored_and_kept(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    compile_with(directory)
    (entry,) = directory.glob("*.o")
    entry.chmod(0o666)
    assert not compile_with(directory)._built.cache_hit
    assert entry.exists()  # not ours to delete
    entry.chmod(0o600)
    assert compile_with(directory)._built.cache_hit


def test_a_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    if ME == 0:
        directory = tmp_path / "theirs"
        directory.mkdir(mode=0o700)
        os.chown(directory, OTHER, -1)
    else:
        directory = Path("/")  # owned by root, not by this user
        assert directory.stat().st_uid != ME
    cache_module._WARNED.discard(str(directory))
    with pytest.warns(RuntimeWarning, match="belongs to uid"):
        fn = compile_with(directory)
    assert not any(p.suffix in (".o", ".tmp") for p in directory.iterdir())
    assert fn(np.zeros(4)).tolist() == [2.0] * 4


def test_an_empty_cache_dir_is_not_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="current directory"):
        compile_with("")
    with pytest.raises(ValueError, match="cache=False"):
        ObjectCache("  ")
    assert list(tmp_path.iterdir()) == []
    x = gc.var("x", (2,))
    gc.compile([x], x + 1.0, backend="llvm", cache=False, cache_dir="")  # no cache asked for: nothing to refuse
    monkeypatch.setenv("GRAPHC_CACHE_DIR", "")  # an empty variable means "not set", as before
    assert ObjectCache().directory == Path.home() / ".cache" / "graphc"
