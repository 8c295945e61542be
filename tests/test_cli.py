"""The `graphc` command, and the promises the README and pyproject.toml make to a new user."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import graphc as gc
from graphc.cli import main

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PYPROJECT = REPO / "pyproject.toml"
TEST_COMMAND = "pip install -e '.[test]' && python -m pytest -q -n auto"
DEMO_COMMAND = "pip install -e . && graphc demo"


def api_value() -> float:
    """f(x, s) of API.md §1 at the demo's point, computed with NumPy alone."""
    x = np.array([1.0, 2.0, 3.0])
    s = 0.5
    return float(np.sum(np.tanh(x * s) ** 2) + np.log1p(s * s))


# ---------------------------------------------------------------- the command


def test_demo_prints_both_values_and_their_agreement(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    values = [float(v) for v in re.findall(r"f = (\S+)$", out, flags=re.MULTILINE)]
    assert len(values) >= 2  # the reference, numpy, and llvm once it exists
    assert values == pytest.approx([api_value()] * len(values), rel=1e-12)
    assert "gc.evaluate" in out and 'backend="numpy"' in out
    assert re.search(r"^reference and numpy( and llvm)? agree", out, flags=re.MULTILINE)
    assert "log1p(" in out  # the graph was shown


def test_demo_steps_run_in_order_and_share_one_tour() -> None:
    from graphc import demo

    tour = demo.define()
    for step in demo.DEMO_STEPS:
        step(tour)
    assert tour.ok
    assert list(tour.values)[:2] == ["reference", "numpy"]


def test_python_dash_m_graphc_demo_runs_in_a_fresh_interpreter() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "graphc", "demo"], cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "agree" in done.stdout


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"graphc {gc.__version__}"


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert "demo" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["no-such-command"])
    assert exit_info.value.code == 2


@pytest.mark.parametrize("fmt", ["text", "dot", "source", "llvm", "report"])
def test_inspect_prints_each_artifact(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "--format", fmt]) == 0
    out = capsys.readouterr().out
    assert out.strip()
    if fmt == "text":
        assert out.startswith("graph(%x: f64[3], %s: f64[])")
    if fmt == "dot":
        assert out.startswith("digraph graphc {")
    if fmt == "source":
        assert "def graphc_fn(x, s):" in out
    if fmt == "llvm":
        assert out.startswith("; ---- optimized ----") and "define" in out and "@graphc_entry(" in out
    if fmt == "report":
        assert out.startswith("# per pass") and out.splitlines()[-1].startswith("total")


