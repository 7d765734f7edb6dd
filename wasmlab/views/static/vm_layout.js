// The VM layout, drawn in the browser like Envoy's threading diagram: the main thread, the
// process-wide pieces (shared queues, shared data) and the worker threads side by side, wrapping
// into rows of what fits the output area (text never shrinks). Any moment of the trace can be
// shown; nothing that happens after it is drawn. Sizes are in em (they follow the page's font).

const WL_VL_CSS = `
.wl-layout .wl-vl-stage { position: relative; margin-top: 0.4em; }
.wl-layout .wl-vl-flow { display: flex; flex-wrap: wrap; gap: 1em 2.2em; align-items: flex-start; }
.wl-layout .wl-vl-col { flex: 1 1 13em; min-width: 12em; max-width: 26em; border: 1px solid #999; border-radius: 0.4em;
  background: rgba(240, 240, 240, 0.3); padding: 0.3em 0.5em 0.5em; position: relative; z-index: 1; }
.wl-layout .wl-vl-col.wl-vl-wide { flex: 2 1 24em; max-width: 40em; }
.wl-layout .wl-vl-vms { display: grid; grid-template-columns: repeat(auto-fit, minmax(11.5em, 1fr)); gap: 0 0.5em; align-items: start; }
.wl-layout .wl-vl-col.wl-vl-shared { background: #fff; border-style: dashed; }
.wl-layout .wl-vl-col h4 { margin: 0 0 0.35em; font-size: 1em; }
.wl-layout .wl-vl-box { border: 0.15em solid #0072b2; border-radius: 0.45em; background: #d6e8f5; padding: 0.25em 0.45em;
  margin-bottom: 0.45em; overflow-wrap: break-word; line-height: 1.3; position: relative; }
.wl-layout .wl-vl-box.lua { border-color: #cc79a7; background: #f5e1ec; }
.wl-layout .wl-vl-box.role-base { border-style: dotted; border-width: 0.13em; }
.wl-layout .wl-vl-box.role-canary { border-style: dashed; border-width: 0.1em; }
.wl-layout .wl-vl-box.wl-st-failed { border-color: #d55e00; background: #f7d7c2; }
.wl-layout .wl-vl-box.wl-st-destroyed { border-color: #999; background: #eee; color: #555; }
.wl-layout .wl-vl-box.queue { border: 0.13em solid #e69f00; background: #faebcc; }
.wl-layout .wl-vl-box.shared { border: 0.13em solid #8a7f00; background: #fcf9d9; }
.wl-layout .wl-vl-box.group { border: 0.1em solid #555; background: #fff; }
.wl-layout .wl-vl-status { font-weight: bold; }
.wl-layout .wl-vl-sub { color: #444; }
.wl-layout .wl-vl-ctx { border: 1px solid #999; border-radius: 0.3em; background: #fff; margin: 0.2em 0 0 0.6em;
  padding: 0.05em 0.35em; font-size: 0.9em; }
.wl-layout .wl-vl-ctx.wl-st-deleted { border-style: dashed; color: #666; background: #f4f4f4; }
.wl-layout .wl-vl-traffic { margin-top: 0.15em; }
.wl-layout .wl-qf-event { font-size: 1em; }
.wl-layout .wl-current { outline: 0.25em solid #b58900 !important; outline-offset: 0.12em;
  box-shadow: 0 0 0 0.55em rgba(240, 228, 66, 0.55) !important; }
.wl-layout .wl-vl-tag { display: none; }
.wl-layout .wl-current > .wl-vl-tag { display: inline-block; background: #b58900; color: #fff; font-weight: bold;
  border-radius: 0.25em; padding: 0 0.3em; margin-right: 0.3em; }
.wl-layout .wl-vl-arrows { position: absolute; left: 0; top: 0; pointer-events: none; overflow: visible; z-index: 0; }
.wl-layout .wl-vl-arrows text { paint-order: stroke; stroke: #fff; stroke-width: 0.3em; fill: #222; }
.wl-layout .wl-vl-legend { margin-top: 0.5em; display: flex; flex-wrap: wrap; gap: 0.2em 1.2em; }
.wl-layout .wl-vl-legend span { white-space: nowrap; }
.wl-layout .wl-vl-empty { color: #666; }
`;

