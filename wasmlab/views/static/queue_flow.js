// The queue flow: producers (workers' filters) -> shared queues -> the consumer on the main thread,
// ticks, and shared-data values, replayed step by step in the browser.

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
  el.append(root);
  const fetchDetails = wlDetailsFetcher(model);
  let step = model.get("step");

  const pos = wlEl("span", { class: "wl-pos", "aria-live": "polite" });
  const slider = wlEl("input", { type: "range", min: 0, max: 0, value: 0, "aria-label": "step through the flow" });
  slider.addEventListener("input", () => go(Number(slider.value), false));
  slider.addEventListener("change", () => go(Number(slider.value), true));
  const player = wlPlayer(() => go(step + 1, false), () => model.get("speed") || 4);
  const playBtn = wlButton("▶ play", "play / pause", () => {
    if (player.playing) player.stop();
    else { if (step >= n() - 1) go(0, false); player.start(); }
  }, "play");
  player.onchange = () => {
    playBtn.textContent = player.playing ? "⏸ pause" : "▶ play";
    if (!player.playing) save();
  };
  const bar = wlEl(
    "div", { class: "wl-bar" },
    wlButton("|◀ first", "first step", () => go(0), "first"),
    wlButton("◀ step", "previous step", () => go(step - 1), "prev"),
    playBtn,
    wlButton("step ▶", "next step", () => go(step + 1), "next"),
    wlButton("last ▶|", "last step", () => go(n() - 1), "last"),
    slider, pos,
    wlSelect([[1, "1 step/s"], [4, "4 steps/s"], [15, "15 steps/s"], [60, "60 steps/s"]], model.get("speed"),
      (v) => { model.set("speed", Number(v)); model.save_changes(); player.restart(); }, "speed"),
  );
  const banner = wlEl("div", { class: "wl-qf-event", "aria-live": "polite" });
  const colP = wlEl("div", { class: "wl-qf-col" });
  const colQ = wlEl("div", { class: "wl-qf-col" });
  const colC = wlEl("div", { class: "wl-qf-col" });
  const grid = wlEl("div", { class: "wl-qf-grid" }, colP, colQ, colC);
  const shared = wlEl("div", {});
  const details = wlEl("div", { class: "wl-details" });
  root.append(wlTitle(model), bar, banner, grid, shared, details);
  wlKeyNav(root, { ArrowRight: () => go(step + 1), ArrowLeft: () => go(step - 1), Home: () => go(0), End: () => go(n() - 1) });

  function cols() { return model.get("steps") || { seq: [] }; }
  function n() { return cols().seq.length; }
  function save() { if (model.get("step") !== step) { model.set("step", step); model.save_changes(); } }
  function go(s, persist = true) {
    const total = n();
    if (!total) { draw(); return false; }
    const q = Math.max(0, Math.min(total - 1, s));
    const moved = q !== step;
    step = q;
    draw();
    if (persist) { save(); showDetails(); }
    return moved && q === s;
  }

  function state() {
    const c = cols(), queues = model.get("queues"), keys = model.get("shared_keys"), actors = model.get("actors");
    const qs = queues.map(() => ({ waiting: [], enq: 0, deq: 0, ready: 0, max: 0 }));
    const as = actors.map(() => ({ enqueue: 0, dequeue: 0, ready: 0, tick: 0, set: 0, register: 0 }));
    const ks = keys.map(() => ({ value: null, cas: null, sets: 0, failed: 0, writer: -1 }));
    for (let i = 0; i <= step && i < c.seq.length; i++) {
      const k = c.kind[i], a = c.actor[i], qi = c.queue[i], ki = c.key[i];
      if (a >= 0 && k in as[a]) as[a][k]++;
      if (qi >= 0) {
        const q = qs[qi];
        if (k === "enqueue") { q.enq++; q.waiting.push(c.text[i]); }
        else if (k === "dequeue") { q.deq++; q.waiting.shift(); }
        else if (k === "ready") q.ready++;
        q.max = Math.max(q.max, q.waiting.length);
      }
      if (ki >= 0) {
        const s = ks[ki];
        if (c.ok[i]) { s.value = c.text[i]; s.cas = c.depth[i]; s.sets++; s.writer = a; } else s.failed++;
      }
    }
    return { qs, as, ks };
  }

  function box(cls, active, ...children) {
    return wlEl("div", { class: `wl-qf-box ${cls}${active ? " wl-active" : ""}` }, ...children);
  }

  function draw() {
    const c = cols(), queues = model.get("queues") || [], keys = model.get("shared_keys") || [], actors = model.get("actors") || [];
    const total = c.seq.length;
    slider.max = String(Math.max(0, total - 1));
    slider.value = String(Math.max(0, step));
    const { qs, as, ks } = state();
    const i = step;
    const has = total > 0 && i >= 0;
    pos.textContent = has ? `step ${i + 1} of ${total} (#${c.seq[i]})` : "no steps";
    const actIdx = has ? c.actor[i] : -1, qIdx = has ? c.queue[i] : -1, kIdx = has ? c.key[i] : -1;
    // the banner: what moved, in words
    if (has) {
      const who = actIdx >= 0 ? `${actors[actIdx].vm} (${c.thread[i]})` : c.thread[i];
      const q = qIdx >= 0 ? `queue ${queues[qIdx].name}` : "";
      const k = c.kind[i];
      const phrase = {
        register: `${who} registers ${q} — it will get on_queue_ready`,
        enqueue: `${who} ──enqueue──▶ ${q} (depth ${c.depth[i]}): ${c.text[i]}`,
        notify: `the host posts on_queue_ready for ${q} to the registrant's thread (${c.thread[i]})`,
        ready: `on_queue_ready(${q}) delivered to ${who}`,
        dequeue: `${q} ──dequeue──▶ ${who} (depth ${c.depth[i]}): ${c.text[i]}`,
        tick: `↻ tick: ${who} (${c.text[i]})`,
        set: `${who} sets shared data ${kIdx >= 0 ? keys[kIdx].key : ""} = ${wlValue(c.text[i])} (${c.note[i]})`,
      }[k] || `${k} ${who}`;
      banner.textContent = `#${c.seq[i]}  ${phrase}`;
      banner.classList.toggle("wl-flag", !c.ok[i]);
    } else banner.textContent = "No shared-queue, timer or shared-data events in this trace.";

    const roles = (a) => new Set(a.roles);
    colP.replaceChildren(wlEl("h4", {}, "workers' filters (enqueue)"));
    colC.replaceChildren(wlEl("h4", {}, "main thread: WasmService (on_queue_ready, ticks)"));
    actors.forEach((a, j) => {
      const r = roles(a), s = as[j];
      const lines = [wlEl("b", {}, a.vm), wlEl("div", { class: "wl-muted" }, a.thread)];
      if (r.has("producer")) lines.push(wlEl("div", { class: "wl-qf-counter" }, `enqueued ×${s.enqueue}`));
      if (r.has("consumer")) lines.push(wlEl("div", { class: "wl-qf-counter" }, `on_queue_ready ×${s.ready} · dequeued ×${s.dequeue}`));
      if (r.has("ticker")) lines.push(wlEl("div", { class: "wl-qf-counter" }, `↻ ticks ×${s.tick}`));
      if (r.has("writer")) lines.push(wlEl("div", { class: "wl-qf-counter" }, `shared data sets ×${s.set}`));
      const b = box("wasm", j === actIdx, ...lines);
      b.setAttribute("data-vm", a.vm);
      (r.has("producer") && !r.has("consumer") && !r.has("ticker") ? colP : colC).append(b);
    });
    colQ.replaceChildren(wlEl("h4", {}, "shared queues (process-wide, by vm_id)"));
    queues.forEach((q, j) => {
      const s = qs[j];
      const bar = wlEl("div", { class: "wl-qf-depth", title: "messages waiting" }, wlEl("div", {}));
      bar.firstChild.style.width = `${Math.min(100, (100 * s.waiting.length) / Math.max(1, ...qs.map((x) => x.max), 4))}%`;
      const msgs = wlEl("div", { class: "wl-qf-msgs" },
        ...s.waiting.slice(0, 8).map((m) => wlEl("span", { class: "wl-qf-msg" }, `✉ ${m}`)),
        s.waiting.length > 8 ? wlEl("span", { class: "wl-muted" }, ` +${s.waiting.length - 8}`) : null);
      const b = box("queue", j === qIdx,
        wlEl("b", {}, `queue ${q.name}`),
        wlEl("div", { class: "wl-muted" }, `vm_id ${q.vm_id} · id ${q.queue_id} · registered by ${q.registrant || "?"}`),
        bar,
        wlEl("div", { class: "wl-qf-counter" }, `depth ${s.waiting.length} · ${s.enq} in · ${s.deq} out · ${s.ready} on_queue_ready`),
        msgs);
      b.setAttribute("data-queue", q.name);
      colQ.append(b);
    });
    if (!queues.length) colQ.append(wlEl("div", { class: "wl-muted" }, "no shared queues"));
    if (keys.length) {
      const rows = keys.map((k, j) => {
        const s = ks[j];
        const tr = wlEl("tr", { class: j === kIdx ? "wl-active" : "" },
          wlEl("td", {}, k.key), wlEl("td", {}, k.vm_id), wlEl("td", {}, wlValue(s.value)),
          wlEl("td", {}, s.cas === null ? "—" : String(s.cas)), wlEl("td", {}, String(s.sets)),
          wlEl("td", {}, s.failed ? `✖ ${s.failed}` : "0"),
          wlEl("td", {}, s.writer >= 0 ? `${actors[s.writer].vm} (${actors[s.writer].thread})` : "—"));
        return tr;
      });
      shared.replaceChildren(wlEl("h4", {}, "shared data (CAS)"),
        wlEl("table", { class: "wl-qf-table" },
          wlEl("tr", {}, ...["key", "vm_id", "value", "cas", "sets", "CAS mismatches", "last writer"].map((h) => wlEl("th", {}, h))),
          ...rows));
    } else shared.replaceChildren();
  }

  function showDetails() {
    const idx = step;
    details.textContent = "";
    if (idx < 0 || idx >= n()) return;
    fetchDetails(idx).then((ev) => { if (idx === step && ev) details.textContent = JSON.stringify(ev, null, 1); });
  }

  model.on("change:steps", () => draw());
  model.on("change:step", () => { const s = model.get("step"); if (s !== step) { step = s; draw(); } });
  draw();
  requestAnimationFrame(() => {
    root.dataset.renderMs = (performance.now() - started).toFixed(1);
    root.dataset.ready = "1";
  });
  return () => player.stop();
}

export default { render };
