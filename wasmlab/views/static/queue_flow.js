// The queue flow, laid out like Envoy's threading diagram: worker threads | process-wide shared
// queues and shared data | main thread. Arrows show who enqueues, who gets on_queue_ready, who
// writes and reads shared data; at each step a message travels along the arrow that moved.
// Sizes are in em (they follow the page's font).

const WL_QF_CSS = `
.wl-queueflow .wl-qf-stage { position: relative; }
.wl-queueflow .wl-qf-grid { display: grid; grid-template-columns: minmax(8.5em, 1fr) minmax(10em, 1.15fr) minmax(8.5em, 1fr);
  gap: 0.6em 2.6em; align-items: start; }
.wl-queueflow .wl-qf-col { position: relative; z-index: 1; min-width: 0; }
.wl-queueflow .wl-qf-col h4 { margin: 0.15em 0 0.35em; font-size: 1em; }
.wl-queueflow .wl-qf-box { border: 0.12em solid #999; border-radius: 0.4em; padding: 0.25em 0.45em; margin-bottom: 0.5em;
  background: #fff; overflow-wrap: anywhere; line-height: 1.3; }
.wl-queueflow .wl-qf-box.wasm { border-color: #0072b2; background: #d6e8f5; }
.wl-queueflow .wl-qf-box.queue { border-color: #e69f00; background: #faebcc; }
.wl-queueflow .wl-qf-box.shared { border-color: #8a7f00; background: #fcf9d9; }
.wl-queueflow .wl-qf-box.wl-current { outline: 0.25em solid #b58900; outline-offset: 0.1em;
  box-shadow: 0 0 0 0.55em rgba(240, 228, 66, 0.55); }
.wl-queueflow .wl-qf-box.wl-denied { border-color: #d55e00; }
.wl-queueflow .wl-qf-depth { height: 0.7em; background: #fff; border: 1px solid #a66f00; margin: 0.2em 0; }
.wl-queueflow .wl-qf-depth > div { height: 100%; background: repeating-linear-gradient(45deg, #e69f00 0 0.3em, #c98a00 0.3em 0.6em); transition: width 0.25s; }
.wl-queueflow .wl-qf-msgs { display: flex; flex-wrap: wrap; gap: 0.15em; }
.wl-queueflow .wl-qf-msg { font-family: var(--jp-code-font-family, monospace); font-size: 0.85em; border: 1px solid #a66f00;
  border-radius: 0.2em; padding: 0 0.2em; background: #fff; }
.wl-queueflow .wl-qf-arrows { position: absolute; left: 0; top: 0; pointer-events: none; overflow: visible; z-index: 0; }
.wl-queueflow .wl-qf-arrows .wl-now path { stroke-width: 3.5; }
.wl-queueflow .wl-qf-travel { position: absolute; left: 0; top: 0; z-index: 3; pointer-events: none; white-space: nowrap;
  font-family: var(--jp-code-font-family, monospace); font-size: 0.85em; background: #fff3c4; border: 0.12em solid #b58900;
  border-radius: 0.3em; padding: 0 0.3em; max-width: 14em; overflow: hidden; text-overflow: ellipsis; }
.wl-queueflow .wl-qf-legend { margin-top: 0.3em; display: flex; flex-wrap: wrap; gap: 0.1em 1.2em; }
.wl-queueflow .wl-qf-legend span { white-space: nowrap; }
.wl-queueflow .wl-qf-event { font-size: 1em; } /* the step in words and its record: as large as the lesson's text */
.wl-queueflow .wl-details { font-size: 1em; }
`;

const WL_QF_COLOUR = { enqueue: "#e69f00", ready: "#0072b2", set: "#8a7f00", get: "#8a7f00", register: "#0072b2" };

function wlValue(s) {
  if (s === null || s === undefined) return "—";
  if (/^[\x20-\x7e]*$/.test(s)) return JSON.stringify(s);
  const bytes = Array.from(s.slice(0, 8), (c) => c.charCodeAt(0) & 255);
  const hex = bytes.map((b) => b.toString(16).padStart(2, "0")).join(" ") + (s.length > 8 ? " …" : "");
  if (bytes.length < 8) return hex;
  let v = 0n;
  for (let i = 7; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]);
  return `${hex} (u64 ${v})`;
}

