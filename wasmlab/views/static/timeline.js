// The callback timeline: swimlanes replayed in the browser from the recorded trace.
// Only the rows in view are in the DOM, so a trace of 100,000 events scrolls as fast as one of 10.

function render({ model, el }) {
  const started = performance.now();
  // a row: marker | #seq | thread | kind | label (what happened) | the lanes, one column each
  const ROW_H = 20, FIXED_W = 14 + 58 + 70 + 76, LABEL_W = 470;
  let COL_W = 84; // narrower when many lanes must fit next to the labels
  const root = wlEl("div", { class: "wl wl-timeline" });
  el.append(root);
  const fetchDetails = wlDetailsFetcher(model);

  let cols = null, lanes = [], n = 0;
  let vis = new Int32Array(0); // visible row indices, ascending
  let laneCol = new Int32Array(0); // lane index -> column (or -1 when no visible row uses it)
  let nCols = 0;
  let step = model.get("step");
  let selected = -1;

  // ---- controls ------------------------------------------------------------------------------
  const pos = wlEl("span", { class: "wl-pos", "aria-live": "polite" });
  const scrub = wlEl("input", { type: "range", min: 0, max: 0, value: 0, "aria-label": "scrub through the events" });
  scrub.addEventListener("input", () => go(Number(scrub.value), false));
  scrub.addEventListener("change", () => go(Number(scrub.value), true));
  const player = wlPlayer(() => go(cur() + 1, false), () => model.get("speed") || 6);
  const playBtn = wlButton("▶ play", "play / pause the replay", () => togglePlay(), "play");
  player.onchange = () => {
    playBtn.textContent = player.playing ? "⏸ pause" : "▶ play";
    if (!player.playing) save();
  };
  const speed = wlSelect(
    [[2, "2 events/s"], [6, "6 events/s"], [20, "20 events/s"], [60, "60 events/s"]],
    model.get("speed"),
    (v) => { model.set("speed", Number(v)); model.save_changes(); player.restart(); },
    "replay speed",
  );
  const bar = wlEl(
    "div", { class: "wl-bar" },
    wlButton("|◀ first", "first event", () => go(0), "first"),
    wlButton("◀ step", "previous event", () => go(cur() - 1), "prev"),
    playBtn,
    wlButton("step ▶", "next event", () => go(cur() + 1), "next"),
    wlButton("last ▶|", "last event", () => go(vis.length - 1), "last"),
    scrub, pos, speed,
  );
  const filters = wlEl("div", { class: "wl-bar wl-filters" });
  const kindsBox = wlEl("span", { class: "wl-kinds" });

  // ---- the lanes -----------------------------------------------------------------------------
  const scroll = wlEl("div", { class: "wl-tl-scroll" });
  const head = wlEl("div", { class: "wl-tl-head" });
  head.style.position = "sticky";
  head.style.top = "0";
  head.style.zIndex = "2";
  head.style.background = "var(--jp-layout-color0, #fff)";
  const canvas = wlEl("div", { class: "wl-tl-canvas" });
  scroll.append(head, canvas);
  const details = wlEl("div", { class: "wl-details", "aria-live": "polite" });
  root.append(wlTitle(model), bar, filters, scroll, details);
  wlKeyNav(root, {
    ArrowRight: () => go(cur() + 1), ArrowDown: () => go(cur() + 1),
    ArrowLeft: () => go(cur() - 1), ArrowUp: () => go(cur() - 1),
    Home: () => go(0), End: () => go(vis.length - 1), " ": () => togglePlay(),
  });

  function togglePlay() {
    if (player.playing) player.stop();
    else { if (cur() >= vis.length - 1) go(0, false); player.start(); }
  }

  function save() {
    if (model.get("step") !== step) { model.set("step", step); model.save_changes(); }
  }

  /** Position of the current step among the visible rows. */
  function cur() {
    const p = wlLowerBound(vis, step);
    return p < vis.length ? p : vis.length - 1;
  }

  /** Move to visible position p; returns false at either end (stops the player). */
  function go(p, persist = true) {
    if (!vis.length) return false;
    const q = Math.max(0, Math.min(vis.length - 1, p));
    const moved = vis[q] !== step;
    step = vis[q];
    scrub.value = String(q);
    reveal(q);
    paint();
    showDetails(step);
    if (persist) save();
    return moved && q === p;
  }

  function reveal(q) {
    const top = q * ROW_H, view = scroll.clientHeight - 44;
    if (top < scroll.scrollTop || top > scroll.scrollTop + view - ROW_H) {
      scroll.scrollTop = Math.max(0, top - Math.floor(view / 3));
    }
  }

  // ---- data and filters ----------------------------------------------------------------------
  function load() {
    cols = model.get("columns") || {};
    lanes = model.get("lanes") || [];
    n = (cols.seq || []).length;
    buildFilters();
    rebuild();
  }

  let controls = {};
  function buildFilters() {
    const threads = cols.threads || [];
    const kinds = cols.kinds || [];
    const set = (k, v) => { model.set(k, v); model.save_changes(); };
    controls.worker = wlSelect(
      [["", "every thread"], ...threads.map((t) => [t, t])], model.get("worker"), (v) => set("worker", v), "thread");
    controls.stream = wlSelect(
      [[-1, "every stream"], ...(model.get("streams") || []).map((s) => [s.id, s.label])],
      model.get("stream"), (v) => set("stream", Number(v)), "stream (request)");
    controls.filter = wlSelect(
      [["", "every filter / VM"], ...lanes.filter((l) => !["downstream", "host"].includes(l.kind))
        .map((l) => [l.key, `${l.kind === "filter" ? "filter" : l.kind}: ${l.label}`])],
      model.get("filter"), (v) => set("filter", v), "filter, VM or lane");
    controls.mode = wlSelect([["lanes", "swimlanes"], ["envoy", "Envoy wasm:trace text"]], model.get("mode"),
      (v) => set("mode", v), "display");
    kindsBox.replaceChildren();
    controls.kinds = [];
    for (const k of kinds) {
      const box = wlEl("input", { type: "checkbox", "data-kind": k });
      box.addEventListener("change", () => {
        const now = new Set(model.get("kinds"));
        if (box.checked) now.add(k); else now.delete(k);
        set("kinds", kinds.filter((x) => now.has(x)));
      });
      controls.kinds.push(box);
      const sw = wlEl("span", { class: "wl-swatch" });
      sw.style.background = WL_KIND_COLOURS[k] || "#999";
      kindsBox.append(wlEl("label", {}, box, sw, k));
    }
    filters.replaceChildren(controls.worker, controls.stream, controls.filter, controls.mode, kindsBox);
    syncControls();
  }

  /** Show the filters' current values (changed here or from Python). */
  function syncControls() {
    for (const k of ["worker", "stream", "filter", "mode"]) {
      const c = controls[k];
      if (c && String(c.value) !== String(model.get(k))) c.value = String(model.get(k));
    }
    const on = new Set(model.get("kinds"));
    for (const box of controls.kinds || []) box.checked = on.has(box.getAttribute("data-kind"));
  }

  function rebuild() {
    const threads = cols.threads || [];
    const kinds = cols.kinds || [];
    const wantThread = threads.indexOf(model.get("worker"));
    const wantStream = model.get("stream");
    const laneKey = model.get("filter");
    const wantLane = laneKey ? lanes.findIndex((l) => l.key === laneKey) : -1;
    const kindOn = new Uint8Array(kinds.length);
    for (const k of model.get("kinds")) { const i = kinds.indexOf(k); if (i >= 0) kindOn[i] = 1; }
    const envoy = model.get("mode") === "envoy";
    const out = [];
    const { th, st, kind, lane, src, dst, label } = cols;
    const cb = kinds.indexOf("callback"), hc = kinds.indexOf("hostcall"), lg = kinds.indexOf("log");
    for (let i = 0; i < n; i++) {
      if (wantThread >= 0 && th[i] !== wantThread) continue;
      if (wantStream >= 0 && st[i] !== wantStream) continue;
      if (!envoy && !kindOn[kind[i]]) continue; // Envoy's text has its own kinds (below)
      if (wantLane >= 0 && lane[i] !== wantLane && src[i] !== wantLane && dst[i] !== wantLane) continue;
      if (envoy && kind[i] !== cb && kind[i] !== hc && !(kind[i] === lg && /^\[\w+\]\[(wasm|lua)\] /.test(label[i]))) continue;
      out.push(i);
    }
    vis = Int32Array.from(out);
    // columns: only lanes some visible row uses, left to right
    const used = new Uint8Array(lanes.length);
    used[0] = 1; used[1] = 1;
    for (const i of vis) { used[lane[i]] = 1; used[src[i]] = 1; used[dst[i]] = 1; }
    laneCol = new Int32Array(lanes.length).fill(-1);
    nCols = 0;
    for (let j = 0; j < lanes.length; j++) if (used[j]) laneCol[j] = nCols++;
    scrub.max = String(Math.max(0, vis.length - 1));
    const room = (root.clientWidth || 1100) - FIXED_W - LABEL_W - 40;
    COL_W = Math.max(44, Math.min(84, Math.floor(room / Math.max(1, nCols))));
    drawHead(envoy);
    const width = envoy ? FIXED_W + 1200 : FIXED_W + LABEL_W + nCols * COL_W + 20;
    canvas.style.height = `${vis.length * ROW_H}px`;
    canvas.style.width = `${width}px`;
    head.style.width = `${width}px`;
    if (!vis.length) {
      pos.textContent = "no events match";
      paint();
      details.textContent = "";
      return;
    }
    go(cur(), false);
  }

  function drawHead(envoy) {
    head.replaceChildren();
    if (envoy) {
      head.append(wlEl("div", { class: "wl-tl-lane", style: `left:${FIXED_W}px;width:900px;text-align:left` },
        wlEl("b", {}, "Envoy --component-log-level wasm:trace lines")));
      return;
    }
    for (let j = 0; j < lanes.length; j++) {
      if (laneCol[j] < 0) continue;
      const l = lanes[j];
      const parts = l.label.split(" · ");
      const d = wlEl("div", { class: "wl-tl-lane", "data-lane": l.key, title: `${l.label} (${l.kind})` },
        wlEl("b", {}, parts[0]), parts.slice(1).join(" · ") || l.detail || l.kind);
      d.style.left = `${FIXED_W + LABEL_W + laneCol[j] * COL_W}px`;
      d.style.width = `${COL_W}px`;
      d.style.borderTopColor = WL_LANE_COLOURS[l.kind] || "#999";
      head.append(d);
    }
  }

  // ---- painting the rows in view ---------------------------------------------------------------
  let painted = "";
  function paint() {
    const top = Math.max(0, Math.floor(scroll.scrollTop / ROW_H) - 8);
    const count = Math.ceil((scroll.clientHeight || 380) / ROW_H) + 16;
    const key = `${top}:${count}:${step}:${selected}:${vis.length}:${nCols}:${COL_W}:${model.get("mode")}`;
    const q = cur();
    pos.textContent = vis.length ? `event ${q + 1} of ${vis.length} (#${cols.seq[step]})` : "no events match";
    if (key === painted) return;
    painted = key;
    const envoy = model.get("mode") === "envoy";
    const frag = document.createDocumentFragment();
    const kinds = cols.kinds;
    const threads = cols.threads;
    for (let p = top; p < Math.min(vis.length, top + count); p++) {
      const i = vis[p];
      const k = kinds[cols.kind[i]];
      const row = wlEl("div", {
        class: `wl-row${i === step ? " wl-current" : ""}${i === selected ? " wl-selected" : ""}`,
        "data-index": i, "data-seq": cols.seq[i], role: "button",
        "aria-current": i === step ? "step" : null,
      });
      row.style.top = `${p * ROW_H}px`;
      const kindEl = wlEl("span", { class: "wl-kind" }, k);
      kindEl.style.borderLeftColor = WL_KIND_COLOURS[k] || "#999";
      row.append(
        wlEl("span", { class: "wl-marker" }),
        wlEl("span", { class: "wl-seq" }, `#${cols.seq[i]}`),
        wlEl("span", { class: "wl-thread" }, threads[cols.th[i]]),
        kindEl,
      );
      let text = cols.label[i];
      if (envoy && k === "log") text = text.replace(/^\[\w+\]\[\w+\] /, "");
      const label = wlEl("span", { class: `wl-label${cols.flag[i] ? " wl-flag" : ""}` },
        (envoy ? "" : "  ".repeat(Math.min(cols.depth[i], 6))) + text);
      const cell = wlEl("span", { class: "wl-labelcell", title: cols.note[i] ? `${text}\n${cols.note[i]}` : text }, label);
      if (!envoy && cols.note[i]) cell.append(wlEl("span", { class: "wl-rnote" }, cols.note[i]));
      if (!envoy) cell.style.width = `${LABEL_W}px`;
      row.append(cell);
      if (!envoy) row.append(arrow(i, k));
      row.addEventListener("click", () => { selected = i; go(wlLowerBound(vis, i)); });
      frag.append(row);
    }
    canvas.replaceChildren(frag);
  }

  function arrow(i, k) {
    const w = nCols * COL_W;
    const s = wlSvg("svg", { width: w, height: ROW_H, "aria-hidden": "true" });
    for (let c = 0; c < nCols; c++) {
      const x = c * COL_W + COL_W / 2;
      s.append(wlSvg("line", { x1: x, y1: 0, x2: x, y2: ROW_H, stroke: "#ddd" }));
    }
    const colour = WL_KIND_COLOURS[k] || "#333";
    const a = laneCol[cols.src[i]], b = laneCol[cols.dst[i]];
    const y = ROW_H / 2;
    if (a === b || a < 0 || b < 0) {
      const x = (a >= 0 ? a : Math.max(b, 0)) * COL_W + COL_W / 2;
      s.append(wlSvg("circle", { cx: x, cy: y, r: 4, fill: colour, stroke: "#000", "stroke-width": 0.5 }));
      return s;
    }
    const x1 = a * COL_W + COL_W / 2, x2 = b * COL_W + COL_W / 2;
    const dir = x2 > x1 ? 1 : -1;
    const line = wlSvg("line", { x1, y1: y, x2: x2 - dir * 5, y2: y, stroke: colour, "stroke-width": 2 });
    if (cols.ph[i] === 2) line.setAttribute("stroke-dasharray", "4 2");
    s.append(line);
    s.append(wlSvg("path", { d: `M${x2},${y} l${-dir * 7},-4 l0,8 z`, fill: colour }));
    return s;
  }

  scroll.addEventListener("scroll", () => paint());
  if (typeof ResizeObserver !== "undefined") {
    let width = 0;
    new ResizeObserver(() => {
      if (Math.abs(root.clientWidth - width) > 40) { width = root.clientWidth; painted = ""; if (cols) rebuild(); }
    }).observe(root);
  }

  // ---- details ----------------------------------------------------------------------------------
  let detailsFor = -1;
  function showDetails(i) {
    if (i < 0 || i >= n) { details.textContent = ""; return; }
    if (detailsFor === i) return;
    detailsFor = i;
    const l = lanes[cols.lane[i]];
    const head = `#${cols.seq[i]}  ${cols.threads[cols.th[i]]}  ${cols.kinds[cols.kind[i]]}  on ${l ? l.label : "?"}` +
      (cols.st[i] >= 0 ? `  stream ${cols.st[i]}` : "") + `\n${cols.label[i]}` + (cols.note[i] ? `\n${cols.note[i]}` : "");
    details.textContent = head + "\n(asking the kernel for the full record…)";
    fetchDetails(i).then((ev) => {
      if (detailsFor !== i) return;
      details.textContent = ev ? `${head}\n${JSON.stringify(ev, null, 1)}` : head;
    });
  }

  // ---- changes from Python -------------------------------------------------------------------
  model.on("change:columns", () => load());
  model.on("change:lanes", () => load());
  model.on("change:streams", () => buildFilters());
  for (const k of ["worker", "stream", "filter", "kinds", "mode"]) {
    model.on(`change:${k}`, () => { syncControls(); rebuild(); });
  }
  model.on("change:step", () => {
    const s = model.get("step");
    if (s !== step) { step = s; go(cur(), false); }
  });

  load();
  requestAnimationFrame(() => {
    paint();
    root.dataset.renderMs = (performance.now() - started).toFixed(1);
    root.dataset.ready = "1";
  });
  return () => player.stop();
}

export default { render };