const WL_VL_EDGE = { e: ["#e69f00", "enqueue"], r: ["#0072b2", "on_queue_ready"], s: ["#8a7f00", "set"], m: ["#999999", ""] };

// ---- the state at a moment (`at`, a trace seq; Infinity = now) -----------------------------------
function wlVlSeen(born, at) { return born !== null && born !== undefined && born <= at; }

function wlVlVmState(v, at) {
  if (v.died !== null && v.died <= at) return ["destroyed", "destroyed"];
  if (v.failed !== null && v.failed <= at) return ["failed", "✖ failed"];
  return ["running", "running"];
}

/** Queue and shared-data traffic up to `at`: arrows, per-VM lines, per-queue/key counters. */
function wlVlTraffic(sc, at) {
  const out = { edges: [], byVm: new Map(), queues: new Map(), shared: new Map() };
  const note = (vm, line) => { if (vm) { if (!out.byVm.has(vm)) out.byVm.set(vm, []); out.byVm.get(vm).push(line); } };
  for (const q of sc.queues || []) {
    if (!wlVlSeen(q.born, at)) continue;
    const enq = new Map(); let deq = 0, ready = 0, total = 0, reg = null;
    for (const [seq, vm, k] of q.log) {
      if (seq > at) break;
      if (k === "e") enq.set(vm, (enq.get(vm) || 0) + 1);
      else if (k === "d") deq++;
      else if (k === "n") ready++;
    }
    for (const [seq, vm] of q.reg) if (seq <= at) reg = vm;
    for (const [vm, n] of enq) {
      total += n;
      if (vm) { out.edges.push([vm, q.id, "e", `enqueue ×${n}`]); note(vm, `→ enqueue ×${n} (queue ${q.name})`); }
    }
    if (reg) { out.edges.push([q.id, reg, "r", `on_queue_ready ×${ready}`]); note(reg, `← on_queue_ready ×${ready} (queue ${q.name})`); }
    out.queues.set(q.id, { total, deq, ready, reg });
  }
  for (const k of sc.shared || []) {
    if (!wlVlSeen(k.born, at)) continue;
    const by = new Map(); let last = null, sets = 0;
    for (const e of k.log) { if (e[0] > at) break; by.set(e[1], (by.get(e[1]) || 0) + 1); last = e; sets++; }
    for (const [vm, n] of by) if (vm) { out.edges.push([vm, k.id, "s", `set ×${n}`]); note(vm, `→ set ×${n} (${k.key})`); }
    out.shared.set(k.id, { last, sets });
  }
  return out;
}

// ---- drawing ------------------------------------------------------------------------------------
const wlVlTag = () => wlEl("span", { class: "wl-vl-tag" }, "this step");

function wlVlStreams(v, streams, at) {
  let created = 0; const live = [];
  for (const [born, died, id] of streams || []) {
    if (born > at) break;
    created++;
    if (died === null || died > at) live.push(id);
  }
  if (!created) return null;
  const shown = live.slice(0, 6).join(", ") + (live.length > 6 ? " …" : "");
  return wlEl("div", { id: `${v.id}-streams`, class: "wl-vl-ctx node streams" }, wlVlTag(), "stream contexts: ",
    wlEl("span", {}, `${created} created`), live.length ? ` · ${live.length} live: ${shown}` : " · none live");
}

