// graphc explorer: draws the stages of one optimizer run from the data embedded in the page.
// No network, no libraries. The layout (layers, order, x) was computed in Python; this file only
// shifts it when a fused region or a loop body is expanded, draws it as SVG, and handles input.
(function () {
  "use strict";
  const DATA = JSON.parse(document.getElementById("graphc-data").textContent);
  const K = DATA.constants;
  const NODES = DATA.nodes;
  const SVGNS = "http://www.w3.org/2000/svg";
  const state = { stage: DATA.start, before: false, selected: null, expanded: new Set(), matches: [], match: -1 };
  const view = { k: 1, x: 0, y: 0 };
  const $ = (id) => document.getElementById(id);
  window.graphcTimings = {};

  function esc(text) {
    return String(text).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  }

  // --- geometry: the Python layout, widened where bodies are expanded -------------------------

  function measure(layoutId, path) {
    const L = DATA.layouts[layoutId];
    const count = L.x.length;
    const real = L.items.length;
    const w = new Array(count), h = new Array(count), inner = {};
    const grown = [];
    for (let k = 0; k < count; k++) {
      if (k >= real) { w[k] = K.dummy; h[k] = 0; continue; }
      const node = NODES[L.items[k]];
      w[k] = node.w; h[k] = K.box;
      const key = path + layoutId + "." + k + "/";
      if (node.bodies && state.expanded.has(key)) {
        const g = measure(node.bodies[0][1], key);
        inner[k] = { geom: g, key: key };
        const wide = Math.max(node.w, g.width + 2 * K.pad);
        grown.push([L.x[k], wide - node.w]);
        w[k] = wide; h[k] = g.height + K.header + K.pad;
      }
    }
    const x = new Array(count);
    for (let k = 0; k < count; k++) {
      let shift = 0;
      for (const [gx, dw] of grown) {
        if (gx < L.x[k]) shift += dw;
        else if (gx === L.x[k] && inner[k]) shift += dw / 2;
      }
      x[k] = L.x[k] + shift;
    }
    let layers = 0;
    for (const layer of L.layer) layers = Math.max(layers, layer + 1);
    const band = new Array(layers).fill(0);
    for (let k = 0; k < count; k++) band[L.layer[k]] = Math.max(band[L.layer[k]], h[k]);
    const top = [];
    let y = K.margin;
    for (let b = 0; b < layers; b++) { top.push(y); y += band[b] + K.vgap; }
    let right = 0;
    for (let k = 0; k < count; k++) right = Math.max(right, x[k] + w[k] / 2);
    const cy = (k) => top[L.layer[k]] + band[L.layer[k]] / 2;
    const labels = path === "" ? K.box : 0;  // room for the "out k" labels under the top graph
    return { L, x, w, h, cy, inner, width: right + K.margin, height: y - K.vgap + K.margin + labels };
  }

  function port(j, n, width) {
    if (n < 2) return 0;
    const spread = Math.min(width - 2 * K.pad, 24 * (n - 1));
    return -spread / 2 + (spread * j) / (n - 1);
  }

  // --- drawing ------------------------------------------------------------------------------------

  function statusOf(id) {
    const stage = DATA.stages[state.stage];
    if (state.before) return stage.changes && stage.removedSet.has(id) ? "removed" : "";
    const change = stage.changes && stage.changes.added[id];
    if (!change) return "";
    return { rewritten: "rewritten", fused: "fusednew", rebuilt: "added" }[change[0]] || "added";
  }

  function drawLayout(layoutId, path, g, out, top) {
    const L = g.L;
    const real = L.items.length;
    for (const e of L.edges) {
      const a = e[0], b = e[1], j = e[2];
      const nb = NODES[L.items[b]];
      const pts = [[g.x[a], g.cy(a) + g.h[a] / 2]];
      for (let r = 3; r < e.length; r++) pts.push([g.x[e[r]], g.cy(e[r])]);
      pts.push([g.x[b] + port(j, nb.inputs.length, g.w[b]), g.cy(b) - g.h[b] / 2]);
      let d = "M" + pts[0][0].toFixed(1) + "," + pts[0][1].toFixed(1);
      for (let p = 1; p < pts.length; p++) {
        const [x0, y0] = pts[p - 1], [x1, y1] = pts[p], m = ((y0 + y1) / 2).toFixed(1);
        d += " C" + x0.toFixed(1) + "," + m + " " + x1.toFixed(1) + "," + m + " " + x1.toFixed(1) + "," + y1.toFixed(1);
      }
      out.push('<path class="edge" data-a="' + L.items[a] + '" data-b="' + L.items[b] + '" d="' + d + '"/>');
    }
    const outputs = new Set(L.outputs);
    for (let k = 0; k < real; k++) {
      const id = L.items[k], node = NODES[id];
      const x = g.x[k], y = g.cy(k), w = g.w[k], h = g.h[k];
      const left = x - w / 2, topY = y - h / 2;
      let cls = "node " + (node.op === "var" || node.op === "const" ? node.op : "op");
      if (node.bodies) cls += " holder" + (node.op === "fused" ? "" : " loop");
      if (outputs.has(k) && top) cls += " output";
      const status = top ? statusOf(id) : "";
      if (status) cls += " " + status;
      if (state.selected === id) cls += " selected";
      if (state.matchSet && state.matchSet.has(id)) cls += " match";
      const rx = node.op === "var" ? h / 2 : 5;
      out.push('<g class="' + cls + '" data-node="' + id + '">');
      if (g.inner[k]) {
        const inner = g.inner[k];
        out.push('<rect class="box" x="' + left.toFixed(1) + '" y="' + topY.toFixed(1) + '" width="' + w.toFixed(1) + '" height="' + h.toFixed(1) + '" rx="8"/>');
        out.push('<text x="' + (left + K.pad).toFixed(1) + '" y="' + (topY + 15).toFixed(1) + '">' + esc(node.head) + " : " + esc(node.type) + "</text>");
        out.push(toggle(left + w - 18, topY + 3, "\u2212", inner.key));
        const dx = left + (w - inner.geom.width) / 2, dy = topY + K.header;
        out.push('<g transform="translate(' + dx.toFixed(1) + "," + dy.toFixed(1) + ')">');
        drawLayout(node.bodies[0][1], inner.key, inner.geom, out, false);
        out.push("</g>");
      } else {
        out.push('<rect class="box" x="' + left.toFixed(1) + '" y="' + topY.toFixed(1) + '" width="' + w.toFixed(1) + '" height="' + h.toFixed(1) + '" rx="' + rx + '"/>');
        out.push('<text x="' + x.toFixed(1) + '" y="' + (topY + 15).toFixed(1) + '" text-anchor="middle">' + esc(node.head) + "</text>");
        out.push('<text class="type" x="' + x.toFixed(1) + '" y="' + (topY + 29).toFixed(1) + '" text-anchor="middle">' + esc(node.type) + "</text>");
        if (node.bodies) out.push(toggle(left + w - 18, topY + 3, "+", path + layoutId + "." + k + "/"));
      }
      out.push("</g>");
    }
    if (top) {
      L.outputs.forEach((k, i) => {
        out.push('<text class="outlabel" x="' + g.x[k].toFixed(1) + '" y="' + (g.cy(k) + g.h[k] / 2 + 14).toFixed(1) + '" text-anchor="middle">out ' + i + "</text>");
      });
    }
  }

  function toggle(x, y, sign, key) {
    return '<g class="toggle" data-key="' + esc(key) + '"><rect x="' + x.toFixed(1) + '" y="' + y.toFixed(1) +
      '" width="15" height="15" rx="3"/><text x="' + (x + 7.5).toFixed(1) + '" y="' + (y + 12).toFixed(1) +
      '" text-anchor="middle">' + sign + "</text></g>";
  }

  function currentLayout() {
    const stage = DATA.stages[state.stage];
    if (state.before && state.stage > 0) return DATA.stages[state.stage - 1].layout;
    return stage.layout;
  }

  function render() {
    const start = performance.now();
    const layoutId = currentLayout();
    const g = measure(layoutId, "");
    const out = [];
    drawLayout(layoutId, "", g, out, true);
    const scene = $("scene");
    scene.innerHTML = out.join("");
    state.geometry = g;
    state.size = [g.width, g.height];
    applyView();
    const ms = performance.now() - start;
    window.graphcTimings[state.stage] = ms;
    document.body.dataset.rendered = String(state.stage);
    document.body.dataset.renderMs = ms.toFixed(1);
    document.body.dataset.items = String(scene.querySelectorAll(".node").length);
  }

  function applyView() {
    const scene = $("scene");
    scene.setAttribute("transform", "translate(" + view.x + "," + view.y + ") scale(" + view.k + ")");
    scene.classList.toggle("far", view.k < 0.45);
  }

  function fit(whole) {
    // whole: the entire graph in view; otherwise (the first view) the top of a tall graph at a readable scale
    const box = $("canvas").getBoundingClientRect();
    const [w, h] = state.size || [1, 1];
    const all = Math.min(box.width / w, box.height / h) * 0.95;
    const across = Math.min(1, (box.width / w) * 0.95);
    view.k = Math.min(1.5, Math.max(0.02, whole ? all : Math.max(all, Math.min(across, 0.6))));
    view.x = (box.width - w * view.k) / 2;
    view.y = 40;
    applyView();
  }

  // --- the stage bar ---------------------------------------------------------------------------

  function stageLabel(stage, k) {
    if (k === 0) return "input";
    const where = stage.final ? "final" : "round " + stage.round;
    return stage.name + " \u00b7 " + where;
  }

  function buildStages() {
    const tabs = $("tabs");
    DATA.stages.forEach((stage, k) => {
      stage.removedSet = new Set(stage.changes ? stage.changes.removed : []);
      const b = document.createElement("button");
      b.dataset.stage = String(k);
      const added = stage.changes ? Object.keys(stage.changes.added).length : 0;
      const removed = stage.changes ? stage.changes.removed.length : 0;
      const delta = stage.changes ? ' <span class="delta">+' + added + " \u2212" + removed + "</span>" : "";
      b.innerHTML = esc(k + ". " + stageLabel(stage, k)) + " (" + stage.nodes + ")" + delta;
      if (k > 0 && !stage.changes) { b.classList.add("unchanged"); b.title = "this run changed nothing"; }
      b.addEventListener("click", () => setStage(k));
      tabs.appendChild(b);
    });
    const slider = $("slider");
    slider.max = String(DATA.stages.length - 1);
    slider.addEventListener("input", () => setStage(Number(slider.value)));
  }

  function setStage(k) {
    state.stage = k;
    if (k === 0) state.before = false;
    $("slider").value = String(k);
    $("before").checked = state.before;
    $("before").disabled = k === 0;
    for (const b of $("tabs").children) b.classList.toggle("current", Number(b.dataset.stage) === k);
    const stage = DATA.stages[k];
    let text = stageLabel(stage, k) + ": " + stage.nodes + " nodes";
    if (stage.ms !== undefined) text += ", " + stage.ms + " ms";
    if (stage.changes) {
      const kinds = {};
      for (const change of Object.values(stage.changes.added)) {
        const label = change[1] || change[0];
        kinds[label] = (kinds[label] || 0) + 1;
      }
      const parts = Object.entries(kinds).map(([name, n]) => name + " \u00d7" + n);
      text += "; added " + Object.keys(stage.changes.added).length + ", removed " + stage.changes.removed.length;
      if (parts.length) text += " (" + parts.join(", ") + ")";
    } else if (k > 0) {
      text += "; no change";
    }
    $("stageinfo").textContent = text;
    render();
    // each stage has its own layout: follow the selected node when this stage has it, else start afresh
    if (state.selected !== null && $("scene").querySelector('.node[data-node="' + state.selected + '"]')) centerOn(state.selected);
    else fit(false);
    showDetails();
  }

  // --- details -----------------------------------------------------------------------------

  function link(id) {
    const node = NODES[id];
    return '<a data-goto="' + id + '">#' + id + " " + esc(node.head) + "</a> <span class=\"muted\">" + esc(node.type) + "</span>";
  }

  function usersOf(id) {
    const L = DATA.layouts[currentLayout()];
    const users = [];
    for (const e of L.edges) if (L.items[e[0]] === id) users.push(L.items[e[1]]);
    return [...new Set(users)];
  }

  function originChain(id) {
    const rows = [];
    let link_ = NODES[id].origin;
    let guard = 0;
    while (link_ !== undefined && guard++ < 16) {
      const node = NODES[link_];
      rows.push("<li>" + link(link_) + (node.loc ? ' <span class="muted">at ' + esc(node.loc) + "</span>" : "") + "</li>");
      link_ = node.origin;
    }
    return rows;
  }

  function codeLines(id) {
    if (!DATA.code) return "";
    const ranges = DATA.code.lines[id];
    if (!ranges) {
      const compiled = new Set(DATA.layouts[DATA.stages[DATA.stages.length - 1].layout].items);
      const why = compiled.has(id) ? "it computes nothing of its own (an input, a constant or a view)" : "it is not in the compiled graph";
      return '<h3>Code</h3><p class="muted">no lines of ' + esc(DATA.code.label) + ": " + why + "</p>";
    }
    const lines = DATA.code.textLines;
    let text = "";
    let shown = 0;
    for (const [a, b] of ranges) {
      for (let n = a; n <= b && shown < 60; n++, shown++) text += String(n).padStart(5) + "  " + lines[n - 1] + "\n";
    }
    const kernels = DATA.code.kernels && DATA.code.kernels[id] ? "<p>" + esc(DATA.code.kernels[id].join(", ")) + "</p>" : "";
    return "<h3>Code: " + esc(DATA.code.label) + "</h3>" + kernels + "<pre>" + esc(text) + '</pre><a data-code="' + id + '">show in the code panel</a>';
  }

  function showDetails() {
    const panel = $("details");
    const id = state.selected;
    if (id === null || id === undefined) {
      panel.innerHTML = "<h2>Click a node</h2><p class=\"muted\">" + esc(DATA.help) + "</p>";
      return;
    }
    const node = NODES[id];
    const stage = DATA.stages[state.stage];
    const parts = ["<h2>#" + id + " " + esc(node.head) + "</h2>", "<div>" + esc(node.op) + " : " + esc(node.type) + "</div>"];
    const change = stage.changes && stage.changes.added[id];
    if (change && !state.before) {
      let text = { rewritten: "rewritten by " + change[1], fused: "a fused region (fuse)", rebuilt: "rebuilt: its inputs changed" }[change[0]];
      if (change[2] !== null && change[2] !== undefined) text += ", replacing " + link(change[2]);
      parts.push('<h3>This pass</h3><div class="status">' + text + "</div>");
    } else if (stage.removedSet.has(id)) {
      const rule = stage.changes.rules[id];
      let text = "removed by " + esc(stage.name);
      const heir = Object.entries(stage.changes.added).find(([, change]) => change[2] === id);
      if (rule) text += ": rule " + esc(rule[0]) + " replaced it with " + link(rule[1]);
      else if (heir) text += ": " + link(Number(heir[0])) + " took its place";
      else text += ": the outputs no longer reach it";
      parts.push("<h3>This pass</h3><div>" + text + "</div>");
    }
    parts.push("<h3>Provenance</h3>");
    parts.push(node.loc ? "<div>built at <b>" + esc(node.loc) + "</b></div>" : '<div class="muted">no user location recorded</div>');
    const chain = originChain(id);
    if (chain.length) parts.push("<div>derived from (a gradient node: the forward node it differentiates; a rewrite: the node it replaced):</div><ul>" + chain.join("") + "</ul>");
    if (node.attrs) parts.push("<h3>Attributes</h3><ul>" + node.attrs.map((a) => "<li>" + esc(a) + "</li>").join("") + "</ul>");
    if (node.inputs && node.inputs.length) parts.push("<h3>Inputs</h3><ol start=\"0\">" + node.inputs.map((i) => "<li>" + link(i) + "</li>").join("") + "</ol>");
    if (!node.detached) {
      const users = usersOf(id);
      if (users.length) parts.push("<h3>Users</h3><ul>" + users.map((u) => "<li>" + link(u) + "</li>").join("") + "</ul>");
    }
    if (node.bodies) parts.push("<h3>Body</h3><div>" + node.bodies.map(([key, l]) => esc(key) + ": " + DATA.layouts[l].items.length + " nodes").join(", ") + " \u2014 use the + on the node to expand it</div>");
    if (node.detached) parts.push('<p class="muted">This node is not in any stage: it is kept only as provenance.</p>');
    parts.push(codeLines(id));
    panel.innerHTML = parts.join("");
  }

  function select(id, center) {
    state.selected = id;
    for (const el of $("scene").querySelectorAll(".node.selected")) el.classList.remove("selected");
    for (const el of $("scene").querySelectorAll('.node[data-node="' + id + '"]')) el.classList.add("selected");
    for (const el of $("scene").querySelectorAll(".edge.hot")) el.classList.remove("hot");
    for (const el of $("scene").querySelectorAll('.edge[data-a="' + id + '"], .edge[data-b="' + id + '"]')) el.classList.add("hot");
    showDetails();
    if (center) centerOn(id);
  }

  function centerOn(id) {
    const el = $("scene").querySelector('.node[data-node="' + id + '"] rect');
    if (!el) return;
    const box = $("canvas").getBoundingClientRect();
    const r = el.getBoundingClientRect();
    view.x += box.left + box.width / 2 - (r.left + r.width / 2);
    view.y += box.top + box.height / 2 - (r.top + r.height / 2);
    applyView();
  }

  function showCode(id) {
    const panel = $("codepanel");
    panel.open = true;
    fillCode();
    for (const el of $("code").querySelectorAll(".hit")) el.classList.remove("hit");
    const ranges = DATA.code.lines[id] || [];
    let first = null;
    for (const [a, b] of ranges) {
      for (let n = a; n <= b; n++) {
        const row = $("code").children[n - 1];
        if (row) { row.classList.add("hit"); first = first || row; }
      }
    }
    if (first) first.scrollIntoView({ block: "center" });
  }

  function fillCode() {
    const code = $("code");
    if (!DATA.code || code.dataset.filled) return;
    code.innerHTML = DATA.code.textLines.map((line, k) => '<div data-line="' + (k + 1) + '"><span class="no">' + (k + 1) + "</span>" + esc(line) + "</div>").join("");
    code.dataset.filled = "1";
  }

  // --- search ----------------------------------------------------------------------------------

  function search(text) {
    const query = text.trim().toLowerCase();
    const L = DATA.layouts[currentLayout()];
    state.matches = query ? L.items.filter((id) => {
      const n = NODES[id];
      return (n.head + " " + n.op + " " + n.type + " " + (n.loc || "") + " #" + id).toLowerCase().includes(query);
    }) : [];
    state.matchSet = new Set(state.matches);
    state.match = -1;
    render();
    $("matches").textContent = query ? state.matches.length + " found" : "";
  }

  // --- input -----------------------------------------------------------------------------------

  function wire() {
    const canvas = $("canvas");
    let drag = null;
    canvas.addEventListener("mousedown", (e) => { drag = [e.clientX, e.clientY, view.x, view.y, false]; canvas.classList.add("dragging"); });
    window.addEventListener("mousemove", (e) => {
      if (!drag) return;
      if (Math.abs(e.clientX - drag[0]) + Math.abs(e.clientY - drag[1]) > 3) drag[4] = true;
      view.x = drag[2] + e.clientX - drag[0]; view.y = drag[3] + e.clientY - drag[1]; applyView();
    });
    window.addEventListener("mouseup", () => { canvas.classList.remove("dragging"); setTimeout(() => { drag = null; }, 0); });
    canvas.addEventListener("wheel", (e) => {
      e.preventDefault();
      const box = canvas.getBoundingClientRect();
      const px = e.clientX - box.left, py = e.clientY - box.top;
      const factor = Math.exp(-e.deltaY * 0.0015);
      const k = Math.min(4, Math.max(0.02, view.k * factor));
      view.x = px - ((px - view.x) * k) / view.k; view.y = py - ((py - view.y) * k) / view.k; view.k = k;
      applyView();
    }, { passive: false });
    $("scene").addEventListener("click", (e) => {
      if (drag && drag[4]) return;
      const t = e.target.closest(".toggle");
      if (t) {
        const key = t.dataset.key;
        if (state.expanded.has(key)) state.expanded.delete(key); else state.expanded.add(key);
        render();
        return;
      }
      const n = e.target.closest(".node");
      if (n) select(Number(n.dataset.node), false);
    });
    $("details").addEventListener("click", (e) => {
      const a = e.target.closest("a");
      if (!a) return;
      if (a.dataset.goto !== undefined) select(Number(a.dataset.goto), true);
      if (a.dataset.code !== undefined) showCode(Number(a.dataset.code));
    });
    $("code").addEventListener("click", (e) => {
      const row = e.target.closest("div[data-line]");
      if (!row || !DATA.code) return;
      const line = Number(row.dataset.line);
      for (const [id, ranges] of Object.entries(DATA.code.lines)) {
        if (ranges.some(([a, b]) => a <= line && line <= b && b - a < 400)) { select(Number(id), true); return; }
      }
    });
    $("fit").addEventListener("click", () => fit(true));
    $("actual").addEventListener("click", () => { view.k = 1; applyView(); });
    $("collapse").addEventListener("click", () => { state.expanded.clear(); render(); });
    $("before").addEventListener("change", (e) => { state.before = e.target.checked; render(); showDetails(); });
    $("search").addEventListener("input", (e) => search(e.target.value));
    $("search").addEventListener("keydown", (e) => {
      if (e.key !== "Enter" || !state.matches.length) return;
      state.match = (state.match + 1) % state.matches.length;
      select(state.matches[state.match], true);
    });
    $("codepanel").addEventListener("toggle", fillCode);
  }

  function main() {
    if (DATA.code) DATA.code.textLines = DATA.code.text.split("\n");
    else $("codepanel").style.display = "none";
    buildStages();
    wire();
    setStage(state.stage);
    fit(false);
  }

  main();
})();
