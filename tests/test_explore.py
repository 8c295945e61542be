"""gc.explore and fn.explore: the data (stages, changes, provenance, code lines) and the page in a real browser.

The browser tests drive Debian's `chromium` through its `chromedriver` with selenium. A
missing browser is a failure, not a skip: .ci/run installs it (apt-get install chromium
chromium-driver), and so can anyone running the suite.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import graphc as gc
from graphc.explore import build_data, code
from graphc.ir import Graph
from graphc.passes import run_pipeline
from graphc.rewrite import _RECORDERS, recording
from graphc.schedule import named_nodes

HERE = Path(__file__).name
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def api_example() -> tuple[gc.Tensor, gc.Tensor, gc.Tensor, gc.Tensor, gc.Tensor]:
    """f(x, s) of API.md §1 and its gradients."""
    x = gc.var("x", shape=(3,))
    s = gc.var("s")
    f = gc.sum(gc.tanh(x * s) ** 2) + gc.log1p(s * s)
    gx, gs = gc.grad(f, [x, s])
    return x, s, f, gx, gs


def stage_graphs(outs: list[gc.Tensor]) -> list[Graph]:
    graph = Graph(outs)
    _, report = run_pipeline(graph, record=True)
    return [graph, *(r.result for r in report)]  # type: ignore[list-item]


def page_data(text: str) -> dict:
    match = re.search(r'<script type="application/json" id="graphc-data">(.*?)</script>', text, flags=re.DOTALL)
    assert match is not None
    return json.loads(match.group(1))


# ---------------------------------------------------------------- rule recording


def test_recording_is_off_unless_asked_and_names_each_rule() -> None:
    x = gc.var("x", shape=(3,))
    assert not _RECORDERS
    gc.optimize(gc.log(1 + x) * 1.0)
    assert not _RECORDERS
    with recording() as firings:
        gc.optimize(gc.log(1 + x) * 1.0)
    assert [f.rule for f in firings] == ["log_one_plus", "mul_one"]
    assert firings[0].before.op.name == "log" and firings[0].after.op.name == "log1p"
    assert not _RECORDERS


# ---------------------------------------------------------------- the data


def test_stages_are_the_input_then_every_pass_run() -> None:
    _x, _s, f, gx, gs = api_example()
    data = build_data([f, gx, gs])
    graphs = stage_graphs([f, gx, gs])
    _, report = run_pipeline(Graph([f, gx, gs]))
    assert [st["name"] for st in data["stages"]] == ["input", *(r.name for r in report)]
    assert [st["nodes"] for st in data["stages"]] == [len(g.nodes) for g in graphs]
    for stage, graph in zip(data["stages"], graphs, strict=True):
        layout = data["layouts"][stage["layout"]]
        assert len(layout["items"]) == len(graph.nodes)  # every input is reached here
        assert len(layout["x"]) == len(layout["layer"]) >= len(layout["items"])
        ops = sorted(data["nodes"][i]["op"] for i in layout["items"])
        assert ops == sorted(n.op.name for n in graph.nodes)
        for a, b, _, *route in layout["edges"]:
            chain = [a, *route, b]
            layers = [layout["layer"][k] for k in chain]
            assert layers == list(range(layers[0], layers[0] + len(chain)))  # one layer per step
    assert data["start"] == len(data["stages"]) - 1


def test_a_node_has_one_id_in_every_stage() -> None:
    _x, _s, f, gx, gs = api_example()
    data = build_data([f, gx, gs])
    first = data["layouts"][data["stages"][0]["layout"]]["items"]
    last = data["layouts"][data["stages"][-1]["layout"]]["items"]
    assert len(set(first)) == len(first) and len(set(last)) == len(last)
    kept = set(first) & set(last)  # the inputs x and s survive every pass
    heads = {data["nodes"][i]["head"] for i in kept}
    assert {"x", "s"} <= heads


def test_changes_name_the_rule_and_the_node_it_replaced() -> None:
    x = gc.var("x", shape=(4,))
    y = gc.log(1 + x)  # stability: log(1 + x) -> log1p(x)
    data = build_data(y)
    (stage,) = [st for st in data["stages"] if st["name"] == "stability" and "changes" in st]
    added = stage["changes"]["added"]
    nodes = data["nodes"]
    (new_id,) = [k for k, v in added.items() if v[0] == "rewritten"]
    _kind, rule, replaced = added[new_id]
    assert nodes[int(new_id)]["op"] == "log1p" and rule == "log_one_plus"
    assert nodes[replaced]["op"] == "log"
    assert replaced in stage["changes"]["removed"]
    assert nodes[int(new_id)]["loc"].endswith(f"{HERE}:{y.node.loc.line}")  # the user's line is kept


def test_fusion_marks_fused_regions_and_lays_out_their_bodies() -> None:
    _x, _s, f, gx, gs = api_example()
    data = build_data([f, gx, gs])
    fuse_stage = data["stages"][-1]
    assert fuse_stage["name"] == "fuse" and fuse_stage["final"]
    fused = [k for k, v in fuse_stage["changes"]["added"].items() if v[0] == "fused"]
    assert fused
    for k in fused:
        node = data["nodes"][int(k)]
        assert node["op"] == "fused"
        ((key, body),) = node["bodies"]
        assert key == "body" and data["layouts"][body]["items"]
        assert node["head"].startswith("fused \u00b7 ")


def test_gradient_nodes_point_to_the_forward_node_and_the_users_line() -> None:
    x = gc.var("x", shape=(3,))
    y = gc.tanh(x)  # the forward node
    g = gc.grad(gc.sum(y), x)
    data = build_data(g, optimize=False)
    nodes = data["nodes"]
    (tanh_id,) = [i for i, n in enumerate(nodes) if n["op"] == "tanh" and not n.get("detached")]
    derived = [n for n in nodes if n.get("origin") == tanh_id]
    assert derived  # d tanh: nodes built by tanh's rule record tanh as their origin
    assert all(n["loc"] == f"{y.node.loc}" for n in derived)
    assert nodes[tanh_id]["loc"].endswith(f"{HERE}:{y.node.loc.line}")


def test_loop_bodies_are_laid_out() -> None:
    W = gc.var("W", shape=(4, 4))
    xs = gc.var("xs", shape=(5, 4))
    h0 = gc.var("h0", shape=(4,))
    h, _hs = gc.scan(lambda h, x_t: (gc.tanh(h @ W + x_t), h), h0, xs)
    data = build_data([h, gc.grad(gc.sum(h), W)])
    loops = [n for n in data["nodes"] if n["op"] == "scan"]
    assert loops and all(n.get("bodies") for n in loops)
    bodies = [data["layouts"][n["bodies"][0][1]]["items"] for n in loops]
    assert all(bodies)
    assert any(data["nodes"][i]["op"] == "tanh" for items in bodies for i in items)  # the forward step


def test_numpy_code_lines_are_each_steps_line() -> None:
    x, s, f, gx, gs = api_example()
    fn = gc.compile([x, s], [f, gx, gs], backend="numpy")
    lines = fn.source.splitlines()
    nodes = named_nodes(fn.graph)
    mapping = code.numpy_lines(fn.source, fn.program, nodes)
    assert set(mapping) == {nodes[step.name] for step in fn.program.steps}
    for step in fn.program.steps:
        first, last = mapping[nodes[step.name]][0]
        assert first == last and lines[first - 1].lstrip().startswith(f"{step.name} = ")
        if step.op == "fused":
            called = re.search(r"= (\w+)\(", lines[first - 1]).group(1)  # type: ignore[union-attr]
            start, end = mapping[nodes[step.name]][1]
            assert lines[start - 1].startswith(f"def {called}(") and "return out" in lines[end - 1]


def test_llvm_code_lines_are_the_kernels_each_step_runs_in() -> None:
    x, s, f, gx, gs = api_example()
    fn = gc.compile([x, s], [f, gx, gs], backend="llvm")
    ir = fn.llvm_ir.optimized
    lines = ir.splitlines()
    nodes = named_nodes(fn.graph)
    plan = fn._built.plan
    assert len(plan.sources) == len(plan.kernels)  # the planner records each kernel's steps, merged ones too
    assert any(len(steps) > 1 for steps in plan.sources)
    kernels = code.llvm_kernels(nodes, plan)
    computing = [nodes[st.name] for st in fn.program.steps if st.op not in ("reshape", "transpose", "broadcast_to")]
    assert set(kernels) >= set(computing) - {n for n in computing if n.op.name == "slice"}
    names = {name for found in kernels.values() for name in found}
    assert names == {m for m in re.findall(r"define [^@]*@(kernel\d+)\(", ir)}
    for node, ranges in code.llvm_lines(ir, kernels).items():
        defines = [lines[a - 1] for a, b in ranges if b > a]
        assert defines and all(line.startswith("define ") for line in defines)
        assert {re.search(r"@(kernel\d+)\(", d).group(1) for d in defines} == set(kernels[node])  # type: ignore[union-attr]


def test_the_plan_names_the_steps_each_kernel_computes() -> None:
    """Plan.sources: per kernel the steps it came from; a cond is one Branch and a while_loop one Loop of its step."""
    from graphc.backends.llvm.kernels import Branch, Loop

    x, p = gc.var("x", (8,)), gc.var("p", (), dtype="bool")
    a = gc.cond(p, lambda v: gc.exp(v) * 2.0, lambda v: gc.sin(v) + 1.0, x)
    w = gc.while_loop(lambda v: gc.sum(v) < 100.0, lambda v: v * 2.0 + 1.0, gc.tanh(x), max_iter=20)
    fn = gc.compile([x, p], [gc.sum(a * w), a + w], backend="llvm")
    plan, program = fn._built.plan, fn.program
    assert len(plan.sources) == len(plan.kernels)
    ops = [[program.step(name).op for name in steps] for steps in plan.sources]  # type: ignore[union-attr]
    for kernel, found in zip(plan.kernels, ops, strict=True):
        if isinstance(kernel, Branch):
            assert found == ["cond"]
        elif isinstance(kernel, Loop):
            assert found == ["while_loop"]
    assert any(isinstance(k, Branch) for k in plan.kernels) and any(isinstance(k, Loop) for k in plan.kernels)
    computing = {s.name for s in program.steps if s.op not in ("reshape", "transpose", "broadcast_to")}
    assert computing <= {name for steps in plan.sources for name in steps}
    args = (np.linspace(-1.0, 1.0, 8), np.array(True))
    expected = gc.evaluate([gc.sum(a * w), a + w], {x: args[0], p: args[1]})
    assert all(np.allclose(g, e) for g, e in zip(fn(*args), expected, strict=True))


def test_function_spans_end_at_the_closing_brace() -> None:
    text = "; x\ndefine void @a() {\n  ret void\n}\n\n; attrs\ndefine void @b() {\n}\nattributes #0 = {}\n"
    assert code.function_spans(text.splitlines()) == {"a": (2, 4), "b": (7, 8)}
    py = "def f(a):\n    return a\n\n\ndef g():\n    pass\n"
    assert code.function_spans(py.splitlines()) == {"f": (1, 2), "g": (5, 6)}


# ---------------------------------------------------------------- the file


def test_the_page_is_one_self_contained_file(tmp_path: Path) -> None:
    x, s, f, gx, gs = api_example()
    fn = gc.compile([x, s], [f, gx, gs], backend="numpy")
    path = fn.explore(tmp_path / "fn.html")
    text = path.read_text()
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", text)
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", text))
    assert urls <= {"http://www.w3.org/2000/svg"}  # the SVG namespace is a name, never fetched
    data = page_data(text)
    assert data["code"]["text"] == fn.source
    assert data["stages"][-1]["nodes"] == len(fn.graph.nodes)


def test_hostile_names_cannot_break_out_of_the_data(tmp_path: Path) -> None:
    name = '</script><script>alert("x")</script>'
    v = gc.var(name, shape=(2,))
    path = gc.explore(gc.exp(v), tmp_path / "hostile.html", title=name)
    text = path.read_text()
    assert text.count("<script") == 2  # the data and the page's own script
    data = page_data(text)
    assert name in {n["head"] for n in data["nodes"]}
    assert html.escape(name) in text  # the title


def test_explore_accepts_what_show_accepts(tmp_path: Path) -> None:
    _x, _s, f, gx, gs = api_example()
    for k, target in enumerate([f, [f, gx], (f,), Graph([f, gs])]):
        data = page_data(gc.explore(target, tmp_path / f"t{k}.html").read_text())
        assert data["stages"][0]["name"] == "input"
    with pytest.raises(TypeError, match="cannot inspect int"):
        gc.explore(3, tmp_path / "bad.html")
    data = build_data(f, optimize=False)
    assert len(data["stages"]) == 1


# ---------------------------------------------------------------- Jupyter


def test_jupyter_reprs_of_tensor_graph_and_compiled_function(monkeypatch: pytest.MonkeyPatch) -> None:
    x, s, f, gx, _gs = api_example()
    fn = gc.compile([x, s], [f, gx], backend="numpy")
    for html_text in (f._repr_html_(), Graph([f])._repr_html_(), fn._repr_html_()):
        assert "<svg" in html_text and "nodes; inputs (" in html_text
    assert "compiled function" in fn._repr_html_() and "def graphc_fn(" in fn._repr_html_()
    if shutil.which("dot"):
        assert f._repr_svg_().lstrip().startswith("<?xml")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert f._repr_svg_() is None and Graph([f])._repr_svg_() is None and fn._repr_svg_() is None


def test_big_graphs_get_a_summary_not_a_drawing() -> None:
    x = gc.var("x", shape=(2,))
    y = x
    for k in range(200):
        y = gc.tanh(y) + float(k)
    text = y._repr_html_()
    assert "<svg" not in text and "gc.explore" in text and "nodes; inputs (x: f64[2])" in text


# ---------------------------------------------------------------- in the browser


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        pytest.fail(f"the explorer's browser tests need {missing}: apt-get install -y chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="graphc-chromium-")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1400,900",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def errors_in(driver: object) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]  # type: ignore[attr-defined]


def rendered(driver: object) -> tuple[str, int]:
    stage, items = driver.execute_script("return [document.body.dataset.rendered, document.body.dataset.items]")  # type: ignore[attr-defined]
    return stage, int(items)


VISIBLE = """
const box = document.getElementById('canvas').getBoundingClientRect();
return [...document.querySelectorAll('#scene .node > rect')].filter(r => {
  const b = r.getBoundingClientRect();
  return b.right > box.left && b.left < box.right && b.bottom > box.top && b.top < box.bottom;
}).length;
"""


def visible_nodes(driver: object) -> int:
    return int(driver.execute_script(VISIBLE))  # type: ignore[attr-defined]


def open_page(driver: object, path: Path) -> dict:
    driver.get(path.resolve().as_uri())  # type: ignore[attr-defined]
    return page_data(path.read_text())


def test_every_pass_tab_renders_without_console_errors(browser: object, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    _x, _s, f, gx, gs = api_example()
    data = open_page(browser, gc.explore([f, gx, gs], tmp_path / "tabs.html"))
    assert errors_in(browser) == []
    tabs = browser.find_elements(By.CSS_SELECTOR, "#tabs button")  # type: ignore[attr-defined]
    assert len(tabs) == len(data["stages"])
    assert visible_nodes(browser) > 0
    for k, tab in enumerate(tabs):
        tab.click()
        layout = data["layouts"][data["stages"][k]["layout"]]
        assert rendered(browser) == (str(k), len(layout["items"]))
        assert visible_nodes(browser) > 0
        assert "current" in tab.get_attribute("class")
    assert errors_in(browser) == []


def test_before_view_marks_what_the_pass_removed(browser: object, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    _x, _s, f, gx, gs = api_example()
    data = open_page(browser, gc.explore([f, gx, gs], tmp_path / "before.html"))
    k = next(k for k, st in enumerate(data["stages"]) if "changes" in st and st["name"] == "simplify")
    browser.find_elements(By.CSS_SELECTOR, "#tabs button")[k].click()  # type: ignore[attr-defined]
    added = browser.find_elements(By.CSS_SELECTOR, "#scene .node.added, #scene .node.rewritten")  # type: ignore[attr-defined]
    assert len(added) == len(data["stages"][k]["changes"]["added"])
    browser.find_element(By.ID, "before").click()  # type: ignore[attr-defined]
    removed = browser.find_elements(By.CSS_SELECTOR, "#scene .node.removed")  # type: ignore[attr-defined]
    assert len(removed) == len(data["stages"][k]["changes"]["removed"]) > 0
    assert errors_in(browser) == []


def test_clicking_a_gradient_node_shows_its_provenance(browser: object, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    x = gc.var("x", shape=(3,))
    y = gc.tanh(x)
    g = gc.grad(gc.sum(y * y), x)
    data = open_page(browser, gc.explore(g, tmp_path / "provenance.html", optimize=False))
    tanh_id = next(i for i, n in enumerate(data["nodes"]) if n["op"] == "tanh" and not n.get("detached"))
    target = next(i for i, n in enumerate(data["nodes"]) if n.get("origin") == tanh_id and n["op"] == "mul")
    browser.find_element(By.CSS_SELECTOR, f'#scene .node[data-node="{target}"] rect').click()  # type: ignore[attr-defined]
    details = browser.find_element(By.ID, "details").text  # type: ignore[attr-defined]
    assert f"{HERE}:{y.node.loc.line}" in details  # the user's line
    assert "derived from" in details and f"#{tanh_id} tanh" in details  # the forward node
    browser.find_element(By.CSS_SELECTOR, f'#details a[data-goto="{tanh_id}"]').click()  # type: ignore[attr-defined]
    assert browser.find_element(By.CSS_SELECTOR, "#details h2").text == f"#{tanh_id} tanh"  # type: ignore[attr-defined]
    assert errors_in(browser) == []


def test_compiled_function_page_expands_bodies_and_shows_code(browser: object, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    x, s, f, gx, gs = api_example()
    fn = gc.compile([x, s], [f, gx, gs], backend="numpy")
    data = open_page(browser, fn.explore(tmp_path / "fn.html"))
    before = rendered(browser)[1]
    toggles = browser.find_elements(By.CSS_SELECTOR, "#scene .node.holder .toggle")  # type: ignore[attr-defined]
    assert toggles
    toggles[0].click()
    fused = next(n for n in data["nodes"] if n["op"] == "fused" and not n.get("detached"))
    assert rendered(browser)[1] > before  # the body's nodes are drawn inside
    step = next(st for st in fn.program.steps if st.op != "fused")
    node_id = next(
        int(k)
        for k, ranges in data["code"]["lines"].items()
        if fn.source.splitlines()[ranges[0][0] - 1].lstrip().startswith(f"{step.name} = ")
    )
    browser.execute_script(  # type: ignore[attr-defined]
        "document.querySelector(arguments[0]).dispatchEvent(new MouseEvent('click', {bubbles: true}))",
        f'#scene .node[data-node="{node_id}"]',
    )
    details = browser.find_element(By.ID, "details").text  # type: ignore[attr-defined]
    assert f"{step.name} = " in details and "fn.source" in details.lower()
    browser.find_element(By.CSS_SELECTOR, f'#details a[data-code="{node_id}"]').click()  # type: ignore[attr-defined]
    hits = browser.find_elements(By.CSS_SELECTOR, "#code div.hit")  # type: ignore[attr-defined]
    assert [h.text.split(maxsplit=1)[1].startswith(f"{step.name} = ") for h in hits] == [True]
    assert fused["bodies"] and errors_in(browser) == []
    shot = tmp_path / "explorer.png"
    browser.save_screenshot(str(shot))  # type: ignore[attr-defined]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_llvm_function_page_shows_ir_lines(browser: object, tmp_path: Path) -> None:
    x, s, f, gx, gs = api_example()
    fn = gc.compile([x, s], [f, gx, gs])
    data = open_page(browser, fn.explore(tmp_path / "llvm.html"))
    assert data["code"]["text"] == fn.llvm_ir.optimized
    assert data["code"]["kernels"] and data["code"]["lines"]
    assert rendered(browser)[0] == str(len(data["stages"]) - 1) and errors_in(browser) == []


def test_a_graph_of_thousands_of_nodes_renders(browser: object, tmp_path: Path) -> None:
    x = gc.var("x", shape=(8,))
    w = gc.var("w", shape=(8,))
    h = x
    for k in range(60):
        h = gc.tanh(h * w + 0.1 * k) + gc.log1p(h * h)
    f = gc.sum(h)
    outs = [f, gc.grad(f, w)]
    data = open_page(browser, gc.explore(outs, tmp_path / "big.html"))
    from selenium.webdriver.common.by import By

    assert visible_nodes(browser) > 0
    browser.find_elements(By.CSS_SELECTOR, "#tabs button")[0].click()  # type: ignore[attr-defined]
    assert rendered(browser) == ("0", len(Graph(outs).nodes)) and len(Graph(outs).nodes) > 1000
    assert visible_nodes(browser) > 0  # a view kept from a smaller stage would show nothing: it is refitted
    last = data["layouts"][data["stages"][-1]["layout"]]["items"]
    first = data["layouts"][data["stages"][0]["layout"]]["items"]
    kept = next(i for i in first if i in set(last) and data["nodes"][i]["op"] == "var")
    browser.execute_script(  # type: ignore[attr-defined]
        "document.querySelector(arguments[0]).dispatchEvent(new MouseEvent('click', {bubbles: true}))",
        f'#scene .node[data-node="{kept}"]',
    )
    browser.find_elements(By.CSS_SELECTOR, "#tabs button")[-1].click()  # type: ignore[attr-defined]
    offset = browser.execute_script(  # type: ignore[attr-defined]
        "const c = document.getElementById('canvas').getBoundingClientRect();"
        "const r = document.querySelector(arguments[0]).getBoundingClientRect();"
        "return [r.left + r.width / 2 - (c.left + c.width / 2), r.top + r.height / 2 - (c.top + c.height / 2)]",
        f'#scene .node[data-node="{kept}"] rect',
    )
    assert max(abs(v) for v in offset) < 2  # the selected node is followed from stage to stage
    assert errors_in(browser) == [] and np.isfinite(
        float(browser.execute_script("return document.body.dataset.renderMs"))
    )  # type: ignore[attr-defined]


# ---------------------------------------------------------------- odd graphs


def odd_graphs() -> dict[str, list[gc.Tensor]]:
    x = gc.var("x", shape=(3,))
    empty = gc.var("e", shape=(0, 4))
    k = gc.var("k", shape=(3,), dtype="int64")
    return {
        "a lone var": [x],
        "the same output twice": [x * 2.0, x * 2.0, x],
        "a constant output": [gc.const(np.arange(3.0)), gc.sum(x)],
        "ints and bools": [gc.where(k > 1, x, -x), gc.argmax(x), k * 2],
        "zero-size": [gc.sum(empty * 2.0, axis=0), gc.grad(gc.sum(empty * empty), empty)],
        "special constants": [x * np.inf + np.nan - (-0.0), x * 1e300],
    }


@pytest.mark.parametrize("name", list(odd_graphs()))
def test_odd_graphs_explore_and_draw(name: str, tmp_path: Path) -> None:
    outs = odd_graphs()[name]
    data = page_data(gc.explore(outs, tmp_path / "odd.html").read_text())
    final = Graph(gc.optimize(outs))  # type: ignore[arg-type]
    assert data["stages"][-1]["nodes"] == len(final.nodes)
    layout = data["layouts"][data["stages"][-1]["layout"]]
    assert len(layout["outputs"]) == len(outs)
    svg = gc.viz.to_svg(outs)
    assert svg.count('class="node') == len(Graph(outs).nodes)


def test_fast_math_adds_its_pass(tmp_path: Path) -> None:
    x = gc.var("x", shape=(3,))
    data = build_data(x * 0.0 + gc.exp(x), fast_math=True)
    names = [st["name"] for st in data["stages"]]
    assert "fastmath" in names
    (stage,) = [st for st in data["stages"] if st["name"] == "fastmath" and "changes" in st]
    rules = stage["changes"]["rules"]  # x * 0 -> 0: the zero constant existed already, so nothing is added
    ((removed, (rule, became)),) = rules.items()
    assert rule == "mul_zero" and data["nodes"][int(removed)]["op"] == "mul"
    assert data["nodes"][became]["op"] in ("const", "broadcast_to")
    assert int(removed) in stage["changes"]["removed"]


def test_a_long_chain_needs_no_recursion(tmp_path: Path) -> None:
    x = gc.var("x", shape=(2,))
    y = x
    for _ in range(6000):
        y = gc.sin(y)
    data = build_data(y, optimize=False)
    layout = data["layouts"][data["stages"][0]["layout"]]
    assert len(layout["items"]) == 6001 and max(layout["layer"]) == 6000


def test_nested_loop_bodies_expand_in_place(browser: object, tmp_path: Path) -> None:
    W = gc.var("W", shape=(3, 3))
    xs = gc.var("xs", shape=(4, 2, 3))
    h0 = gc.var("h0", shape=(3,))

    def outer(h: gc.Tensor, block: gc.Tensor) -> tuple[gc.Tensor, None]:
        inner, _ = gc.scan(lambda c, x_t: (gc.tanh(c @ W + x_t), None), h, block)
        return inner, None

    h, _ = gc.scan(outer, h0, xs)
    fn = gc.compile([W, xs, h0], [h, gc.grad(gc.sum(h * h), W)])
    open_page(browser, fn.explore(tmp_path / "nested.html"))
    counts = [rendered(browser)[1]]
    for _ in range(6):  # expand every collapsed body, level by level
        opened = browser.execute_script(  # type: ignore[attr-defined]
            "const t = [...document.querySelectorAll('#scene .toggle')].filter(t => t.textContent === '+');"
            "t.slice(0, 1).forEach(e => e.dispatchEvent(new MouseEvent('click', {bubbles: true})));"
            "return t.length"
        )
        counts.append(rendered(browser)[1])
        if not opened:
            break
    assert counts[-1] > counts[0] and counts == sorted(counts)
    nested = browser.execute_script("return document.querySelectorAll('#scene g[transform] g[transform]').length")  # type: ignore[attr-defined]
    assert nested >= 1  # a body drawn inside a body
    browser.execute_script("document.getElementById('collapse').click()")  # type: ignore[attr-defined]
    assert rendered(browser)[1] == counts[0] and errors_in(browser) == []


def test_jupyter_view_of_a_big_function_is_cut(tmp_path: Path) -> None:
    x = gc.var("x", shape=(3,))
    y = x
    for k in range(200):
        y = gc.tanh(y @ gc.const(np.eye(3) * (k + 1.0)))
    fn = gc.compile([x], y, backend="numpy")
    text = fn._repr_html_()
    assert len(fn.source.splitlines()) > 300
    assert "more lines in fn.source" in text and "gc.explore" in text  # a summary, not a drawing