function wlVlVmBox(v, tr, ctxs, streams, at) {
  const [state, word] = wlVlVmState(v, at);
  const kind = v.runtime === "lua" ? `filter ${v.vm_id} · ${v.lua_runtime || "lua"}` : `${v.role} VM · vm_id ${v.vm_id}`;
  const lines = [wlVlTag(), wlEl("b", {}, v.label), wlEl("div", { class: "wl-vl-sub" }, kind)];
  if (v.reloaded_from) lines.push(wlEl("div", {}, `reload of ${v.reloaded_from}`));
  if (v.replaced_by && wlVlSeen(v.replaced_at, at)) lines.push(wlEl("div", {}, `replaced by ${v.replaced_by}`));
  lines.push(wlEl("div", { class: "wl-vl-status", title: v.fail || "" }, word));
  for (const c of ctxs) {
    if (!wlVlSeen(c.born, at)) continue;
    const gone = c.died !== null && c.died <= at;
    const gen = c.gen ? ` · generation ${c.gen}` : "";
    lines.push(wlEl("div", { id: c.id, class: `wl-vl-ctx node ctx wl-st-${gone ? "deleted" : "live"}`, "data-gen": c.gen || "" },
      wlVlTag(), `${c.kind} context ${c.cid} · plugin ${c.plugin}${gen} · ${gone ? "deleted" : "live"}`));
  }
  lines.push(wlVlStreams(v, streams, at));
  for (const t of tr.byVm.get(v.id) || []) lines.push(wlEl("div", { class: "wl-vl-traffic" }, t));
  return wlEl("div", { id: v.id, class: `wl-vl-box node vm ${v.runtime} role-${v.role} wl-st-${state}`, "data-state": state }, ...lines);
}

function wlVlSharedColumn(sc, tr, at, group) {
  const col = wlEl("div", { class: "wl-vl-col wl-vl-shared", "data-col": "shared" },
    wlEl("h4", {}, "process-wide (shared data, queues — by vm_id)"));
  if (group) {
    const groups = new Map();
    for (const v of sc.vms || []) if (v.runtime === "wasm" && wlVlSeen(v.born, at)) {
      if (!groups.has(v.vm_id)) groups.set(v.vm_id, []);
      groups.get(v.vm_id).push(v);
    }
    for (const [vmId, vms] of groups) {
      const threads = new Set(vms.map((v) => v.thread)).size;
      col.append(wlEl("div", { class: "wl-vl-box node group", "data-vmid": vmId },
        wlEl("b", {}, `vm_id ${vmId}`), wlEl("div", {}, `${vms.length} VMs on ${threads} thread${threads === 1 ? "" : "s"}`)));
      for (const v of vms) tr.edges.push([v.id, `[data-vmid="${CSS.escape(vmId)}"]`, "m", ""]);
    }
  }
  for (const q of sc.queues || []) {
    const s = tr.queues.get(q.id);
    if (s) col.append(wlEl("div", { id: q.id, class: "wl-vl-box node queue" }, wlVlTag(),
      wlEl("b", {}, `queue ${q.name}`), wlEl("div", { class: "wl-vl-sub" }, `vm_id ${q.vm_id} · id ${q.queue_id}`),
      wlEl("div", {}, `${s.total} enqueued · ${s.deq} dequeued · depth ${s.total - s.deq}`)));
  }
  for (const k of sc.shared || []) {
    const s = tr.shared.get(k.id);
    if (s) col.append(wlEl("div", { id: k.id, class: "wl-vl-box node shared" }, wlEl("b", {}, `shared data ${k.key}`),
      wlEl("div", { class: "wl-vl-sub" }, `vm_id ${k.vm_id} · cas ${s.last ? s.last[3] : "—"} · ${s.sets} sets`),
      wlEl("div", {}, `= ${s.last ? s.last[2] : "(not set yet)"}`)));
  }
  return col.children.length > 1 ? col : null;
}