// ---- the state after a step (pure: the steps' columns in, counters and arrows out) ----------------
function wlQfState(c, queues, keys, actors, step) {
  const qs = queues.map(() => ({ waiting: [], enq: 0, deq: 0, ready: 0, max: 0, reg: "" }));
  const as = actors.map(() => ({ enqueue: 0, dequeue: 0, ready: 0, tick: 0, set: 0, get: 0, denied: 0 }));
  const ks = keys.map(() => ({ value: null, cas: null, sets: 0, failed: 0, reads: 0, denied: 0, writer: -1 }));
  const edges = new Map(); // "from|to|kind" -> [from, to, kind]
  const edge = (a, b, k) => { edges.set(`${a}|${b}|${k}`, [a, b, k]); };
  for (let i = 0; i <= step && i < c.seq.length; i++) {
    const k = c.kind[i], a = c.actor[i], qi = c.queue[i], ki = c.key[i];
    if (a >= 0 && k in as[a]) as[a][k]++;
    if (a >= 0 && k === "reply" && !c.ok[i]) as[a].denied++;
    if (qi >= 0) {
      const q = qs[qi];
      if (k === "enqueue") { q.enq++; q.waiting.push(c.text[i]); if (a >= 0) edge(`a${a}`, `q${qi}`, "enqueue"); }
      else if (k === "dequeue") { q.deq++; q.waiting.shift(); }
      else if (k === "ready") q.ready++;
      else if (k === "register") q.reg = c.who[i];
      q.max = Math.max(q.max, q.waiting.length);
    }
    if (ki >= 0) {
      const s = ks[ki];
      if (k === "set" && c.ok[i]) { s.value = c.text[i]; s.cas = c.depth[i]; s.sets++; s.writer = a; }
      else if (k === "set") s.failed++;
      else if (k === "get") s.reads++;
      else if (k === "reply" && !c.ok[i]) s.denied++;
      if (a >= 0 && k === "set") edge(`a${a}`, `k${ki}`, "set");
      if (a >= 0 && k === "get") edge(`k${ki}`, `a${a}`, "get");
    }
  }
  qs.forEach((q, qi) => {
    const r = actors.findIndex((x) => x.vm === q.reg);
    if (r >= 0) edge(`q${qi}`, `a${r}`, "ready");
  });
  return { qs, as, ks, edges: [...edges.values()] };
}

/** Step i in words (the banner). */
function wlQfPhrase(c, queues, keys, i) {
  const who = `${c.who[i] || "?"} (${c.thread[i]})`;
  const q = c.queue[i] >= 0 ? `queue ${queues[c.queue[i]].name}` : "";
  const key = c.key[i] >= 0 ? keys[c.key[i]].key : "";
  return {
    register: `${who} registers ${q} — the last registrant gets on_queue_ready`,
    enqueue: `${who} ──enqueue──▶ ${q} (depth ${c.depth[i]}): ${c.text[i]}`,
    notify: `the host posts on_queue_ready for ${q} to the registrant's thread (${c.thread[i]})`,
    ready: `on_queue_ready(${q}) delivered to ${who}`,
    dequeue: `${q} ──dequeue──▶ ${who} (depth ${c.depth[i]}): ${c.text[i]}`,
    tick: `↻ tick: ${who} (${c.text[i]})`,
    set: `${who} sets shared data ${key} = ${wlValue(c.text[i])} (${c.note[i]})`,
    get: `${who} reads shared data ${key} (${c.note[i]})`,
    reply: c.ok[i] ? `${who} answers the request itself: ${c.note[i]}` : `✖ ${who} denies the request: ${c.note[i]} (after reading ${key})`,
  }[c.kind[i]] || `${c.kind[i]} ${who}`;
}

/** The arrow step i moves along: [from box, to box, kind, what travels], or null. */
function wlQfMoving(c, st, actors, i) {
  const a = `a${c.actor[i]}`, q = `q${c.queue[i]}`, k = `k${c.key[i]}`;
  switch (c.kind[i]) {
    case "enqueue": return [a, q, "enqueue", `✉ ${c.text[i]}`];
    case "register": return [a, q, "register", "register"];
    case "notify": {
      const r = actors.findIndex((x) => x.vm === st.qs[c.queue[i]].reg);
      return r >= 0 ? [q, `a${r}`, "ready", "on_queue_ready"] : null;
    }
    case "ready": return [q, a, "ready", "on_queue_ready"];
    case "dequeue": return [q, a, "ready", `✉ ${c.text[i]}`];
    case "set": return [a, k, "set", wlValue(c.text[i])];
    case "get": return [k, a, "get", c.note[i]];
    case "reply": return c.ok[i] ? null : [k, a, "get", `✖ ${c.note[i]}`];
    default: return null;
  }
}

