"""The explorer's cost at 100, 1,000 and 5,000 nodes: file size, time to write it, time to draw it.

    python -m benchmarks.explore_size            (from the repository root)

The graphs are a chain of `h = tanh(h * w + c) + log1p(h * h)` steps and the gradient of
`sum(h)` in `w`: value and gradient, as users explore them. For each size it writes the
page with `gc.explore` (Python time, median of three), opens it in headless Chromium
(Debian's chromium and chromium-driver, through selenium) and reads the time the page's
script reports for drawing the last stage (shown first) and the first, biggest stage
(`document.body.dataset.renderMs`, which the script measures around its own drawing).
Before timing, each page is checked: the number of boxes drawn is the number of nodes.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import graphc as gc
from graphc.ir import Graph

TARGETS = (100, 1_000, 5_000)
STEP_NODES = 18  # nodes each step adds to value + gradient (measured: 71 nodes at 4 steps, 5,038 at 280)


def chain(steps: int) -> list[gc.Tensor]:
    x = gc.var("x", shape=(8,))
    w = gc.var("w", shape=(8,))
    h = x
    for k in range(steps):
        h = gc.tanh(h * w + 0.1 * k) + gc.log1p(h * h)
    f = gc.sum(h)
    return [f, gc.grad(f, w)]


def graph_of_about(nodes: int) -> list[gc.Tensor]:
    steps = max(1, round(nodes / STEP_NODES))
    return chain(steps)


def browser() -> object:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tempfile.mkdtemp()}",
        "--window-size=1400,900",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def draw_times(driver: object, page: Path, first_stage_nodes: int) -> tuple[float, float, float]:
    """(seconds until the first drawing is done, its ms, ms to draw stage 0) as the page reports them."""
    start = time.perf_counter()
    driver.get(page.as_uri())  # type: ignore[attr-defined]
    loaded = time.perf_counter() - start
    last = float(driver.execute_script("return document.body.dataset.renderMs"))  # type: ignore[attr-defined]
    driver.execute_script("document.querySelector('#tabs button').click()")  # type: ignore[attr-defined]
    items = int(driver.execute_script("return document.body.dataset.items"))  # type: ignore[attr-defined]
    if items != first_stage_nodes:
        raise AssertionError(f"stage 0 drew {items} boxes, the graph has {first_stage_nodes} nodes")
    first = float(driver.execute_script("return document.body.dataset.renderMs"))  # type: ignore[attr-defined]
    return loaded, last, first


def main() -> None:
    rows = []
    driver = browser()
    try:
        with tempfile.TemporaryDirectory() as folder:
            for target in TARGETS:
                outs = graph_of_about(target)
                nodes = len(Graph(outs).nodes)
                page = Path(folder) / f"g{target}.html"
                seconds = []
                for _ in range(3):
                    start = time.perf_counter()
                    gc.explore(outs, page)
                    seconds.append(time.perf_counter() - start)
                loaded, last, first = draw_times(driver, page, nodes)
                size = page.stat().st_size / 1024
                rows.append((nodes, size, statistics.median(seconds), loaded, last, first))
    finally:
        driver.quit()  # type: ignore[attr-defined]
    columns = ("nodes before optimization", "file", "written in", "page loaded and drawn", "last stage drawn")
    print("| " + " | ".join(columns) + " | stage 0 drawn |")
    print("|---:|---:|---:|---:|---:|---:|")
    for nodes, size, written, loaded, last, first in rows:
        print(f"| {nodes:,} | {size:,.0f} KiB | {written:.2f} s | {loaded:.2f} s | {last:.0f} ms | {first:.0f} ms |")


if __name__ == "__main__":
    main()