/** The columns: main | process-wide | workers (flex-wrapped into rows of what fits). */
function wlVlColumns(sc, tr, at, group) {
  const ctxByVm = new Map();
  for (const c of sc.ctxs || []) { if (!ctxByVm.has(c.vm)) ctxByVm.set(c.vm, []); ctxByVm.get(c.vm).push(c); }
  const streams = new Map(sc.streams || []);
  const cols = [];
  for (const t of sc.threads || []) {
    const col = wlEl("div", { class: "wl-vl-col wl-vl-thread", "data-thread": t.name }, wlEl("h4", {}, t.title));
    const vms = (sc.vms || []).filter((v) => v.thread === t.name && wlVlSeen(v.born, at));
    const list = wlEl("div", { class: "wl-vl-vms" }, ...vms.map((v) => wlVlVmBox(v, tr, ctxByVm.get(v.id) || [], streams.get(v.id), at)));
    col.append(list);
    if (vms.length > 2) col.classList.add("wl-vl-wide"); // room for its VMs two abreast
    if (!vms.length) col.append(wlEl("div", { class: "wl-vl-empty" }, "no VMs or Lua states (yet)"));
    cols.push(col);
  }
  const shared = wlVlSharedColumn(sc, tr, at, group);
  if (shared) cols.splice(Math.min(1, cols.length), 0, shared);
  return cols;
}

function wlVlArrowPath(ra, rb, box, k, em) {
  const ax = ra.left - box.left, bx = rb.left - box.left, aT = ra.top - box.top, bT = rb.top - box.top;
  const off = k === "r" ? 0.5 * em : 0;
  if (ax + ra.width < bx || bx + rb.width < ax) { // side by side: leave and enter by the facing edges
    const right = ax + ra.width < bx;
    const x1 = right ? ax + ra.width : ax, x2 = right ? bx : bx + rb.width;
    const y1 = aT + Math.min(ra.height / 2, 1.4 * em) + off, y2 = bT + Math.min(rb.height / 2, 1.4 * em) + off;
    const mx = (x1 + x2) / 2;
    return `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`;
  }
  const down = aT < bT; // one above the other (threads wrapped into rows): top / bottom edges
  const x1 = ax + ra.width / 2 + off, x2 = bx + rb.width / 2 + off;
  const y1 = down ? aT + ra.height : aT, y2 = down ? bT : bT + rb.height;
  const my = (y1 + y2) / 2;
  return `M${x1},${y1} C${x1},${my} ${x2},${my} ${x2},${y2}`;
}