// ---- boxes ----------------------------------------------------------------------------------------
function wlQfBox(id, cls, current, ...children) {
  return wlEl("div", { id: `wl-qf-${id}`, class: `wl-qf-box ${cls}${current ? " wl-current" : ""}` }, ...children);
}

function wlQfActorBox(a, j, s, current, denied) {
  const r = new Set(a.roles);
  const lines = [wlEl("b", {}, a.vm), wlEl("div", { class: "wl-muted" }, a.thread)];
  if (r.has("producer")) lines.push(wlEl("div", {}, `enqueued ×${s.enqueue}`));
  if (r.has("consumer")) lines.push(wlEl("div", {}, `on_queue_ready ×${s.ready} · dequeued ×${s.dequeue}`));
  else if (r.has("registrant")) lines.push(wlEl("div", {}, "registrant (gets on_queue_ready)"));
  if (r.has("ticker")) lines.push(wlEl("div", {}, `↻ ticks ×${s.tick}`));
  if (r.has("writer")) lines.push(wlEl("div", {}, `shared-data sets ×${s.set}`));
  if (r.has("reader")) lines.push(wlEl("div", {}, `shared-data gets ×${s.get}` + (s.denied ? ` · ✖ ${s.denied} denied` : "")));
  const b = wlQfBox(`a${j}`, `wasm${denied ? " wl-denied" : ""}`, current, ...lines);
  b.setAttribute("data-vm", a.vm);
  return b;
}

function wlQfQueueBox(q, j, s, most, current) {
  const depth = wlEl("div", { class: "wl-qf-depth", title: "messages waiting" }, wlEl("div", {}));
  depth.firstChild.style.width = `${Math.min(100, (100 * s.waiting.length) / most)}%`;
  const msgs = wlEl("div", { class: "wl-qf-msgs" },
    ...s.waiting.slice(0, 6).map((m) => wlEl("span", { class: "wl-qf-msg" }, `✉ ${m}`)),
    s.waiting.length > 6 ? wlEl("span", { class: "wl-muted" }, ` +${s.waiting.length - 6}`) : null);
  const b = wlQfBox(`q${j}`, "queue", current,
    wlEl("b", {}, `queue ${q.name}`),
    wlEl("div", { class: "wl-muted" }, `vm_id ${q.vm_id} · id ${q.queue_id}`),
    wlEl("div", {}, s.reg ? `registrant ${s.reg}` : "not registered yet"),
    depth, wlEl("div", {}, `depth ${s.waiting.length} · ${s.enq} in · ${s.deq} out · ${s.ready} on_queue_ready`), msgs);
  b.setAttribute("data-queue", q.name);
  return b;
}

function wlQfKeyBox(k, j, s, current) {
  return wlQfBox(`k${j}`, "shared", current,
    wlEl("b", {}, `shared data ${k.key}`), wlEl("div", { class: "wl-muted" }, `vm_id ${k.vm_id}`),
    wlEl("div", {}, `= ${wlValue(s.value)}`),
    wlEl("div", {}, `cas ${s.cas === null ? "—" : s.cas} · ${s.sets} sets · ${s.reads} reads`),
    s.failed ? wlEl("div", { class: "wl-flag" }, `✖ ${s.failed} CAS mismatches`) : null,
    s.denied ? wlEl("div", { class: "wl-flag" }, `✖ ${s.denied} request${s.denied === 1 ? "" : "s"} denied after reading it`) : null);
}

function wlQfLegend(kinds, stepping) {
  return [
    ["enqueue", "orange arrow = enqueue"], ["ready", "blue arrow = on_queue_ready (to the registrant)"],
    ["register", "dashed blue = register"], ["set", "olive arrow = shared-data set"], ["get", "dashed olive = shared-data get"],
  ].filter(([k]) => kinds.has(k)).map(([, t]) => wlEl("span", {}, t))
    .concat(stepping ? [wlEl("span", {}, "yellow ring = this step")] : []);
}

