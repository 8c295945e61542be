"""Make every picture in docs/img: `python docs/make_images.py` (from the repository root).

- Graphs (SVG), drawn by graphc itself (`graphc.viz.to_svg`, no Graphviz needed), so the
  same code gives the same pictures anywhere: the three of concepts.md (a function, its raw
  gradient graph, the optimized graph) and the before/after pairs of gallery.md.
- The explorer (PNG): `gc.explore` pages opened in headless Chromium (Debian's `chromium`
  and `chromium-driver`, driven by selenium), a node selected, a body expanded.
- The examples' plots (PNG): examples/train_digits.py and examples/rnn_sequence.py run with
  --plot (they need the `examples` extra: matplotlib, scikit-learn).

`--only NAME` makes just the pictures whose file name contains NAME. A part whose tools
are missing is skipped with a message saying what to install; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMG = REPO / "docs" / "img"
sys.path.insert(0, str(REPO))

import graphc as gc  # noqa: E402
from graphc import viz  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


# --- the graphs ------------------------------------------------------------------------------


def concepts_graphs() -> dict[str, object]:
    """concepts.md: f(x, w) = log(sum(exp(w*x))) + sum(log(1 + x*x)), its gradient, the optimized graph."""
    x = gc.var("x", shape=(4,))
    w = gc.var("w")
    f = gc.log(gc.sum(gc.exp(w * x))) + gc.sum(gc.log(1.0 + x * x))
    gx, gw = gc.grad(f, [x, w])
    fn = gc.compile([x, w], [f, gx, gw], backend="numpy")
    return {"f.svg": f, "gradient.svg": [f, gx, gw], "optimized.svg": fn}


def gallery_graphs() -> dict[str, object]:
    """gallery.md: before and after optimization, for four typical graphs."""
    pictures: dict[str, object] = {}
    x = gc.var("x", shape=(3,))
    s = gc.var("s")
    f = gc.sum(gc.tanh(x * s) ** 2) + gc.log1p(s * s)
    grads = gc.grad(f, [x, s])
    pictures["gallery-api-before.svg"] = [f, *grads]
    pictures["gallery-api-after.svg"] = gc.compile([x, s], [f, *grads], backend="numpy")

    z = gc.var("z", shape=(5,))
    lse = gc.log(gc.sum(gc.exp(z)))
    pictures["gallery-lse-before.svg"] = [lse, gc.grad(lse, z)]
    pictures["gallery-lse-after.svg"] = gc.optimize([lse, gc.grad(lse, z)], fuse=False)

    images = gc.var("images", shape=(8, 4))
    labels = gc.var("labels", shape=(8,), dtype="int64")
    W, b = gc.var("W", shape=(4, 3)), gc.var("b", shape=(3,))
    logits = images @ W + b
    loss = -gc.mean(gc.sum(gc.log_softmax(logits) * gc.one_hot(labels, 3), axis=-1))
    gW, gb = gc.grad(loss, [W, b])
    pictures["gallery-softmax-before.svg"] = [loss, gW, gb]
    pictures["gallery-softmax-after.svg"] = gc.compile([images, labels, W, b], [loss, gW, gb], backend="numpy")

    U = gc.var("U", shape=(4, 4))
    xs = gc.var("xs", shape=(6, 4))
    h0 = gc.var("h0", shape=(4,))
    h, _ = gc.scan(lambda h, x_t: (gc.tanh(h @ U + x_t), None), h0, xs)
    gU = gc.grad(gc.sum(h * h), U)
    pictures["gallery-scan-before.svg"] = [h, gU]
    pictures["gallery-scan-after.svg"] = gc.compile([U, xs, h0], [h, gU], backend="numpy")
    return pictures


def write_graphs(only: str) -> list[Path]:
    written = []
    for name, target in {**concepts_graphs(), **gallery_graphs()}.items():
        if only in name:
            path = IMG / name
            path.write_text(viz.to_svg(target))
            written.append(path)
    return written


# --- the explorer --------------------------------------------------------------------------


def browser() -> object:
    """Headless Chromium through selenium; RuntimeError saying what to install when either is missing."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        raise RuntimeError("the explorer pictures need selenium: pip install -e '.[test]'") from None
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        raise RuntimeError("the explorer pictures need Chromium: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
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
        "--window-size=1400,860",
        "--hide-scrollbars",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def click(driver: object, selector: str) -> None:
    script = "document.querySelector(arguments[0]).dispatchEvent(new MouseEvent('click', {bubbles: true}))"
    driver.execute_script(script, selector)  # type: ignore[attr-defined]


def explorer_pages(folder: Path) -> dict[str, tuple[Path, Callable[[object], None]]]:
    """Pages to photograph, each with what to do before the picture."""
    x = gc.var("x", shape=(3,))
    s = gc.var("s")
    f = gc.sum(gc.tanh(x * s) ** 2) + gc.log1p(s * s)
    gx, gs = gc.grad(f, [x, s])
    fn = gc.compile([x, s], [f, gx, gs], backend="numpy")
    page = fn.explore(folder / "fn.html")
    final_sum = (
        "const D = JSON.parse(document.getElementById('graphc-data').textContent);"
        "return D.layouts[D.stages[D.stages.length - 1].layout].items.find(i => D.nodes[i].op === 'sum')"
    )

    def compiled(driver: object) -> None:
        sum_id = driver.execute_script(final_sum)  # type: ignore[attr-defined]
        click(driver, "#scene .node.holder .toggle")
        click(driver, f'#scene .node[data-node="{sum_id}"]')
        click(driver, f'#details a[data-code="{sum_id}"]')

    def before(driver: object) -> None:
        k = driver.execute_script(  # type: ignore[attr-defined]
            "return JSON.parse(document.getElementById('graphc-data').textContent).stages"
            ".findIndex(s => s.name === 'simplify' && s.changes)"
        )
        click(driver, f'#tabs button[data-stage="{k}"]')
        click(driver, "#before")
        click(driver, "#fit")
        rewritten = driver.execute_script(  # type: ignore[attr-defined]
            "const D = JSON.parse(document.getElementById('graphc-data').textContent);"
            f"return Object.keys(D.stages[{k}].changes.rules)[0]"
        )
        click(driver, f'#scene .node[data-node="{rewritten}"]')

    return {"explorer.png": (page, compiled), "explorer-before.png": (page, before)}


def write_explorer(only: str) -> list[Path]:
    wanted = [name for name in ("explorer.png", "explorer-before.png") if only in name]
    if not wanted:
        return []
    driver = browser()
    written = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            for name, (page, act) in explorer_pages(Path(folder)).items():
                if name not in wanted:
                    continue
                driver.get(page.as_uri())  # type: ignore[attr-defined]
                act(driver)
                path = IMG / name
                driver.save_screenshot(str(path))  # type: ignore[attr-defined]
                written.append(path)
    finally:
        driver.quit()  # type: ignore[attr-defined]
    return written


# --- the examples' plots -------------------------------------------------------------------


def write_plots(only: str) -> list[Path]:
    runs = {
        "train_digits.png": ["examples/train_digits.py", "--plot", str(IMG / "train_digits.png")],
        "rnn_sequence.png": ["examples/rnn_sequence.py", "--plot", str(IMG / "rnn_sequence.png")],
    }
    written = []
    for name, command in runs.items():
        if only not in name:
            continue
        done = subprocess.run([sys.executable, *command], cwd=REPO, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed (it needs the examples extra):\n{done.stderr.strip()}")
        written.append(IMG / name)
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description="Make every picture in docs/img.")
    parser.add_argument("--only", default="", metavar="NAME", help="only pictures whose file name contains NAME")
    args = parser.parse_args()
    IMG.mkdir(exist_ok=True)
    status = 0
    for part in (write_graphs, write_explorer, write_plots):
        try:
            for path in part(args.only):
                print(f"wrote {path.relative_to(REPO)}")
        except RuntimeError as e:
            print(f"make_images: skipped {part.__name__}: {e}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