function wlVlDrawArrows(stage, flow, arrows, edges, em) {
  const box = stage.getBoundingClientRect();
  arrows.setAttribute("width", String(Math.max(1, box.width)));
  arrows.setAttribute("height", String(Math.max(1, box.height)));
  const defs = wlSvg("defs", {});
  for (const [k, [colour]] of Object.entries(WL_VL_EDGE)) {
    const mk = wlSvg("marker", { id: `wl-vl-ah-${k}`, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
    mk.append(wlSvg("path", { d: "M0,0 L10,5 L0,10 z", fill: colour }));
    defs.append(mk);
  }
  arrows.replaceChildren(defs);
  const find = (sel) => flow.querySelector(sel.startsWith("[") ? sel : `[id="${CSS.escape(sel)}"]`);
  for (const [from, to, k, label] of edges) {
    const a = find(from), b = find(to);
    if (!a || !b) continue;
    const g = wlSvg("g", { class: `wl-vl-edge ${k}` });
    g.append(wlSvg("path", { d: wlVlArrowPath(a.getBoundingClientRect(), b.getBoundingClientRect(), box, k, em), fill: "none",
      stroke: WL_VL_EDGE[k][0], "stroke-width": k === "m" ? 1 : 2, "stroke-dasharray": k === "m" ? "4 3" : "none",
      "marker-end": k === "m" ? "none" : `url(#wl-vl-ah-${k})` }));
    if (label) { const t = wlSvg("title", {}); t.textContent = label; g.append(t); }
    arrows.append(g);
  }
}

/** What the picture's styles mean — only those it uses at `at`. */
function wlVlLegend(sc, tr, at, stepping) {
  const vms = (sc.vms || []).filter((v) => wlVlSeen(v.born, at));
  const has = (f) => vms.some(f);
  const kinds = new Set(tr.edges.map((e) => e[2]));
  return [
    [has((v) => v.role === "base"), "dotted border = base VM"],
    [has((v) => v.role === "canary"), "dashed border = canary VM"],
    [has((v) => ["main", "service", "replica"].includes(v.role)), "solid border = main / service / replica VM"],
    [has((v) => v.runtime === "lua" && wlVlVmState(v, at)[0] === "running"), "pink = Lua state"],
    [has((v) => wlVlVmState(v, at)[0] === "destroyed"), "grey + \"destroyed\" = destroyed (the border keeps its role)"],
    [has((v) => wlVlVmState(v, at)[0] === "failed"), "red + \"✖ failed\" = failed"],
    [kinds.has("e"), "orange arrow = enqueue"],
    [kinds.has("r"), "blue arrow = on_queue_ready (to the registrant)"],
    [kinds.has("s"), "olive arrow = shared-data set"],
    [kinds.has("m"), "grey dashed = member of a vm_id"],
    [stepping, "yellow ring \"this step\" = what the step changed"],
  ].filter(([used]) => used).map(([, text]) => wlEl("span", {}, text));
}

/** The line above the picture: the moment shown, in words. */
function wlVlBanner(m, step, at, live) {
  if (step < 0) return live ? "The latest state of the running proxy." : "The end of the trace.";
  if (at === m.seq[step]) return `#${m.seq[step]} ${m.label[step]}`;
  if (at < m.seq[step]) return `#${at} (linked cursor) · before the first lifecycle event`;
  return `#${at} (linked cursor) · last lifecycle event: #${m.seq[step]} ${m.label[step]}`;
}

// ---- the widget ---------------------------------------------------------------------------------
function wlVlToolbar(model, go, player) {
  const pos = wlEl("span", { class: "wl-pos", "aria-live": "polite" });
  const slider = wlEl("input", { type: "range", min: 0, max: 0, value: 0, "aria-label": "moment of the trace" });
  slider.addEventListener("input", () => go.to(Number(slider.value), false));
  slider.addEventListener("change", () => go.to(Number(slider.value), true));
  const playBtn = wlButton("▶ play", "replay the lifecycle", () => {
    if (player.playing) player.stop();
    else { if (go.step() < 0) go.to(0, false); player.start(); }
  }, "play");
  const groupBox = wlEl("input", { type: "checkbox", "aria-label": "group VMs by vm_id" });
  groupBox.checked = !!model.get("group");
  groupBox.addEventListener("change", () => { model.set("group", groupBox.checked); model.save_changes(); });
  const bar = wlEl("div", { class: "wl-bar" },
    wlButton("|◀ first", "the first lifecycle event", () => go.to(0), "first"),
    wlButton("◀ step", "previous lifecycle event", () => go.by(-1), "prev"),
    playBtn,
    wlButton("step ▶", "next lifecycle event", () => go.by(1), "step"),
    wlButton("now ▶|", "the latest moment (follows a live proxy)", () => go.to(-1), "last"),
    slider, pos,
    wlEl("label", { title: "draw the vm_id groups (what shared data and queues are keyed by)" }, groupBox, " group by vm_id"));
  return { bar, pos, slider, playBtn, groupBox };
}

function render({ model, el }) {
  const started = performance.now();
  const root = wlEl("div", { class: "wl wl-layout" }, wlEl("style", {}, WL_VL_CSS));
  el.append(root);
  const what = wlEl("div", { class: "wl-qf-event", "aria-live": "polite" });
  const flow = wlEl("div", { class: "wl-vl-flow" });
  const arrows = wlSvg("svg", { class: "wl-vl-arrows", width: 1, height: 1 });
  const stage = wlEl("div", { class: "wl-vl-stage" }, flow);
  stage.append(arrows);
  const legend = wlEl("div", { class: "wl-vl-legend wl-muted" });
  let step = model.get("step"), at = Infinity, cursor = -1, edges = []; // cursor: the cursor_seq last set or followed
  const marks = () => model.get("marks") || { seq: [], label: [], target: [] };
  const scene = () => model.get("scene") || {};
  const cur = () => (step < 0 ? marks().seq.length : step);
  // step ▶ at "now" (the end) replays from the first lifecycle event, as play does
  const go = { step: () => step, to: setStep, by: (d) => setStep(step < 0 && d > 0 ? 0 : Math.max(0, cur() + d)) };
  const player = wlPlayer(() => (step >= 0 && step < marks().seq.length - 1 ? (setStep(step + 1, false), true) : false), () => 2);
  const ui = wlVlToolbar(model, go, player);
  player.onchange = () => {
    ui.playBtn.textContent = player.playing ? "❚❚ pause" : "▶ play";
    if (!player.playing) save();
  };
  root.append(wlTitle(model), ui.bar, what, stage, legend);
  if (typeof wlProjectorToggle === "function") wlProjectorToggle(root);
  wlKeyNav(root, { ArrowRight: () => go.by(1), ArrowLeft: () => go.by(-1), End: () => setStep(-1), Home: () => setStep(0) });

  function save() { if (model.get("step") !== step) { model.set("step", step); model.save_changes(); } }
  function publish() {
    const seq = step < 0 ? (scene().last_seq || 0) : marks().seq[step];
    if (seq === cursor || seq === undefined) return;
    cursor = seq;
    model.set("cursor_seq", seq);
    model.save_changes();
  }
  function setStep(s, persist = true) {
    step = s < 0 || s >= marks().seq.length ? -1 : s;
    at = step < 0 ? Infinity : marks().seq[step];
    draw();
    publish();
    if (persist) save();
  }
  function follow(seq) { // another view moved the shared cursor: show that moment, on our last step at or before it
    cursor = seq;
    const m = marks();
    const i = wlLowerBound(m.seq, seq + 1) - 1;
    step = i >= m.seq.length - 1 && seq >= (scene().last_seq || 0) ? -1 : Math.max(0, i);
    at = step < 0 ? Infinity : seq;
    draw();
  }
  function draw() {
    const m = marks(), sc = scene(), n = m.seq.length;
    ui.slider.max = String(n);
    ui.slider.value = String(step < 0 ? n : step);
    ui.pos.textContent = step < 0 ? `now (${n} lifecycle events)` : `${step + 1} of ${n} (#${at})`;
    what.textContent = wlVlBanner(m, step, at, model.get("live"));
    const tr = wlVlTraffic(sc, at);
    flow.replaceChildren(...wlVlColumns(sc, tr, at, !!model.get("group")));
    const target = step >= 0 && m.seq[step] <= at ? (m.target || [])[step] : "";
    const box = target ? flow.querySelector(`[id="${CSS.escape(target)}"]`) : null;
    if (box) box.classList.add("wl-current");
    legend.replaceChildren(...wlVlLegend(sc, tr, at, step >= 0));
    edges = tr.edges;
    arrowsNow();
  }
  const guard = typeof wlWidthGuard === "function" ? wlWidthGuard(root, stage, ".wl-vl-arrows") : () => {};
  function arrowsNow() { wlVlDrawArrows(stage, flow, arrows, edges, parseFloat(getComputedStyle(root).fontSize) || 14); guard(); }

  model.on("change:scene", draw);
  model.on("change:marks", () => { if (step >= 0) at = marks().seq[step] ?? Infinity; draw(); });
  model.on("change:live", draw);
  model.on("change:group", () => { ui.groupBox.checked = !!model.get("group"); draw(); });
  model.on("change:step", () => { const s = model.get("step"); if (s !== step) setStep(s, false); });
  model.on("change:cursor_seq", () => { const c = model.get("cursor_seq"); if (c !== cursor) follow(c); });
  if (typeof ResizeObserver === "function") new ResizeObserver(() => requestAnimationFrame(arrowsNow)).observe(stage);
  if (model.get("cursor_seq") > 0) follow(model.get("cursor_seq"));
  else { step = step < 0 || step >= marks().seq.length ? -1 : step; at = step < 0 ? Infinity : marks().seq[step]; draw(); }
  requestAnimationFrame(() => {
    arrowsNow();
    root.dataset.renderMs = (performance.now() - started).toFixed(1);
    root.dataset.ready = "1";
  });
  return () => player.stop();
}

export default { render };
