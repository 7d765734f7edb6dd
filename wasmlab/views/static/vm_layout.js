// The VM layout: the picture Python drew (Graphviz or the built-in grid), restyled in the browser
// to show any moment of the trace — VMs not created yet are faint, failed ones say "✖ failed",
// destroyed ones are dashed and say "destroyed"; stream contexts show which are live.

function render({ model, el }) {
  const started = performance.now();
  const root = wlEl("div", { class: "wl wl-layout" });
  el.append(root);
  const pic = wlEl("div", { class: "wl-layout-pic" });
  const pos = wlEl("span", { class: "wl-pos", "aria-live": "polite" });
  const slider = wlEl("input", { type: "range", min: 0, max: 0, value: 0, "aria-label": "moment of the trace" });
  const what = wlEl("div", { class: "wl-qf-event" });
  let step = model.get("step");
  slider.addEventListener("input", () => setStep(Number(slider.value), false));
  slider.addEventListener("change", () => setStep(Number(slider.value), true));
  const player = wlPlayer(() => {
    const n = marks().seq.length;
    if (step < 0 || step >= n - 1) return false;
    setStep(step + 1, false);
    return true;
  }, () => 4);
  const playBtn = wlButton("▶ play", "replay the lifecycle", () => {
    if (player.playing) player.stop();
    else { if (step < 0) setStep(0, false); player.start(); }
  }, "play");
  player.onchange = () => {
    playBtn.textContent = player.playing ? "⏸ pause" : "▶ play";
    if (!player.playing) save();
  };
  const bar = wlEl(
    "div", { class: "wl-bar" },
    wlButton("|◀ first", "the first lifecycle event", () => setStep(0), "first"),
    wlButton("◀ step", "previous lifecycle event", () => setStep(Math.max(0, cur() - 1)), "prev"),
    playBtn,
    wlButton("step ▶", "next lifecycle event", () => setStep(cur() + 1), "next"),
    wlButton("now ▶|", "the latest moment (follows a live proxy)", () => setStep(-1), "last"),
    slider, pos,
  );
  const legend = wlEl("div", { class: "wl-muted" },
    "VM borders: dotted = base, dashed = canary, thick = main / service / replica. ",
    "Status is written in each box (running, ✖ failed, destroyed). Orange arrows: enqueue; blue: on_queue_ready.");
  root.append(wlTitle(model), bar, what, pic, legend);
  wlKeyNav(root, {
    ArrowRight: () => setStep(cur() + 1), ArrowLeft: () => setStep(Math.max(0, cur() - 1)),
    End: () => setStep(-1), Home: () => setStep(0),
  });

  function marks() { return model.get("marks") || { seq: [], label: [] }; }
  function cur() { return step < 0 ? marks().seq.length : step; }
  function save() {
    if (model.get("step") !== step) { model.set("step", step); model.save_changes(); }
  }
  function setStep(s, persist = true) {
    const n = marks().seq.length;
    step = s < 0 || s >= n ? -1 : s;
    restyle();
    if (persist) save();
  }

  function loadPicture() {
    pic.innerHTML = model.get("picture") || "";
    byId.clear();
    restyle();
  }

  const byId = new Map();
  function node(id) {
    if (!byId.has(id)) byId.set(id, pic.querySelector(`[id="${CSS.escape(id)}"]`));
    return byId.get(id);
  }

  function setLines(g, lines) {
    // the last len(lines) <text> lines of a node are the ones that change
    const texts = g.querySelectorAll("text");
    for (let k = 0; k < lines.length; k++) {
      const t = texts[texts.length - lines.length + k];
      if (t) t.textContent = lines[k];
    }
  }

  function setState(g, state, just) {
    for (const c of [...g.classList]) if (c.startsWith("wl-st-") || c === "wl-hidden" || c === "wl-just") g.classList.remove(c);
    g.classList.add(`wl-st-${state}`);
    if (state === "hidden") g.classList.add("wl-hidden");
    if (just) g.classList.add("wl-just");
    g.setAttribute("data-state", state);
  }

  function restyle() {
    const m = marks();
    const n = m.seq.length;
    const at = step < 0 ? Infinity : m.seq[step];
    slider.max = String(n);
    slider.value = String(step < 0 ? n : step);
    pos.textContent = step < 0 ? `now (${n} lifecycle events)` : `${step + 1} of ${n} (#${m.seq[step]})`;
    what.textContent = step < 0
      ? (model.get("live") ? "The latest state of the running proxy." : "The end of the trace.")
      : `#${m.seq[step]} ${m.label[step]}`;
    const ent = model.get("entities") || {};
    for (const [id, born, died, failed] of ent.vms || []) {
      const g = node(id);
      if (!g) continue;
      let state = "running", word = "running";
      if (at < born) { state = "hidden"; word = "not created yet"; }
      else if (died !== null && died <= at) { state = "destroyed"; word = "destroyed"; }
      else if (failed !== null && failed <= at) { state = "failed"; word = "✖ failed"; }
      setState(g, state, at === born || at === died || at === failed);
      setLines(g, [word]);
    }
    for (const [id, born, died] of ent.ctxs || []) {
      const g = node(id);
      if (!g) continue;
      let state = "live";
      if (at < born) state = "hidden";
      else if (died !== null && died <= at) state = "deleted";
      setState(g, state, at === born || at === died);
      setLines(g, [state === "hidden" ? "not created yet" : state]);
    }
    for (const [id, intervals] of ent.streams || []) {
      const g = node(id);
      if (!g) continue;
      let created = 0, just = false;
      const live = [];
      for (const [born, died, ctx] of intervals) {
        if (born > at) break;
        created++;
        if (born === at || died === at) just = true;
        if (died === null || died > at) live.push(ctx);
      }
      setState(g, created ? "live" : "hidden", just);
      const shown = live.slice(0, 6).join(", ") + (live.length > 6 ? " …" : "");
      setLines(g, [`${created} created`, live.length ? `${live.length} live: ${shown}` : "none live"]);
    }
  }

  model.on("change:picture", loadPicture);
  model.on("change:entities", restyle);
  model.on("change:marks", restyle);
  model.on("change:live", restyle);
  model.on("change:step", () => { const s = model.get("step"); if (s !== step) { step = s; restyle(); } });
  loadPicture();
  requestAnimationFrame(() => {
    root.dataset.renderMs = (performance.now() - started).toFixed(1);
    root.dataset.ready = "1";
  });
  return () => player.stop();
}

export default { render };