// ---- arrows and the travelling message --------------------------------------------------------------
function wlQfEnds(stage, from, to, em) {
  const rect = (id) => {
    const e = stage.querySelector(`#wl-qf-${id}`);
    if (!e) return null;
    const s = stage.getBoundingClientRect(), r = e.getBoundingClientRect();
    return { x: r.left - s.left, y: r.top - s.top, w: r.width, h: r.height };
  };
  const a = rect(from), b = rect(to);
  if (!a || !b) return null;
  const right = a.x + a.w / 2 < b.x + b.w / 2;
  const y1 = a.y + Math.min(a.h / 2, 1.5 * em), y2 = b.y + Math.min(b.h / 2, 1.5 * em);
  if (Math.abs(a.x - b.x) < 1) return [a.x + a.w, y1, b.x + b.w, y2, true]; // same column
  return [right ? a.x + a.w : a.x, y1, right ? b.x : b.x + b.w, y2, false];
}

function wlQfDrawArrows(stage, arrows, edges, now, em) {
  const box = stage.getBoundingClientRect();
  arrows.setAttribute("width", String(Math.max(1, box.width)));
  arrows.setAttribute("height", String(Math.max(1, box.height)));
  const defs = wlSvg("defs", {});
  for (const [k, colour] of Object.entries(WL_QF_COLOUR)) {
    const mk = wlSvg("marker", { id: `wl-qf-ah-${k}`, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto-start-reverse" });
    mk.append(wlSvg("path", { d: "M0,0 L10,5 L0,10 z", fill: colour }));
    defs.append(mk);
  }
  arrows.replaceChildren(defs);
  const all = edges.map((e) => [...e, false]).concat(now ? [[now[0], now[1], now[2], true]] : []);
  for (const [from, to, k, current] of all) {
    const p = wlQfEnds(stage, from, to, em);
    if (!p) continue;
    const [x1, y1, x2, y2, same] = p;
    const dy = k === "ready" || k === "get" ? 0.35 * em : -0.35 * em;
    const mx = same ? Math.max(x1, x2) + 2.2 * em : (x1 + x2) / 2;
    const g = wlSvg("g", { class: `wl-qf-edge ${k}${current ? " wl-now" : ""}` });
    g.append(wlSvg("path", { d: `M${x1},${y1 + dy} C${mx},${y1 + dy} ${mx},${y2 + dy} ${x2},${y2 + dy}`, fill: "none",
      stroke: WL_QF_COLOUR[k], "stroke-width": 1.6, "stroke-dasharray": k === "get" || k === "register" ? "4 3" : "none",
      "marker-end": `url(#wl-qf-ah-${k})`, opacity: current ? 1 : 0.7 }));
    arrows.append(g);
  }
}

/** Move the travelling label from one box to the other; returns the running animation. */
function wlQfFly(stage, travel, now, ms, em, previous) {
  const p = wlQfEnds(stage, now[0], now[1], em);
  if (previous) previous.cancel();
  if (!p) { travel.hidden = true; return null; }
  const [x1, y1, x2, y2] = p;
  travel.textContent = now[3];
  travel.hidden = false;
  const h = travel.offsetHeight / 2, w = travel.offsetWidth;
  const from = `translate(${x1 - (x2 < x1 ? w : 0)}px, ${y1 - h}px)`, to = `translate(${x2 - (x2 < x1 ? 0 : w)}px, ${y2 - h}px)`;
  if (typeof travel.animate !== "function") { travel.style.transform = to; return null; }
  return travel.animate([{ transform: from }, { transform: to }], { duration: ms, easing: "ease-in-out", fill: "forwards" });
}

// ---- the widget -----------------------------------------------------------------------------------
function wlQfToolbar(model, go, player) {
  const pos = wlEl("span", { class: "wl-pos", "aria-live": "polite" });
  const slider = wlEl("input", { type: "range", min: -1, max: 0, value: 0, "aria-label": "step through the flow" });
  slider.addEventListener("input", () => go.to(Number(slider.value), false));
  slider.addEventListener("change", () => go.to(Number(slider.value), true));
  const playBtn = wlButton("▶ play", "play / pause", () => {
    if (player.playing) player.stop();
    else { if (go.atEnd()) go.to(-1, false); player.start(); }
  }, "play");
  const bar = wlEl("div", { class: "wl-bar" },
    wlButton("|◀ first", "first step", () => go.to(0), "first"),
    wlButton("◀ step", "previous step", () => go.by(-1), "prev"),
    playBtn,
    wlButton("step ▶", "next step", () => go.by(1), "step"),
    wlButton("last ▶|", "last step", () => go.to(Infinity), "last"),
    slider, pos,
    wlSelect([[1, "1 step/s"], [4, "4 steps/s"], [15, "15 steps/s"], [60, "60 steps/s"]], model.get("speed"),
      (v) => { model.set("speed", Number(v)); model.save_changes(); player.restart(); }, "speed"));
  return { bar, pos, slider, playBtn };
}

function wlQfLayout() {
  const ui = {
    banner: wlEl("div", { class: "wl-qf-event", "aria-live": "polite" }),
    colP: wlEl("div", { class: "wl-qf-col", "data-col": "workers" }),
    colQ: wlEl("div", { class: "wl-qf-col", "data-col": "shared" }),
    colC: wlEl("div", { class: "wl-qf-col", "data-col": "main" }),
    arrows: wlSvg("svg", { class: "wl-qf-arrows", width: 1, height: 1 }),
    travel: wlEl("div", { class: "wl-qf-travel", hidden: true }),
    legend: wlEl("div", { class: "wl-qf-legend wl-muted" }),
    details: wlEl("div", { class: "wl-details" }),
  };
  ui.stage = wlEl("div", { class: "wl-qf-stage" }, wlEl("div", { class: "wl-qf-grid" }, ui.colP, ui.colQ, ui.colC), ui.travel);
  ui.stage.append(ui.arrows);
  return ui;
}

/** Fill the three columns for the state `st` with step i highlighted. */
function wlQfColumns(ui, c, queues, keys, actors, st, i) {
  const has = i >= 0 && i < c.seq.length;
  const actIdx = has ? c.actor[i] : -1, qIdx = has ? c.queue[i] : -1, kIdx = has ? c.key[i] : -1;
  const denied = has && c.kind[i] === "reply" && !c.ok[i];
  ui.colP.replaceChildren(wlEl("h4", {}, "worker threads"));
  ui.colC.replaceChildren(wlEl("h4", {}, "main thread"));
  actors.forEach((a, j) => (a.thread === "main" ? ui.colC : ui.colP).append(wlQfActorBox(a, j, st.as[j], j === actIdx, denied && j === actIdx)));
  if (ui.colP.children.length === 1) ui.colP.append(wlEl("div", { class: "wl-muted" }, "(no worker VMs in this flow)"));
  ui.colQ.replaceChildren(wlEl("h4", {}, "process-wide (by vm_id)"));
  const most = Math.max(4, ...st.qs.map((x) => x.max));
  queues.forEach((q, j) => ui.colQ.append(wlQfQueueBox(q, j, st.qs[j], most, j === qIdx)));
  keys.forEach((k, j) => ui.colQ.append(wlQfKeyBox(k, j, st.ks[j], j === kIdx && qIdx < 0)));
  if (!queues.length && !keys.length) ui.colQ.append(wlEl("div", { class: "wl-muted" }, "no shared queues or shared data"));
}

/** The details panel follows the cursor: what is known at once, the full record when the kernel answers. */
function wlQfDetails(model, panel, playing) {
  const fetchDetails = wlDetailsFetcher(model);
  let timer = null;
  const show = (idx, current) => {
    const c = model.get("steps") || { seq: [] };
    clearTimeout(timer);
    const known = idx >= 0 && idx < c.seq.length;
    panel.textContent = known ? `#${c.seq[idx]} ${c.kind[idx]} on ${c.thread[idx]} (full record loading…)` : "";
    if (!known) return;
    timer = setTimeout(() => fetchDetails(idx).then((ev) => {
      if (idx !== current()) return;
      const words = wlQfPhrase(c, model.get("queues") || [], model.get("shared_keys") || [], idx);
      panel.textContent = ev ? JSON.stringify(ev, null, 1) : `#${c.seq[idx]} ${words} (the full record needs the kernel)`;
    }), playing() ? 250 : 0);
  };
  show.stop = () => clearTimeout(timer);
  return show;
}

function render({ model, el }) {
  const started = performance.now();
  const root = wlEl("div", { class: "wl wl-queueflow" }, wlEl("style", {}, WL_QF_CSS));
  el.append(root);
  let step = model.get("step"), cursor = -1, flight = null, edges = [], now = null;
  const cols = () => model.get("steps") || { seq: [] };
  const n = () => cols().seq.length;
  // step ▶ on the last step starts again from the first one (as play does): stepping always moves
  const go = { to: (s, persist = true) => move(s, persist), by: (d) => move(d > 0 && step >= n() - 1 ? 0 : step + d),
    atEnd: () => step >= n() - 1 };
  const player = wlPlayer(() => move(step + 1, false), () => model.get("speed") || 4);
  const tb = wlQfToolbar(model, go, player);
  const ui = wlQfLayout();
  const details = wlQfDetails(model, ui.details, () => player.playing);
  player.onchange = () => {
    tb.playBtn.textContent = player.playing ? "❚❚ pause" : "▶ play";
    if (!player.playing) { save(); showDetails(); }
  };
  root.append(wlTitle(model), tb.bar, ui.banner, ui.stage, ui.legend, ui.details);
  if (typeof wlProjectorToggle === "function") wlProjectorToggle(root);
  wlKeyNav(root, { ArrowRight: () => go.by(1), ArrowLeft: () => go.by(-1), Home: () => go.to(0), End: () => go.to(Infinity) });
  const em = () => parseFloat(getComputedStyle(root).fontSize) || 14;
  const guard = typeof wlWidthGuard === "function" ? wlWidthGuard(root, ui.stage, ":is(.wl-qf-arrows, .wl-qf-travel)") : () => {};

  function save() { if (model.get("step") !== step) { model.set("step", step); model.save_changes(); } }
  function publish() {
    const c = cols();
    const seq = step >= 0 && step < c.seq.length ? c.seq[step] : Math.max(0, (c.seq[0] || 1) - 1);
    if (seq === cursor) return;
    cursor = seq;
    model.set("cursor_seq", seq);
    model.save_changes();
  }
  function move(s, persist = true) { // -1 = before the first step
    if (!n()) { draw(false); return false; }
    const q = Math.max(-1, Math.min(n() - 1, s));
    const moved = q !== step;
    step = q;
    draw(moved);
    publish();
    showDetails();
    if (persist) save();
    return moved && q === s;
  }
  function follow(seq) {
    cursor = seq;
    const i = wlLowerBound(cols().seq, seq + 1) - 1;
    const moved = i !== step;
    step = i;
    draw(moved);
    showDetails();
  }
  function draw(animate) {
    const c = cols(), queues = model.get("queues") || [], keys = model.get("shared_keys") || [], actors = model.get("actors") || [];
    const total = c.seq.length, i = step, has = total > 0 && i >= 0;
    tb.slider.max = String(Math.max(0, total - 1));
    tb.slider.value = String(step);
    tb.pos.textContent = has ? `step ${i + 1} of ${total} (#${c.seq[i]})` : total ? `before step 1 of ${total}` : "no steps";
    ui.banner.textContent = has ? `#${c.seq[i]}  ${wlQfPhrase(c, queues, keys, i)}`
      : total ? "Before the first step." : "No shared-queue, timer or shared-data events in this trace.";
    ui.banner.classList.toggle("wl-flag", has && !c.ok[i]);
    const st = wlQfState(c, queues, keys, actors, step);
    wlQfColumns(ui, c, queues, keys, actors, st, i);
    edges = st.edges;
    now = has ? wlQfMoving(c, st, actors, i) : null;
    ui.legend.replaceChildren(...wlQfLegend(new Set(edges.map((e) => e[2]).concat(now ? [now[2]] : [])), has));
    wlQfDrawArrows(ui.stage, ui.arrows, edges, now, em());
    guard();
    if (animate && now) {
      const ms = player.playing ? Math.min(700, 800 / (model.get("speed") || 4)) : 600;
      flight = wlQfFly(ui.stage, ui.travel, now, ms, em(), flight);
    } else ui.travel.hidden = true;
  }
  function showDetails() { details(step, () => step); }

  model.on("change:steps", () => draw(false));
  model.on("change:step", () => { const s = model.get("step"); if (s !== step) move(s, false); });
  model.on("change:cursor_seq", () => { const c = model.get("cursor_seq"); if (c !== cursor) follow(c); });
  const redrawArrows = () => { wlQfDrawArrows(ui.stage, ui.arrows, edges, now, em()); guard(); };
  if (typeof ResizeObserver === "function") new ResizeObserver(() => requestAnimationFrame(redrawArrows)).observe(ui.stage);
  if (model.get("cursor_seq") > 0) follow(model.get("cursor_seq"));
  else { draw(false); showDetails(); }
  requestAnimationFrame(() => {
    redrawArrows();
    root.dataset.renderMs = (performance.now() - started).toFixed(1);
    root.dataset.ready = "1";
  });
  return () => { player.stop(); details.stop(); };
}

export default { render };
