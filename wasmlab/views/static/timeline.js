// The callback timeline: swimlanes replayed in the browser from the recorded trace.
// Only the rows in view are in the DOM, so a trace of 100,000 events scrolls as fast as one of 10.
// Sizes come from the root's font size (em), so the view grows with JupyterLab's font settings,
// Presentation Mode and the projector toggle. Lanes come first: the label column gives way.

const TL_ICONS = {
  first: "M2,1 h2 v10 h-2 z M11,1 v10 l-7,-5 z",
  prev: "M10,1 v10 l-8,-5 z",
  play: "M2,1 v10 l9,-5 z",
  pause: "M2,1 h3 v10 h-3 z M7,1 h3 v10 h-3 z",
  next: "M2,1 v10 l8,-5 z",
  last: "M1,1 v10 l7,-5 z M8,1 h2 v10 h-2 z",
};

function tlIcon(name) {
  const s = wlSvg("svg", { viewBox: "0 0 12 12", "aria-hidden": "true" });
  s.append(wlSvg("path", { d: TL_ICONS[name], fill: "currentColor" }));
  return s;
}

function tlButton(icon, text, title, onclick, act) {
  const b = wlButton(text, title, onclick, act);
  b.prepend(tlIcon(icon));
  return b;
}

/** Why a selection shows nothing: said in words, not just "no events match". */
function tlWhyEmpty(model, cols, counts) {
  const mode = model.get("mode");
  const parts = [];
  if (model.get("worker")) parts.push(`thread ${model.get("worker")}`);
  if (model.get("stream") >= 0) parts.push(`stream ${model.get("stream")}`);
  if (model.get("filter")) parts.push(`lane ${model.get("filter")}`);
  const sel = parts.length ? `the selection (${parts.join(", ")})` : "this trace";
  if (!counts.total) return "The trace is empty: run some requests, then show the timeline again.";
  if (mode === "envoy") {
    return `Envoy's wasm:trace text only has Wasm callbacks, host calls and Wasm/Lua log lines, and ${sel} ` +
      "has none: its filters are native (no Wasm VM or Lua script ran). Choose \"nested calls\" to see its events.";
  }
  if (!counts.selected) return `No event of ${sel} matches: choose "every thread" / "every stream" / "every filter".`;
  const off = (cols.kinds || []).filter((k) => !(model.get("kinds") || []).includes(k));
  return `${sel} has ${counts.selected} events, but only of kinds that are switched off (${off.join(", ")}). ` +
    "Tick a kind above to show it.";
}

