"""Each program in examples/ runs in a fast mode and prints sane results; `--help` works for all.

An example whose optional package (scikit-learn, tqdm, matplotlib) is missing is skipped;
one test checks the message an example gives when such a package is missing. The full
runs (the digits accuracy target, long training) are marked slow.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))
NEEDS = {
    "train_digits.py": ["sklearn", "tqdm", "matplotlib"],
    "train_cnn_digits.py": ["sklearn", "tqdm", "matplotlib"],
    "prune_weights.py": ["sklearn", "matplotlib"],
}
BLOCKED_RUNS = {  # a run of each example that needs an optional package, and that package
    "train_digits.py": (["--epochs", "1"], "tqdm"),
    "rnn_sequence.py": (["--iters", "1", "--plot", "x.png"], "matplotlib"),
    "train_cnn_digits.py": (["--epochs", "1"], "tqdm"),
    "prune_weights.py": (["--epochs", "0", "--retrain", "0", "--levels", "0.5"], "matplotlib"),
}


def needs(*modules: str) -> None:
    for module in modules:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"optional package {module} is not installed (pip install -e '.[examples]')")


def run(script: str, *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    """Run examples/<script> with graphc importable; its stdout (the test fails on a non-zero exit)."""
    environment = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{script} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def floats(pattern: str, text: str) -> list[float]:
    return [float(v) for v in re.findall(pattern, text)]


def test_the_examples_are_there() -> None:
    expected = {"train_digits.py", "train_cnn_digits.py", "prune_weights.py", "rnn_sequence.py", "jacobian_newton.py"}
    assert expected | {"inspect_graphs.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_help(script: str, tmp_path: Path) -> None:
    out = run(script, "--help", cwd=tmp_path)
    assert out.startswith("usage:")
    assert "--backend" in out or "--out" in out


@pytest.mark.parametrize("script", sorted(BLOCKED_RUNS))
def test_a_missing_optional_package_gets_a_clear_message(script: str, tmp_path: Path) -> None:
    args, package = BLOCKED_RUNS[script]
    needs(*(module for module in NEEDS.get(script, []) if module != package))  # only `package` may be missing
    blocker = tmp_path / "block" / f"{package}.py"  # shadows the real package and fails to import
    blocker.parent.mkdir()
    blocker.write_text("raise ImportError('blocked for the test')\n")
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker.parent), str(REPO)])}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert f"needs {package}" in done.stderr and "pip install" in done.stderr
    assert "Traceback" not in done.stderr


# --- train_digits ------------------------------------------------------------------------------


def test_train_digits_one_epoch(tmp_path: Path) -> None:
    needs(*NEEDS["train_digits.py"])
    plot = tmp_path / "out" / "digits.png"
    out = run("train_digits.py", "--epochs", "2", "--backend", "numpy", "--plot", str(plot), cwd=tmp_path)
    (initial,) = floats(r"initial loss (\S+)", out)
    losses = floats(r"epoch +\d+ +loss (\S+)", out)
    accuracies = floats(r"test accuracy (\S+)%", out)
    assert len(losses) == 2 and losses[-1] < losses[0] < initial
    assert accuracies[-1] > 50.0  # chance is 10%
    assert plot.read_bytes().startswith(b"\x89PNG")


@pytest.mark.slow
def test_train_digits_reaches_96_percent_in_a_minute(tmp_path: Path) -> None:
    needs(*NEEDS["train_digits.py"])
    start = time.perf_counter()
    out = run("train_digits.py", "--plot", str(tmp_path / "digits.png"), cwd=tmp_path, timeout=300)
    assert time.perf_counter() - start < 60
    (final,) = floats(r"final test accuracy (\S+)%", out)
    assert final >= 96.0


# --- train_cnn_digits ------------------------------------------------------------------------


def test_train_cnn_digits_three_epochs(tmp_path: Path) -> None:
    needs(*NEEDS["train_cnn_digits.py"])
    plot = tmp_path / "out" / "cnn.png"
    out = run("train_cnn_digits.py", "--epochs", "3", "--backend", "numpy", "--plot", str(plot), cwd=tmp_path)
    (initial,) = floats(r"initial loss (\S+)", out)
    losses = floats(r"epoch +\d+ +loss (\S+)", out)
    accuracies = floats(r"test accuracy (\S+)%", out)
    assert len(losses) == 3 and losses[2] < losses[1] < losses[0] < initial
    assert accuracies[-1] > 50.0  # chance is 10%
    assert plot.read_bytes().startswith(b"\x89PNG")


@pytest.mark.slow
def test_train_cnn_digits_reaches_98_5_percent(tmp_path: Path) -> None:
    needs(*NEEDS["train_cnn_digits.py"])
    out = run("train_cnn_digits.py", "--no-plot", cwd=tmp_path, timeout=600)
    (final,) = floats(r"final test accuracy (\S+)%", out)
    assert final >= 98.5


# --- prune_weights ------------------------------------------------------------------------------


def test_prune_weights_fast(tmp_path: Path) -> None:
    needs(*NEEDS["prune_weights.py"])
    plot = tmp_path / "prune.png"
    args = ["--epochs", "3", "--retrain", "2", "--levels", "0.5,0.8", "--backend", "numpy", "--plot", str(plot)]
    out = run("prune_weights.py", *args, cwd=tmp_path)
    (dense,) = floats(r"dense: .* test accuracy (\S+)%", out)
    rows = re.findall(r"(?m)^ +(\d+)% +(\d+) +(\S+)% +(\S+)%", out)
    assert [(int(r[0]), int(r[1])) for r in rows] == [(50, 4736), (80, 1894)]  # of 9472 weights in W1 and W2
    assert dense > 50.0 and all(float(r[3]) > 50.0 for r in rows)
    retrain_losses = [(float(a), float(b)) for a, b in re.findall(r"loss (\S+) -> (\S+)\)", out)]
    assert len(retrain_losses) == 2 and all(b < a for a, b in retrain_losses)
    assert plot.read_bytes().startswith(b"\x89PNG")


@pytest.mark.slow
def test_prune_weights_removes_80_percent_for_at_most_1_percent(tmp_path: Path) -> None:
    needs(*NEEDS["prune_weights.py"])
    out = run("prune_weights.py", "--no-plot", cwd=tmp_path, timeout=600)
    (dense,) = floats(r"dense: .* test accuracy (\S+)%", out)
    (retrained,) = floats(r"(?m)^ +80% +\d+ +\S+% +(\S+)%", out)
    assert retrained >= dense - 1.0


# --- rnn_sequence ------------------------------------------------------------------------------


def test_rnn_sequence_fast(tmp_path: Path) -> None:
    plot = tmp_path / "rnn.png"
    plotting = importlib.util.find_spec("matplotlib") is not None
    args = ["--iters", "30", "--fp-iters", "30", "--backend", "numpy"] + (["--plot", str(plot)] if plotting else [])
    out = run("rnn_sequence.py", *args, cwd=tmp_path)
    scan_part, fixed_part = out.split("gc.fixed_point:", 1)
    scan_losses = floats(r"step +\d+ +loss (\S+)", scan_part)
    assert scan_losses[-1] < 0.3 * scan_losses[0]
    (held_out,) = floats(r"held-out loss (\S+) vs", scan_part)
    (baseline,) = floats(r"vs baseline (\S+) ", scan_part)
    assert held_out < baseline
    (worst,) = floats(r"largest difference (\S+)", fixed_part)
    assert worst < 1e-6
    fixed_losses = floats(r"step +\d+ +loss (\S+)", fixed_part)
    assert fixed_losses[-1] < fixed_losses[0]
    assert not plotting or plot.read_bytes().startswith(b"\x89PNG")


def test_zero_training_steps_run_and_say_so(tmp_path: Path) -> None:
    """--epochs 0 and --iters 0 / --fp-iters 0 used to crash on an empty history (issue 11.10)."""
    needs("sklearn", "tqdm")
    out = run("train_digits.py", "--epochs", "0", "--backend", "numpy", cwd=tmp_path)
    (accuracy,) = floats(r"final test accuracy (\S+)% after 0 epochs", out)
    assert 0.0 <= accuracy <= 100.0
    assert "nothing was trained" in out and not (tmp_path / "train_digits.png").exists()
    plotting = importlib.util.find_spec("matplotlib") is not None
    plot = ["--plot", str(tmp_path / "rnn.png")] if plotting else []
    out = run("rnn_sequence.py", "--iters", "0", "--fp-iters", "0", "--backend", "numpy", *plot, cwd=tmp_path)
    assert "held-out loss" in out and "not trained (--fp-iters 0)" in out
    assert not floats(r"step +\d+ +loss (\S+)", out)
    assert not plotting or (tmp_path / "rnn.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(("script", "flag"), [("train_digits.py", "--epochs"), ("rnn_sequence.py", "--iters")])
def test_negative_step_counts_are_refused(script: str, flag: str, tmp_path: Path) -> None:
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), flag, "-1"],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "must be >= 0" in done.stderr


@pytest.mark.slow
def test_rnn_sequence_full(tmp_path: Path) -> None:
    out = run("rnn_sequence.py", "--backend", "numpy", cwd=tmp_path, timeout=300)
    (ratio,) = floats(r"\((\S+)x lower\)", out)
    assert ratio > 20


# --- jacobian_newton ------------------------------------------------------------------------------


@pytest.mark.parametrize("dim", ["2", "5"])
def test_jacobian_newton_converges(dim: str, tmp_path: Path) -> None:
    out = run("jacobian_newton.py", "--dim", dim, "--backend", "numpy", cwd=tmp_path)
    assert out.count("converged") == 2
    rosenbrock, system = out.split("== 2.", 1)
    gradient_norms = floats(r"(?m)^ +\d+ +\S+ +(\S+)", rosenbrock)
    assert gradient_norms[0] > 1 and gradient_norms[-1] < 1e-10
    residuals = floats(r"(?m)^ +\d+ +(\S+)  \[", system)
    assert residuals[0] > 1 and residuals[-1] < 1e-10
    assert sum(r < 1e-3 for r in residuals) <= 3  # quadratic convergence: few steps once close


# --- inspect_graphs ------------------------------------------------------------------------------


def test_inspect_graphs_writes_pictures_and_texts(tmp_path: Path) -> None:
    out = run("inspect_graphs.py", "--out", str(tmp_path / "g"), "--quiet", cwd=tmp_path)
    folder = tmp_path / "g"
    suffix = "svg" if "note: the Graphviz program" not in out else "dot"
    for stem in ("f", "gradient", "optimized"):
        assert (folder / f"{stem}.{suffix}").stat().st_size > 100
    assert "def graphc_fn" in (folder / "numpy_source.py").read_text()
    report = (folder / "report.txt").read_text()
    assert "stability" in report and "fuse" in report
    assert "llvm_ir.ll" in out or "no LLVM IR" in out


def test_inspect_graphs_prints_the_stability_rewrites(tmp_path: Path) -> None:
    out = run("inspect_graphs.py", "--out", str(tmp_path), cwd=tmp_path)
    optimized = out.split("gc.show(fn.graph)", 1)[1]
    assert "logsumexp(" in optimized and "log1p(" in optimized and "fused(" in optimized


def test_inspect_graphs_without_graphviz_writes_dot_text(tmp_path: Path) -> None:
    bare_path = str(Path(sys.executable).parent)  # python, but no `dot`
    if Path(bare_path, "dot").exists():
        pytest.skip("dot lives beside python here")
    out = run("inspect_graphs.py", "--out", str(tmp_path / "g"), "--quiet", cwd=tmp_path, env={"PATH": bare_path})
    assert "note: the Graphviz program `dot` is not on PATH" in out
    assert (tmp_path / "g" / "optimized.dot").read_text().startswith("digraph graphc {")


# --- docs/ ------------------------------------------------------------------------------------------

DOCS = REPO / "docs"


def test_the_api_reference_names_every_public_name() -> None:
    import graphc as gc

    text = (DOCS / "api.md").read_text()
    missing = [name for name in gc.__all__ if f"`gc.{name}" not in text]
    assert not missing, f"docs/api.md lacks {missing}: run python docs/gen_api.py"


def test_the_api_generator_runs(tmp_path: Path) -> None:
    out = tmp_path / "api.md"
    run("../docs/gen_api.py", "--out", str(out), cwd=tmp_path)
    text = out.read_text()
    assert text.startswith("# API reference") and "## Optimizer passes" in text
    assert "`log(1 + x) -> log1p(x)`" in text  # a rule, by its docstring


@pytest.mark.parametrize("page", ["getting-started.md", "concepts.md", "api.md"])
def test_relative_links_in_the_docs_resolve(page: str) -> None:
    text = (DOCS / page).read_text()
    targets = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text)
    # performance.md is written alongside the benchmark suite; it may land later than these pages.
    broken = [t for t in targets if not (DOCS / t).exists() and t != "performance.md"]
    assert not broken, f"{page} links to missing files: {broken}"
