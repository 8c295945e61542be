"""`graphc demo`: the whole tour runs in under 30 s and passes its checks; its parts work alone.

tests/test_cli.py checks the values the tour prints; here: the steps, the pictures (with
and without Graphviz), the fallback when the llvm backend is missing, and the progress
bar without tqdm.
"""

from __future__ import annotations

import io
import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import graphc as gc
from graphc import demo
from graphc.cli import main


def test_the_demo_runs_every_step_in_under_30_seconds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    start = time.perf_counter()
    assert main(["demo", "--svg", str(tmp_path / "pictures")]) == 0
    assert time.perf_counter() - start < 30
    out = capsys.readouterr().out
    numbers = [int(n) for n in re.findall(r"^== (\d+)\.", out, flags=re.MULTILINE)]
    assert numbers == list(range(1, len(demo.DEMO_STEPS)))  # step_agree prints no heading
    for expected in ("gc.grad(f, [x, s])", "stability", "fuse", "check_grad", "vs NumPy", "test accuracy"):
        assert expected in out
    assert re.search(r"largest \|graphc - finite differences\| = \S+: ok", out)
    (accuracy,) = re.findall(r"test accuracy on fresh spiral points: (\S+)%: ok", out)
    assert float(accuracy) >= 100 * demo.SPIRAL_TARGET
    assert out.rstrip().splitlines()[-1].startswith("all checks passed")
    suffix = "svg" if "note: the Graphviz program" not in out else "dot"
    for stem in ("f", "gradient", "optimized"):
        assert (tmp_path / "pictures" / f"{stem}.{suffix}").stat().st_size > 100


def prepared_tour(svg_dir: Path | None = None) -> demo.Tour:
    """A tour after the steps that build its graphs (quiet ones: no timing, no training)."""
    tour = demo.define(svg_dir)
    for step in (demo.step_evaluate, demo.step_gradient, demo.step_optimize):
        step(tour)
    return tour


def test_without_graphviz_the_pictures_are_dot_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tour = prepared_tour(tmp_path)
    monkeypatch.setattr(demo.shutil, "which", lambda name: None)
    demo.step_pictures(tour)
    out = capsys.readouterr().out
    assert "`dot` is not on PATH" in out and "apt-get install graphviz" in out
    for stem in ("f", "gradient", "optimized"):
        assert (tmp_path / f"{stem}.dot").read_text().startswith("digraph graphc {")
    assert "fused" in (tmp_path / "optimized.dot").read_text()


def test_without_svg_dir_the_tour_says_how_to_get_pictures(capsys: pytest.CaptureFixture[str]) -> None:
    demo.step_pictures(prepared_tour())
    assert "graphc demo --svg" in capsys.readouterr().out


def test_a_missing_llvm_backend_is_skipped_with_a_note(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_compile = gc.compile

    def numpy_only(inputs: object, outputs: object, backend: str = "numpy", **kwargs: object) -> object:
        if backend == "llvm":
            raise NotImplementedError("not built in this test")
        return real_compile(inputs, outputs, backend=backend, **kwargs)

    monkeypatch.setattr(gc, "compile", numpy_only)
    tour = prepared_tour()
    demo.step_compile(tour)
    demo.step_agree(tour)
    out = capsys.readouterr().out
    assert tour.backends == ["numpy"] and tour.ok
    assert "note: backend='llvm' is not available (not built in this test)" in out


def test_every_available_backend_is_compiled_and_agrees(capsys: pytest.CaptureFixture[str]) -> None:
    tour = prepared_tour()
    demo.step_compile(tour)
    demo.step_agree(tour)
    assert tour.backends[0] == "numpy" and set(tour.backends) <= {"numpy", "llvm"}
    assert tour.ok, capsys.readouterr().out
    for backend in tour.backends:
        assert np.allclose(tour.gradient_values[backend][0], tour.gradient_values["reference"][0])


def test_finite_difference_step_passes(capsys: pytest.CaptureFixture[str]) -> None:
    tour = prepared_tour()
    demo.step_finite_differences(tour)
    assert tour.ok
    assert ": ok" in capsys.readouterr().out


def test_hand_written_numpy_matches_graphc() -> None:
    tour = prepared_tour()
    x = tour.feed[tour.x]
    f, gx, gs = demo.numpy_value_and_grad(x, float(tour.feed[tour.s]))
    assert f == pytest.approx(float(tour.values["reference"]), rel=1e-12)
    assert np.allclose(gx, tour.gradient_values["reference"][0], rtol=1e-12)
    assert gs == pytest.approx(float(tour.gradient_values["reference"][1]), rel=1e-12)


def test_two_spirals_are_balanced_and_bounded() -> None:
    points, labels = demo.two_spirals(50, np.random.default_rng(1))
    assert points.shape == (100, 2) and labels.shape == (100,) and labels.dtype == np.int64
    assert labels.sum() == 50
    assert np.abs(points).max() < 1.3
    assert np.allclose(points[:50].mean(axis=0), -points[50:].mean(axis=0), atol=0.05)  # the arms are mirrored


def test_without_tqdm_training_draws_a_plain_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)  # `import tqdm` now raises ImportError
    bar = demo.progress_bar(10, "training")
    assert isinstance(bar, demo.PlainBar)


def test_plain_bar_draws_progress_and_postfix() -> None:
    stream = io.StringIO()
    bar = demo.PlainBar(40, "training", stream=stream, width=10)
    for _ in range(40):
        bar.set_postfix_str("loss 0.1", refresh=False)
        bar.update(1)
    bar.close()
    text = stream.getvalue()
    assert "training: [##########] 40/40 loss 0.1" in text
    assert text.count("training:") <= 21  # redrawn at most 20 times, plus the first