function render({ model, el }) {
  const started = performance.now();
  const root = wlEl("div", { class: "wl wl-timeline" });
  el.append(root);
  const fetchDetails = wlDetailsFetcher(model);

  let cols = null, lanes = [], n = 0;
  let vis = new Int32Array(0); // the rows shown (row indices, ascending)
  let visSeq = new Float64Array(0);
  let laneCol = new Int32Array(0); // lane index -> column (or -1 when no visible row uses it)
  let nCols = 0, callOf = new Int32Array(0);
  let step = model.get("step");
  let followFirst = model.get("cursor_seq") > 0;
  let cursorStep = -1; // the step the shared cursor was last set from or followed to
  let selected = -1;
  const unfolded = new Set(), folded = new Set();
  let hiddenIn = new Map(); // a folded call's row -> how many events it hides
  // Sizes. Rows are px (from the root's font size, recomputed when it changes); columns are laid
  // out by CSS (flex + clamp() in em and %), so the lanes fit whatever width the output area has
  // now — also when it changed while JupyterLab was not laying the cell out (content-visibility).
  let EM = 14, ROW_H = 24, FIXED_EM = 5, showThread = true;

  // ---- controls ------------------------------------------------------------------------------
  const pos = wlEl("span", { class: "wl-pos", "aria-live": "polite" });
  const scrub = wlEl("input", { type: "range", min: 0, max: 0, value: 0, "aria-label": "scrub through the events" });
  scrub.addEventListener("input", () => go(Number(scrub.value), false));
  scrub.addEventListener("change", () => go(Number(scrub.value), true));
  const player = wlPlayer(() => go(cur() + 1, false), () => model.get("speed") || 6);
  const playBtn = tlButton("play", "play", "play / pause the replay", () => togglePlay(), "play");
  player.onchange = () => {
    playBtn.replaceChildren(tlIcon(player.playing ? "pause" : "play"), player.playing ? "pause" : "play");
    if (!player.playing) save();
  };
  const speed = wlSelect(
    [[2, "2 steps/s"], [6, "6 steps/s"], [20, "20 steps/s"], [60, "60 steps/s"]],
    model.get("speed"),
    (v) => { model.set("speed", Number(v)); model.save_changes(); player.restart(); },
    "replay speed",
  );
  const bar = wlEl(
    "div", { class: "wl-bar" },
    tlButton("first", "first", "first event", () => go(0), "first"),
    tlButton("prev", "back", "previous step", () => go(cur() - 1), "prev"),
    playBtn,
    tlButton("next", "step", "next step", () => go(cur() + 1), "step"),
    tlButton("last", "last", "last event", () => go(vis.length - 1), "last"),
    scrub, pos, speed,
  );
  if (typeof wlProjectorToggle === "function") wlProjectorToggle(root);
  const filters = wlEl("div", { class: "wl-bar wl-filters" });
  const kindsBox = wlEl("span", { class: "wl-kinds" });
  const legend = wlEl("div", { class: "wl-tl-legend" });
  const hint = wlEl("div", { class: "wl-scroll-hint wl-tl-hint" });
  const tlId = `tl${Math.random().toString(36).slice(2, 10)}`;
  root.dataset.tl = tlId;
  const hintRule = wlEl("style", {});

  // ---- the lanes -----------------------------------------------------------------------------
  const scroll = wlEl("div", { class: "wl-tl-scroll" });
  const head = wlEl("div", { class: "wl-tl-head" });
  const canvas = wlEl("div", { class: "wl-tl-canvas" });
  scroll.append(head, canvas);
  const details = wlEl("div", { class: "wl-details", "aria-live": "polite" });
  root.append(hintRule, wlTitle(model), bar, filters, legend, hint, scroll, details);
  wlKeyNav(root, {
    ArrowRight: () => go(cur() + 1), ArrowDown: () => go(cur() + 1),
    ArrowLeft: () => go(cur() - 1), ArrowUp: () => go(cur() - 1),
    Home: () => go(0), End: () => go(vis.length - 1), " ": () => togglePlay(),
  });

  function togglePlay() {
    if (player.playing) player.stop();
    else { if (cur() >= vis.length - 1) go(0, false); player.start(); }
  }

  /** Tell linked views where the cursor is (cursor_seq, always) and Python the step (when asked:
   * not on every tick of the player). */
  function save(withStep = true) {
    let dirty = false;
    if (withStep && model.get("step") !== step) { model.set("step", step); dirty = true; }
    // publish only when this view moved itself: a redraw (resize, filters) standing where the
    // linked cursor put it must not pull the other views back to this view's own row
    const seq = cols && step < n ? cols.seq[step] : 0;
    if (step !== cursorStep && seq !== undefined && model.get("cursor_seq") !== seq) {
      model.set("cursor_seq", seq); dirty = true;
    }
    cursorStep = step;
    if (dirty) model.save_changes();
  }

  /** Position of the current step among the visible rows (the item holding it when folded). */
  function cur() {
    if (!vis.length) return -1;
    const p = wlLowerBound(vis, step);
    if (p < vis.length && vis[p] === step) return p;
    return Math.max(0, Math.min(vis.length - 1, p - 1));
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
    save(persist);
    return moved && q === p;
  }

  function reveal(q) {
    const top = q * ROW_H, view = scroll.clientHeight - head.offsetHeight;
    if (top < scroll.scrollTop || top > scroll.scrollTop + view - 2 * ROW_H) {
      scroll.scrollTop = Math.max(0, top - Math.floor(view / 3));
    }
  }

  // ---- data and filters ----------------------------------------------------------------------
  function load() {
    cols = model.get("columns") || {};
    lanes = model.get("lanes") || [];
    n = (cols.seq || []).length;
    callOf = new Int32Array(n).fill(-1);
    for (let i = 0; i < n; i++) if (cols.end && cols.end[i] >= 0) callOf[cols.end[i]] = i;
    buildFilters();
    rebuild();
  }

  const controls = {};
  function buildFilters() {
    const threads = cols.threads || [];
    const kinds = cols.kinds || [];
    const set = (k, v) => { model.set(k, v); model.save_changes(); };
    controls.worker = wlSelect(
      [["", "every thread"], ...threads.map((t) => [t, t])], model.get("worker"), (v) => set("worker", v), "thread");
    controls.stream = wlSelect([], model.get("stream"), (v) => set("stream", Number(v)), "stream (request)");
    fillStreams();
    controls.filter = wlSelect(
      [["", "every filter / VM"], ...lanes.filter((l) => !["downstream", "host"].includes(l.kind))
        .map((l) => [l.key, `${l.kind === "filter" ? "filter" : l.kind}: ${l.label}`])],
      model.get("filter"), (v) => set("filter", v), "filter, VM or lane");
    controls.mode = wlSelect([
      ["lanes", "nested calls"], ["compact", "compact (no return rows)"],
      ["events", "every event (call + return rows)"], ["envoy", "Envoy wasm:trace text"],
    ], model.get("mode"), (v) => set("mode", v), "display");
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

  /** The stream menu lists the streams of the chosen thread only (and the chosen stream). */
  function fillStreams() {
    const thread = model.get("worker"), chosen = model.get("stream");
    const opts = [[-1, thread ? `every stream on ${thread}` : "every stream"]];
    for (const s of model.get("streams") || []) {
      if (!thread || s.thread === thread || s.id === chosen) opts.push([s.id, s.label]);
    }
    controls.stream.replaceChildren(...opts.map(([v, label]) => wlEl("option", { value: String(v) }, label)));
    controls.stream.value = String(chosen);
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

  /** The rows the filters select (before folding), and how many the kind boxes alone drop. */
  function selectRows(mode, counts) {
    const threads = cols.threads || [], kinds = cols.kinds || [];
    const wantThread = threads.indexOf(model.get("worker"));
    const wantStream = model.get("stream");
    const laneKey = model.get("filter");
    const wantLane = laneKey ? lanes.findIndex((l) => l.key === laneKey) : -1;
    const kindOn = new Uint8Array(kinds.length);
    for (const k of model.get("kinds")) { const i = kinds.indexOf(k); if (i >= 0) kindOn[i] = 1; }
    const envoy = mode === "envoy";
    const { th, st, kind, lane, src, dst, label } = cols;
    const cb = kinds.indexOf("callback"), hc = kinds.indexOf("hostcall"), lg = kinds.indexOf("log");
    const out = [];
    for (let i = 0; i < n; i++) {
      if (wantThread >= 0 && th[i] !== wantThread) continue;
      if (wantStream >= 0 && st[i] !== wantStream) continue;
      if (wantLane >= 0 && lane[i] !== wantLane && src[i] !== wantLane && dst[i] !== wantLane) continue;
      counts.selected++;
      if (envoy) {
        if (kind[i] !== cb && kind[i] !== hc && !(kind[i] === lg && /^\[\w+\]\[(wasm|lua)\] /.test(label[i]))) continue;
      } else if (!kindOn[kind[i]]) continue;
      out.push(i);
    }
    return out;
  }

  /** Nested calls: a return row joins its call; what a folded call does inside is hidden. */
  function nest(rows) {
    const kinds = cols.kinds;
    const chosen = new Set(rows);
    const hidden = new Map(); // enter row -> the folded call it is hidden in (itself if folded)
    hiddenIn = new Map();
    const out = [];
    for (const i of rows) {
      const up = cols.up[i];
      if (up >= 0 && hidden.has(up)) {
        const holder = hidden.get(up);
        hiddenIn.set(holder, (hiddenIn.get(holder) || 0) + 1);
        if (cols.ph[i] === 1) hidden.set(i, holder);
        continue;
      }
      if (cols.ph[i] === 2 && callOf[i] >= 0 && chosen.has(callOf[i])) continue;
      if (cols.ph[i] === 1) {
        const k = kinds[cols.kind[i]];
        const foldIt = folded.has(i) || ((k === "callback" || k === "lua") && !unfolded.has(i));
        if (foldIt) hidden.set(i, i);
      }
      out.push(i);
    }
    return out;
  }

  function rebuild() {
    const mode = model.get("mode");
    const counts = { total: n, selected: 0 };
    let rows = selectRows(mode, counts);
    hiddenIn = new Map();
    if (mode === "lanes") rows = nest(rows);
    else if (mode === "compact") rows = rows.filter((i) => cols.ph[i] !== 2);
    vis = Int32Array.from(rows);
    visSeq = Float64Array.from(rows, (i) => cols.seq[i]);
    // columns: only lanes some visible row uses, left to right
    const used = new Uint8Array(lanes.length);
    used[0] = 1; used[1] = 1;
    for (const i of vis) { used[cols.lane[i]] = 1; used[cols.src[i]] = 1; used[cols.dst[i]] = 1; }
    laneCol = new Int32Array(lanes.length).fill(-1);
    nCols = 0;
    for (let j = 0; j < lanes.length; j++) if (used[j]) laneCol[j] = nCols++;
    scrub.max = String(Math.max(0, vis.length - 1));
    const envoy = mode === "envoy";
    sizes(envoy);
    drawHead(envoy);
    canvas.style.height = `${Math.max(1, vis.length) * ROW_H}px`;
    canvas.style.width = ""; // the CSS width (--wl-tl-width), after an empty selection's 100 %
    painted = "";
    if (!vis.length) {
      pos.textContent = "nothing to show";
      canvas.replaceChildren(wlEl("div", { class: "wl-empty", role: "status" }, tlWhyEmpty(model, cols, counts)));
      canvas.style.height = "auto";
      canvas.style.width = "100%";
      details.textContent = "";
      return;
    }
    if (followFirst) { // opened linked to a cursor that already moved: start where it stands
      followFirst = false;
      step = vis[Math.max(0, wlLowerBound(visSeq, model.get("cursor_seq") + 1) - 1)];
      cursorStep = step;
    }
    go(cur(), false);
  }

  /** Column sizes, as CSS: the fixed columns (marker, seq, thread) in em; the lanes get room first
   * (2.6–4.2 em each), the label column takes what is left (at least 12 em, then down to 9 em);
   * past that the canvas is wider than the output and scrolls — a container query on the root
   * (its width, not a measurement that can be stale) shows the hint then. */
  function sizes(envoy) {
    EM = parseFloat(getComputedStyle(root).fontSize) || 14;
    ROW_H = Math.round(1.7 * EM);
    showThread = (cols.threads || []).length > 1 && !model.get("worker");
    FIXED_EM = 1 + 4.2 + (showThread ? 3.6 : 0); // .wl-marker, .wl-seq, .wl-thread (timeline.css)
    const n = envoy ? 0 : nCols;
    const least = FIXED_EM + 9 + n * 2.6; // em: narrower than this, the lanes scroll
    root.style.setProperty("--wl-tl-fixed", `${FIXED_EM}em`);
    root.style.setProperty("--wl-tl-lanes", n ? `clamp(${(n * 2.6).toFixed(2)}em, 100% - ${FIXED_EM + 12}em, ${(n * 4.2).toFixed(2)}em)` : "0px");
    root.style.setProperty("--wl-tl-width", `max(100%, ${least.toFixed(2)}em)`);
    hintRule.textContent = n ? `@container wltl (max-width: ${(least + 1.4).toFixed(2)}em) {
      .wl.wl-timeline[data-tl="${tlId}"] .wl-tl-hint { display: block; } }` : "";
    hint.textContent = n ? `scroll → for the lanes on the right (${n} lanes; full names in the "lanes:" line above)` : "";
  }

  function drawHead(envoy) {
    head.replaceChildren();
    legend.replaceChildren();
    if (envoy) {
      const d = wlEl("div", { class: "wl-tl-head-text" }, wlEl("b", {}, "Envoy --component-log-level wasm:trace lines"));
      head.append(wlEl("div", { class: "wl-tl-fixed" }), d);
      return;
    }
    const names = [];
    // how many characters of a lane's name fit its column now (only the text depends on it)
    const lanesPx = Math.max(0, (scroll.clientWidth || root.clientWidth) - (FIXED_EM + 12) * EM);
    const COL_W = Math.max(2.6 * EM, Math.min(4.2 * EM, lanesPx / Math.max(1, nCols)));
    const strip = wlEl("div", { class: "wl-tl-lanes wl-tl-strip" });
    for (let j = 0; j < lanes.length; j++) {
      if (laneCol[j] < 0) continue;
      const l = lanes[j], num = laneCol[j] + 1;
      // two wrapped lines of the name; a longer one keeps its end, which tells lanes apart
      // ("…o_vm#4", never eight headers reading "stats_…"); the legend line has every full name
      const name = l.label.split(" · ")[0];
      const cap = Math.max(4, 2 * Math.floor((COL_W - 0.3 * EM) / (0.8 * 0.7 * EM)));
      const vmLike = l.kind === "wasm" || l.kind === "lua";
      const shown = name.length <= cap ? name : vmLike ? `…${name.slice(name.length - cap + 1)}` : `${name.slice(0, cap - 1)}…`;
      const d = wlEl("div", { class: "wl-tl-lane", "data-lane": l.key, title: `${num}: ${l.label} (${l.kind})` },
        wlEl("b", {}, String(num)), wlEl("span", {}, shown));
      d.style.order = String(laneCol[j]);
      d.style.borderTopColor = WL_LANE_COLOURS[l.kind] || "#999";
      strip.append(d);
      names.push(wlEl("span", {}, wlEl("b", {}, `${num}`), ` ${l.label}${j < lanes.length - 1 ? " · " : ""}`));
    }
    const what = wlEl("div", { class: "wl-tl-head-text" });
    if (model.get("mode") === "lanes") what.append("call → return, one row (", wlEl("b", {}, "+"), " unfolds)");
    head.append(wlEl("div", { class: "wl-tl-fixed" }), what, strip);
    legend.append(wlEl("b", {}, "lanes: "), ...names);
  }

  // ---- painting the rows in view ---------------------------------------------------------------
  let painted = "";
  function paint() {
    if (!vis.length) return;
    const em = parseFloat(getComputedStyle(root).fontSize) || 14;
    if (Math.abs(em - EM) > 0.1) { rebuild(); return; } // Presentation Mode / projector toggled
    const top = Math.max(0, Math.floor(scroll.scrollTop / ROW_H) - 8);
    const count = Math.ceil((scroll.clientHeight || 380) / ROW_H) + 16;
    const mode = model.get("mode");
    const key = `${top}:${count}:${step}:${selected}:${vis.length}:${nCols}:${ROW_H}:${mode}`;
    const q = cur();
    pos.textContent = `event ${q + 1} of ${vis.length} (#${cols.seq[vis[q]]})`;
    if (key === painted) return;
    painted = key;
    const frag = document.createDocumentFragment();
    for (let p = top; p < Math.min(vis.length, top + count); p++) frag.append(rowEl(vis[p], p, mode));
    canvas.replaceChildren(frag);
  }

  function rowEl(i, p, mode) {
    const envoy = mode === "envoy", nested = mode === "lanes";
    const k = cols.kinds[cols.kind[i]];
    const row = wlEl("div", {
      class: `wl-row${i === vis[cur()] ? " wl-current" : ""}${i === selected ? " wl-selected" : ""}`,
      "data-index": i, "data-seq": cols.seq[i], role: "button",
      "aria-current": i === vis[cur()] ? "step" : null,
    });
    row.style.top = `${p * ROW_H}px`;
    row.style.height = `${ROW_H}px`;
    const marker = wlEl("span", { class: "wl-marker" });
    const tri = wlSvg("svg", { viewBox: "0 0 12 12", "aria-hidden": "true" });
    tri.append(wlSvg("path", { d: TL_ICONS.play, fill: "#7a5c00" }));
    marker.append(tri);
    row.append(marker, wlEl("span", { class: "wl-seq" }, `#${cols.seq[i]}`));
    if (showThread) row.append(wlEl("span", { class: "wl-thread", title: cols.threads[cols.th[i]] }, shortThread(cols.threads[cols.th[i]])));
    let text = nested && cols.ph[i] === 1 && cols.ret[i] ? cols.ret[i] : cols.label[i];
    if (envoy && k === "log") text = text.replace(/^\[\w+\]\[\w+\] /, "");
    const cell = wlEl("span", { class: "wl-labelcell", title: `${k}: ${text}${cols.note[i] ? `\n${cols.note[i]}` : ""}` });
    cell.style.borderLeftColor = WL_KIND_COLOURS[k] || "#999";
    if (!envoy) cell.append("  ".repeat(Math.min(cols.depth[i], 8)));
    if (nested && cols.ph[i] === 1 && cols.end[i] - i > 1) {
      const isOpen = !hiddenIn.has(i);
      const fold = wlEl("button", { type: "button", class: "wl-fold", title: isOpen ? "fold" : "unfold: show what it did inside",
        "aria-expanded": isOpen ? "true" : "false" }, isOpen ? "−" : "+");
      fold.addEventListener("click", (e) => { e.stopPropagation(); toggleFold(i, isOpen); });
      cell.append(fold);
    }
    cell.append(wlEl("span", { class: `wl-label${cols.flag[i] ? " wl-flag" : ""}` }, text));
    if (nested && hiddenIn.has(i)) cell.append(wlEl("span", { class: "wl-inside" }, `(${hiddenIn.get(i)} inside)`));
    if (!envoy && cols.note[i]) cell.append(wlEl("span", { class: "wl-rnote" }, cols.note[i]));
    row.append(cell);
    if (!envoy) row.append(arrow(i, k, nested && cols.ph[i] === 1 && cols.end[i] >= 0));
    row.addEventListener("click", () => { selected = i; go(wlLowerBound(vis, i)); });
    return row;
  }

  function shortThread(t) { return t.startsWith("worker_") ? `w${t.slice(7)}` : t; }

  function toggleFold(i, isOpen) {
    if (isOpen) { unfolded.delete(i); folded.add(i); } else { folded.delete(i); unfolded.add(i); }
    step = i;
    rebuild();
  }

  /** The lanes of one row: a dot (a note on one lane), an arrow, or — a call with its return
   * (nested view) — the call's arrow and, under it, the dashed return. x is in % of the lanes'
   * width (CSS decides it); arrowheads are px shapes placed at a % (a nested svg), so they never
   * stretch. */
  function arrow(i, k, both) {
    const s = wlSvg("svg", { class: "wl-tl-lanes", height: ROW_H, "aria-hidden": "true" });
    const at = (c) => `${(((c + 0.5) * 100) / nCols).toFixed(3)}%`;
    for (let c = 0; c < nCols; c++) s.append(wlSvg("line", { x1: at(c), y1: 0, x2: at(c), y2: ROW_H, stroke: "#ddd" }));
    const colour = WL_KIND_COLOURS[k] || "#333";
    const a = laneCol[cols.src[i]], b = laneCol[cols.dst[i]];
    const y = ROW_H / 2, head = 0.5 * EM, r = 0.28 * EM;
    if (a === b || a < 0 || b < 0) {
      s.append(wlSvg("circle", { cx: at(a >= 0 ? a : Math.max(b, 0)), cy: y, r, fill: colour, stroke: "#000", "stroke-width": 0.5 }));
      return s;
    }
    const line = (from, to, yy, dashed, width) => {
      const dir = to > from ? 1 : -1;
      const l = wlSvg("line", { x1: at(from), y1: yy, x2: at(to), y2: yy, stroke: colour, "stroke-width": width });
      if (dashed) l.setAttribute("stroke-dasharray", "4 2");
      const tip = wlSvg("svg", { x: at(to), y: 0, width: 1, height: ROW_H, overflow: "visible" });
      tip.append(wlSvg("path", { d: `M0,${yy} l${-dir * head},${-head * 0.5} l0,${head} z`, fill: colour }));
      s.append(l, tip);
    };
    if (both) {
      line(a, b, y - 0.22 * EM, false, 2);
      line(b, a, y + 0.3 * EM, true, 1.3);
    } else {
      line(a, b, y, cols.ph[i] === 2, 2);
    }
    return s;
  }

  scroll.addEventListener("scroll", () => paint());
  if (typeof ResizeObserver !== "undefined") {
    let width = 0;
    new ResizeObserver(() => {
      if (Math.abs(root.clientWidth - width) > 20) { width = root.clientWidth; painted = ""; if (cols) rebuild(); }
    }).observe(root);
  }

  // ---- details ----------------------------------------------------------------------------------
  let detailsFor = -1;
  function showDetails(i) {
    if (i < 0 || i >= n) { details.textContent = ""; return; }
    if (detailsFor === i) return;
    detailsFor = i;
    const l = lanes[cols.lane[i]];
    const text = cols.ph[i] === 1 && cols.ret[i] ? cols.ret[i] : cols.label[i];
    const head = `#${cols.seq[i]}  ${cols.threads[cols.th[i]]}  ${cols.kinds[cols.kind[i]]}  on ${l ? l.label : "?"}` +
      (cols.st[i] >= 0 ? `  stream ${cols.st[i]}` : "") + `\n${text}` + (cols.note[i] ? `\n${cols.note[i]}` : "");
    details.textContent = head + "\n(asking the kernel for the full record…)";
    fetchDetails(i).then((ev) => {
      if (detailsFor !== i) return;
      details.textContent = ev ? `${head}\n${JSON.stringify(ev, null, 1)}` : head;
    });
  }

  // ---- changes from Python and from linked views -----------------------------------------------
  model.on("change:columns", () => load());
  model.on("change:lanes", () => load());
  model.on("change:streams", () => { fillStreams(); });
  for (const k of ["worker", "stream", "filter", "kinds", "mode"]) {
    model.on(`change:${k}`, () => { if (k === "worker") fillStreams(); syncControls(); rebuild(); });
  }
  model.on("change:step", () => {
    const s = model.get("step");
    if (s !== step) { step = s; go(cur(), false); }
  });
  /** A linked cursor on an event folded inside a call (a host call in a Wasm callback): unfold
   * the calls around it, so the timeline shows that very event. */
  function unfoldAround(seq) {
    if (model.get("mode") !== "lanes" || !cols.up) return;
    const i = wlLowerBound(cols.seq, seq);
    if (i >= n || cols.seq[i] !== seq || wlLowerBound(vis, i) < vis.length && vis[wlLowerBound(vis, i)] === i) return;
    let changed = false;
    for (let u = cols.up[i]; u >= 0; u = cols.up[u]) {
      if (!unfolded.has(u) || folded.has(u)) { unfolded.add(u); folded.delete(u); changed = true; }
    }
    if (changed) { cursorStep = step; rebuild(); } // the redraw stays put: nothing to publish
  }

  model.on("change:cursor_seq", () => {
    const want = model.get("cursor_seq");
    if (!vis.length || cols.seq[step] === want) { cursorStep = step; return; } // where we are: no echo
    unfoldAround(want);
    const p = wlLowerBound(visSeq, want + 1) - 1; // our last step at or before it
    const q = Math.max(0, p);
    if (vis[q] === step) { cursorStep = step; return; }
    step = vis[q];
    cursorStep = step;
    scrub.value = String(q);
    reveal(q);
    paint();
    showDetails(step);
    if (model.get("step") !== step) { model.set("step", step); model.save_changes(); }
  });

  load();
  requestAnimationFrame(() => {
    if (cols) rebuild();
    root.dataset.renderMs = (performance.now() - started).toFixed(1);
    root.dataset.ready = "1";
  });
  return () => player.stop();
}

export default { render };