def test_inspect_report_per_round(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "--format", "report", "--per-round"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("# every pass run") and lines[1].split()[:2] == ["round", "pass"]
    assert lines[2].split()[:2] == ["1", "fold"] and lines[-2].split()[:2] == ["final", "fuse"]


def test_inspect_html_writes_the_explorer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo.html"
    assert main(["inspect", "--format", "html", "--output", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    assert out.read_text().startswith("<!DOCTYPE html>") and 'id="graphc-data"' in out.read_text()


SCRIPT = """
import graphc as gc
x = gc.var("x", shape=(3,))
loss = gc.sum(gc.exp(x) * 2.0)
fn = gc.compile([x], [loss, gc.grad(loss, x)], backend="numpy")
if __name__ == "__main__":
    raise SystemExit("the script's main block must not run under graphc inspect")
"""


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "model.py"
    path.write_text(SCRIPT)
    return path


def test_inspect_file_names_a_tensor_a_list_or_a_function(script: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "--file", f"{script}:loss"]) == 0
    assert capsys.readouterr().out.startswith("graph(%x: f64[3]) {")
    assert main(["inspect", "--file", f"{script}:[loss, gc.grad(loss, x)]", "--format", "source"]) == 0
    source = capsys.readouterr().out
    assert "def graphc_fn(x):" in source and "result = (np.array(v1), v2)" in source
    assert main(["inspect", "--file", f"{script}:fn", "--format", "source"]) == 0
    assert capsys.readouterr().out == namespace_of(script)["fn"].source + "\n"
    assert main(["inspect", "--file", f"{script}:fn", "--format", "llvm"]) == 0
    assert "@graphc_entry(" in capsys.readouterr().out
    assert main(["inspect", "--file", f"{script}:fn", "--format", "report"]) == 0
    assert capsys.readouterr().out.startswith("# per pass")
    page = script.with_name("fn.html")
    assert main(["inspect", "--file", f"{script}:fn", "--format", "html", "--output", str(page)]) == 0
    assert 'id="graphc-data"' in page.read_text() and "fn.source (numpy backend)" in page.read_text()
    text = script.with_name("loss.txt")
    assert main(["inspect", "--file", f"{script}:loss", "--output", str(text)]) == 0
    assert text.read_text().startswith("graph(%x: f64[3]) {") and f"wrote {text}" in capsys.readouterr().out


def namespace_of(script: Path) -> dict[str, object]:
    import runpy

    return runpy.run_path(str(script), run_name="test")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{script}", "wants SCRIPT.py:EXPR"),
        ("{script}:", "wants SCRIPT.py:EXPR"),
        ("{missing}:loss", "no such script"),
        ("{script}:nope", "NameError: name 'nope' is not defined"),
        ("{script}:x.shape", "is a tuple; expected a Tensor"),
        ("{script}:[]", "is a list; expected a Tensor"),
    ],
)
def test_inspect_file_errors_say_what_is_wrong(
    spec: str, message: str, script: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    given = spec.format(script=script, missing=script.with_name("missing.py"))
    assert main(["inspect", "--file", given]) == 2
    err = capsys.readouterr().err
    assert err.startswith("graphc inspect: ") and message in err


def test_inspect_file_whose_script_fails_shows_its_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("import graphc as gc\nx = gc.var('x', shape=(2,))\ny = x + gc.var('z', shape=(3,))\n")
    assert main(["inspect", "--file", f"{broken}:y"]) == 1
    err = capsys.readouterr().err
    assert "ShapeError" in err and f"{broken}" in err and "raised the error above" in err


# ---------------------------------------------------------------- README and packaging


def code_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of each fenced block, in order."""
    return re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def test_readme_starts_with_the_demo_and_test_commands() -> None:
    blocks = code_blocks(README.read_text())
    assert [body.strip() for _, body in blocks[:2]] == [DEMO_COMMAND, TEST_COMMAND]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    script = (REPO / ".ci" / "run").read_text()
    assert TEST_COMMAND in script
    assert "exit 1" in script  # pytest's exit 5 (nothing collected) becomes a failure


def test_ci_runs_the_lint_and_type_checks_of_the_dev_extra() -> None:
    script = (REPO / ".ci" / "run").read_text()
    for command in ("pip install -q -e '.[dev]'", "ruff check .", "ruff format --check .", "mypy graphc"):
        assert command in script
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads(PYPROJECT.read_text())
    assert _requirement_names(config["project"]["optional-dependencies"]["dev"]) >= {"ruff", "mypy"}
    assert "mypy" in config["tool"] and "ruff" in config["tool"]


def test_the_console_script_is_declared() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    assert project["scripts"] == {"graphc": "graphc.cli:main"}


def test_readme_tour_runs() -> None:
    (tour,) = [body for lang, body in code_blocks(README.read_text()) if lang == "python"]
    namespace: dict[str, object] = {}
    exec(compile(tour, str(README), "exec"), namespace)
    assert isinstance(namespace["dot"], str)


def _imported_modules(path: Path) -> set[str]:
    """Top-level names of modules imported by a file, except imports guarded by try/except."""
    tree = ast.parse(path.read_text())
    guarded = {id(n) for t in ast.walk(tree) if isinstance(t, ast.Try) for s in t.body for n in ast.walk(s)}
    names = set()
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def _distributions(module: str) -> set[str]:
    found = importlib.metadata.packages_distributions().get(module, [module])
    return {name.lower().replace("_", "-") for name in found}


@pytest.mark.parametrize(
    ("folder", "extras"),
    [("graphc", ("viz", "examples", "bench", "distributed")), ("tests", ("test",))],
)
def test_every_third_party_import_is_declared(folder: str, extras: tuple[str, ...]) -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    declared = _requirement_names(project["dependencies"])
    for extra in extras:
        declared |= _requirement_names(project["optional-dependencies"][extra])
    local = {"graphc", "conftest"} | {p.stem for p in (REPO / folder).glob("*.py")}
    missing = {}
    for path in sorted((REPO / folder).rglob("*.py")):
        for module in _imported_modules(path) - set(sys.stdlib_module_names) - local:
            if not _distributions(module) & declared:
                missing[module] = path.relative_to(REPO).as_posix()
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"
