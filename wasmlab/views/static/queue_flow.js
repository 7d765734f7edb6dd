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
.wl-queueflow .wl-qf-event { font-size: 0.85em; }
.wl-queueflow .wl-details { font-size: 0.85em; }
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

function render({ model, el }) {
  const started = performance.now();
  const root = wlEl("div", { class: "wl wl-queueflow" });
  root.append(wlEl("style", {}, WL_QF_CSS));
  el.append(root);
  const fetchDetails = wlDetailsFetcher(model);
  let step = model.get("step");
  let cursor = -1; // the cursor_seq this view last set or followed

  const pos = wlEl("span", { class: "wl-pos", "aria-live": "polite" });
  const slider = wlEl("input", { type: "range", min: 0, max: 0, value: 0, "aria-label": "step through the flow" });
  slider.addEventListener("input", () => go(Number(slider.value), false));
  slider.addEventListener("change", () => go(Number(slider.value), true));
  const player = wlPlayer(() => go(step + 1, false), () => model.get("speed") || 4);
  const playBtn = wlButton("▶ play", "play / pause", () => {
    if (player.playing) player.stop();
    else { if (step >= n() - 1) go(-1, false); player.start(); }
  }, "play");
  player.onchange = () => {
    playBtn.textContent = player.playing ? "❚❚ pause" : "▶ play";
    if (!player.playing) { save(); showDetails(); }
  };
  const bar = wlEl(
    "div", { class: "wl-bar" },
    wlButton("|◀ first", "first step", () => go(0), "first"),
    wlButton("◀ step", "previous step", () => go(step - 1), "prev"),
    playBtn,
    wlButton("step ▶", "next step", () => go(step + 1), "step"),
    wlButton("last ▶|", "last step", () => go(n() - 1), "last"),
    slider, pos,
    wlSelect([[1, "1 step/s"], [4, "4 steps/s"], [15, "15 steps/s"], [60, "60 steps/s"]], model.get("speed"),
      (v) => { model.set("speed", Number(v)); model.save_changes(); player.restart(); }, "speed"),
  );
  const banner = wlEl("div", { class: "wl-qf-event", "aria-live": "polite" });
  const colP = wlEl("div", { class: "wl-qf-col", "data-col": "workers" });
  const colQ = wlEl("div", { class: "wl-qf-col", "data-col": "shared" });
  const colC = wlEl("div", { class: "wl-qf-col", "data-col": "main" });
  const grid = wlEl("div", { class: "wl-qf-grid" }, colP, colQ, colC);
  const arrows = wlSvg("svg", { class: "wl-qf-arrows", width: 1, height: 1 });
  const travel = wlEl("div", { class: "wl-qf-travel", hidden: true });
  const stage = wlEl("div", { class: "wl-qf-stage" }, grid, travel);
  stage.append(arrows);
  const legend = wlEl("div", { class: "wl-qf-legend wl-muted" });
  const details = wlEl("div", { class: "wl-details" });
  root.append(wlTitle(model), bar, banner, stage, legend, details);
  if (typeof wlProjectorToggle === "function") wlProjectorToggle(root);
  wlKeyNav(root, { ArrowRight: () => go(step + 1), ArrowLeft: () => go(step - 1), Home: () => go(0), End: () => go(n() - 1) });

  function cols() { return model.get("steps") || { seq: [] }; }
  function n() { return cols().seq.length; }
  function save() { if (model.get("step") !== step) { model.set("step", step); model.save_changes(); } }
  function publish() {
    const c = cols();
    const seq = step >= 0 && step < c.seq.length ? c.seq[step] : Math.max(0, (c.seq[0] || 1) - 1);
    if (seq === cursor) return;
    cursor = seq;
    model.set("cursor_seq", seq);
    model.save_changes();
  }
  // go(-1) = before the first step
  function go(s, persist = true) {
    const total = n();
    if (!total) { draw(false); return false; }
    const q = Math.max(-1, Math.min(total - 1, s));
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

  function state() {
    const c = cols(), queues = model.get("queues") || [], keys = model.get("shared_keys") || [], actors = model.get("actors") || [];
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
        if (a >= 0 && (k === "set" || k === "get")) edge(k === "set" ? `a${a}` : `k${ki}`, k === "set" ? `k${ki}` : `a${a}`, k);
      }
    }
    qs.forEach((q, qi) => {
      const r = actors.findIndex((x) => x.vm === q.reg);
      if (r >= 0) edge(`q${qi}`, `a${r}`, "ready");
    });
    return { qs, as, ks, edges: [...edges.values()] };
  }

  function box(id, cls, current, ...children) {
    return wlEl("div", { id: `wl-qf-${id}`, class: `wl-qf-box ${cls}${current ? " wl-current" : ""}` }, ...children);
  }

  function phrase(i) {
    const c = cols(), queues = model.get("queues") || [], keys = model.get("shared_keys") || [];
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

  function draw(animate) {
    const c = cols(), queues = model.get("queues") || [], keys = model.get("shared_keys") || [], actors = model.get("actors") || [];
    const total = c.seq.length;
    slider.min = "-1";
    slider.max = String(Math.max(0, total - 1));
    slider.value = String(step);
    const { qs, as, ks, edges } = state();
    const i = step;
    const has = total > 0 && i >= 0;
    pos.textContent = has ? `step ${i + 1} of ${total} (#${c.seq[i]})` : total ? `before step 1 of ${total}` : "no steps";
    const actIdx = has ? c.actor[i] : -1, qIdx = has ? c.queue[i] : -1, kIdx = has ? c.key[i] : -1;
    if (has) {
      banner.textContent = `#${c.seq[i]}  ${phrase(i)}`;
      banner.classList.toggle("wl-flag", !c.ok[i]);
    } else banner.textContent = total ? "Before the first step." : "No shared-queue, timer or shared-data events in this trace.";

    colP.replaceChildren(wlEl("h4", {}, "worker threads"));
    colC.replaceChildren(wlEl("h4", {}, "main thread"));
    actors.forEach((a, j) => {
      const r = new Set(a.roles), s = as[j];
      const lines = [wlEl("b", {}, a.vm), wlEl("div", { class: "wl-muted" }, a.thread)];
      if (r.has("producer")) lines.push(wlEl("div", {}, `enqueued ×${s.enqueue}`));
      if (r.has("consumer")) lines.push(wlEl("div", {}, `on_queue_ready ×${s.ready} · dequeued ×${s.dequeue}`));
      else if (r.has("registrant")) lines.push(wlEl("div", {}, "registrant (gets on_queue_ready)"));
      if (r.has("ticker")) lines.push(wlEl("div", {}, `↻ ticks ×${s.tick}`));
      if (r.has("writer")) lines.push(wlEl("div", {}, `shared-data sets ×${s.set}`));
      if (r.has("reader")) lines.push(wlEl("div", {}, `shared-data gets ×${s.get}` + (s.denied ? ` · ✖ ${s.denied} denied` : "")));
      const b = box(`a${j}`, `wasm${has && c.kind[i] === "reply" && !c.ok[i] && j === actIdx ? " wl-denied" : ""}`, j === actIdx, ...lines);
      b.setAttribute("data-vm", a.vm);
      (a.thread === "main" ? colC : colP).append(b);
    });
    if (colP.children.length === 1) colP.append(wlEl("div", { class: "wl-muted" }, "(no worker VMs in this flow)"));
    colQ.replaceChildren(wlEl("h4", {}, "process-wide (by vm_id)"));
    const most = Math.max(4, ...qs.map((x) => x.max));
    queues.forEach((q, j) => {
      const s = qs[j];
      const depth = wlEl("div", { class: "wl-qf-depth", title: "messages waiting" }, wlEl("div", {}));
      depth.firstChild.style.width = `${Math.min(100, (100 * s.waiting.length) / most)}%`;
      const msgs = wlEl("div", { class: "wl-qf-msgs" },
        ...s.waiting.slice(0, 6).map((m) => wlEl("span", { class: "wl-qf-msg" }, `✉ ${m}`)),
        s.waiting.length > 6 ? wlEl("span", { class: "wl-muted" }, ` +${s.waiting.length - 6}`) : null);
      const b = box(`q${j}`, "queue", j === qIdx,
        wlEl("b", {}, `queue ${q.name}`),
        wlEl("div", { class: "wl-muted" }, `vm_id ${q.vm_id} · id ${q.queue_id}`),
        wlEl("div", {}, s.reg ? `registrant ${s.reg}` : "not registered yet"),
        depth, wlEl("div", {}, `depth ${s.waiting.length} · ${s.enq} in · ${s.deq} out · ${s.ready} on_queue_ready`), msgs);
      b.setAttribute("data-queue", q.name);
      colQ.append(b);
    });
    keys.forEach((k, j) => {
      const s = ks[j];
      colQ.append(box(`k${j}`, "shared", j === kIdx && qIdx < 0,
        wlEl("b", {}, `shared data ${k.key}`), wlEl("div", { class: "wl-muted" }, `vm_id ${k.vm_id}`),
        wlEl("div", {}, `= ${wlValue(s.value)}`),
        wlEl("div", {}, `cas ${s.cas === null ? "—" : s.cas} · ${s.sets} sets · ${s.reads} reads`),
        s.failed ? wlEl("div", { class: "wl-flag" }, `✖ ${s.failed} CAS mismatches`) : null,
        s.denied ? wlEl("div", { class: "wl-flag" }, `✖ ${s.denied} request${s.denied === 1 ? "" : "s"} denied after reading it`) : null));
    });
    if (!queues.length && !keys.length) colQ.append(wlEl("div", { class: "wl-muted" }, "no shared queues or shared data"));
    const now = has ? moving(i) : null;
    const kinds = new Set(edges.map((e) => e[2]).concat(now ? [now[2]] : []));
    legend.replaceChildren(...[
      ["enqueue", "orange arrow = enqueue"], ["ready", "blue arrow = on_queue_ready (to the registrant)"],
      ["register", "dashed blue = register"], ["set", "olive arrow = shared-data set"], ["get", "dashed olive = shared-data get"],
    ].filter(([k]) => kinds.has(k)).map(([, t]) => wlEl("span", {}, t)),
    ...(has ? [wlEl("span", {}, "yellow ring = this step")] : []));
    drawArrows(edges, now);
    if (animate && now) fly(now, i);
    else travel.hidden = true;
  }

  // the arrow the current step moves along: [from box, to box, kind, what travels]
  function moving(i) {
    const c = cols(), a = `a${c.actor[i]}`, q = `q${c.queue[i]}`, k = `k${c.key[i]}`;
    const regOf = () => { const st = state().qs[c.queue[i]]; const r = (model.get("actors") || []).findIndex((x) => x.vm === st.reg); return r >= 0 ? `a${r}` : null; };
    switch (c.kind[i]) {
      case "enqueue": return [a, q, "enqueue", `✉ ${c.text[i]}`];
      case "register": return [a, q, "register", "register"];
      case "notify": { const r = regOf(); return r ? [q, r, "ready", "on_queue_ready"] : null; }
      case "ready": return [q, a, "ready", "on_queue_ready"];
      case "dequeue": return [q, a, "ready", `✉ ${c.text[i]}`];
      case "set": return [a, k, "set", wlValue(c.text[i])];
      case "get": return [k, a, "get", c.note[i]];
      case "reply": return c.ok[i] ? null : [k, a, "get", `✖ ${c.note[i]}`];
      default: return null;
    }
  }

  function rectOf(id) {
    const e = stage.querySelector(`#wl-qf-${id}`);
    if (!e) return null;
    const s = stage.getBoundingClientRect(), r = e.getBoundingClientRect();
    return { x: r.left - s.left, y: r.top - s.top, w: r.width, h: r.height };
  }
  function ends(from, to, em) {
    const a = rectOf(from), b = rectOf(to);
    if (!a || !b) return null;
    const right = a.x + a.w / 2 < b.x + b.w / 2;
    const y1 = a.y + Math.min(a.h / 2, 1.5 * em), y2 = b.y + Math.min(b.h / 2, 1.5 * em);
    if (Math.abs(a.x - b.x) < 1) return [a.x + a.w, y1, b.x + b.w, y2, true]; // same column
    return [right ? a.x + a.w : a.x, y1, right ? b.x : b.x + b.w, y2, false];
  }
  let lastEdges = [], lastNow = null;
  function drawArrows(edges, now) {
    lastEdges = edges; lastNow = now;
    const box = stage.getBoundingClientRect();
    const em = parseFloat(getComputedStyle(root).fontSize) || 14;
    arrows.setAttribute("width", String(Math.max(1, box.width)));
    arrows.setAttribute("height", String(Math.max(1, box.height)));
    arrows.replaceChildren();
    const defs = wlSvg("defs", {});
    for (const [k, colour] of Object.entries(WL_QF_COLOUR)) {
      const mk = wlSvg("marker", { id: `wl-qf-ah-${k}`, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto-start-reverse" });
      mk.append(wlSvg("path", { d: "M0,0 L10,5 L0,10 z", fill: colour }));
      defs.append(mk);
    }
    arrows.append(defs);
    const all = [...edges.map((e) => [...e, false])];
    if (now) all.push([now[0], now[1], now[2], true]);
    for (const [from, to, k, current] of all) {
      const p = ends(from, to, em);
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

  let flight = null;
  function fly(now, i) {
    const em = parseFloat(getComputedStyle(root).fontSize) || 14;
    const p = ends(now[0], now[1], em);
    if (!p) { travel.hidden = true; return; }
    const [x1, y1, x2, y2] = p;
    travel.textContent = now[3];
    travel.hidden = false;
    travel.dataset.step = String(i);
    const h = travel.offsetHeight / 2, w = travel.offsetWidth;
    const from = `translate(${x1 - (x2 < x1 ? w : 0)}px, ${y1 - h}px)`, to = `translate(${x2 - (x2 < x1 ? 0 : w)}px, ${y2 - h}px)`;
    if (flight) flight.cancel();
    const ms = player.playing ? Math.min(700, 800 / (model.get("speed") || 4)) : 600;
    if (typeof travel.animate === "function") {
      flight = travel.animate([{ transform: from }, { transform: to }], { duration: ms, easing: "ease-in-out", fill: "forwards" });
    } else travel.style.transform = to;
  }

  let detailTimer = null;
  function showDetails() {
    // the details follow the cursor: what is known at once, the full record when the kernel answers
    const idx = step;
    const c = cols();
    clearTimeout(detailTimer);
    details.textContent = idx >= 0 && idx < n() ? `#${c.seq[idx]} ${c.kind[idx]} on ${c.thread[idx]} (full record loading…)` : "";
    if (idx < 0 || idx >= n()) return;
    detailTimer = setTimeout(() => {
      fetchDetails(idx).then((ev) => {
        if (idx !== step) return;
        details.textContent = ev ? JSON.stringify(ev, null, 1) : `#${c.seq[idx]} ${phrase(idx)} (the full record needs the kernel)`;
      });
    }, player.playing ? 250 : 0);
  }

  model.on("change:steps", () => draw(false));
  model.on("change:step", () => { const s = model.get("step"); if (s !== step) go(s, false); });
  model.on("change:cursor_seq", () => { const c = model.get("cursor_seq"); if (c !== cursor) follow(c); });
  if (typeof ResizeObserver === "function") new ResizeObserver(() => requestAnimationFrame(() => drawArrows(lastEdges, lastNow))).observe(stage);
  if (model.get("cursor_seq") > 0) follow(model.get("cursor_seq"));
  else { draw(false); showDetails(); }
  requestAnimationFrame(() => {
    drawArrows(lastEdges, lastNow);
    root.dataset.renderMs = (performance.now() - started).toFixed(1);
    root.dataset.ready = "1";
  });
  return () => { player.stop(); clearTimeout(detailTimer); };
}

export default { render };
