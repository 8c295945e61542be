"""Fixtures shared by the test modules.

- `model`: the API.md example, f(x, s) = sum(tanh(x * s) ** 2) + log1p(s * s), as (x, s, f).
- `cache_dir`: a fresh private (0700) directory for a compile cache of one test.
- Every test session compiles into its own private cache directory (GRAPHC_CACHE_DIR, the
  library's documented default location), so the suite neither reads nor fills the
  user's ~/.cache/graphc, and examples run in subprocesses inherit it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import graphc as gc


@pytest.fixture(autouse=True, scope="session")
def private_compile_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("graphc-cache")
    directory.chmod(0o700)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRAPHC_CACHE_DIR", str(directory))
        yield directory


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "graphc-cache"
    directory.mkdir(mode=0o700)
    return directory


@pytest.fixture
def model() -> tuple[gc.Tensor, gc.Tensor, gc.Tensor]:
    x = gc.var("x", (3,))
    s = gc.var("s")
    f = gc.sum(gc.tanh(x * s) ** 2) + gc.log1p(s * s)
    return x, s, f
