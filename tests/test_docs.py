"""The documentation runs: every fenced python block of README.md and docs/*.md, the notebook, api.md.

Conventions (docs/writing-docs.md): a block runs in a fresh namespace, in a temporary
directory; `<!-- docs-test: continue -->` on the line before a fence runs it in the
namespace of the previous block of the same file; `<!-- docs-test: skip REASON -->`
marks a block that is not meant to run (a listing of generated code, say), with the reason.
"""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
MARK = re.compile(r"<!--\s*docs-test:\s*(?P<kind>continue|skip)(?P<reason>[^>]*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced python block: where it is, its code, and its mark (run, continue or skip)."""

    path: Path
    line: int
    code: str
    mark: str
    reason: str

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def blocks_of(path: Path) -> list[Block]:
    """The python blocks of a Markdown file, each with the mark on the line before its fence."""
    text = path.read_text()
    found = []
    for match in FENCE.finditer(text):
        if match.group("info").strip().split(" ")[0] != "python":
            continue
        line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        mark = MARK.search(before)
        kind = mark.group("kind") if mark else "run"
        reason = mark.group("reason").strip() if mark else ""
        found.append(Block(path, line, textwrap.dedent(match.group("body")), kind, reason))
    return found


ALL_BLOCKS = [block for path in DOCS for block in blocks_of(path)]


def test_blocks_are_found_and_marks_are_well_formed() -> None:
    assert len(ALL_BLOCKS) >= 8
    for block in ALL_BLOCKS:
        if block.mark == "skip":
            assert block.reason, f"{block.id}: say why the block does not run (<!-- docs-test: skip REASON -->)"
    for path in DOCS:
        blocks = blocks_of(path)
        if blocks:
            assert blocks[0].mark != "continue", f"{blocks[0].id}: the first block of a file has nothing to continue"
        stray = [m for m in re.finditer(r"<!--\s*docs-test[^>]*-->", path.read_text()) if not MARK.search(m.group())]
        assert not stray, f"{path.name}: unknown docs-test mark {stray[0].group()!r}"


def chains() -> list[list[Block]]:
    """Runnable blocks grouped so that each group is one namespace: a block and its continuations."""
    groups: list[list[Block]] = []
    for block in ALL_BLOCKS:
        if block.mark == "skip":
            continue
        if block.mark == "continue" and groups and groups[-1][0].path == block.path:
            groups[-1].append(block)
        else:
            groups.append([block])
    return groups


@pytest.mark.parametrize("chain", chains(), ids=lambda chain: chain[0].id)
def test_docs_snippet_runs(chain: list[Block], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for block in chain:
        code = compile(block.code, block.id, "exec")
        with contextlib.redirect_stdout(io.StringIO()):
            exec(code, namespace)  # the block must not raise


def test_the_api_reference_is_generated_from_the_current_docstrings() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "docs" / "gen_api.py"), "--check"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr + done.stdout


def test_docs_point_only_inside_the_repository() -> None:
    for path in DOCS:
        text = path.read_text()
        for name in ("../shared", "/work/", "API.md", "DESIGN.md", "STYLE.md", "BENCHMARKS.md"):
            assert name not in text, f"{path.name} refers to {name}, which is not in the repository"
        for target in re.findall(r"\]\(([\w./-]+\.\w+)(?:#[\w-]*)?\)", text):  # [text](file.md#anchor)
            assert (path.parent / target).exists(), f"{path.name} links to a missing file: {target}"


def test_the_notebook_runs_on_a_real_kernel() -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    path = REPO / "docs" / "explore.ipynb"
    notebook = nbformat.read(path, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), "commit it cleared"
    where = {"metadata": {"path": str(REPO)}}
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3", resources=where)
    client.execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    shown = [o for o in outputs if o.output_type in ("display_data", "execute_result")]
    html = [o["data"]["text/html"] for o in shown if "text/html" in o.get("data", {})]
    assert any("<svg" in h for h in html)  # a Tensor drew itself
    assert any("compiled function" in h for h in html)  # so did a compiled function
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "# every pass run in order" in text and "wrote" in text
