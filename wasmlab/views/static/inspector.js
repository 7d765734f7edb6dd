// The inspector: a table of requests (click one to see its summary and only its events) and a list
// of every event (only the rows in view are in the page). Its cursor follows linked views
// (cursor_seq) and can be stepped; sizes follow the root's font size (em), narrow outputs fold the
// less important columns (common.css container queries).

function render({ model, el }) {
  const started = performance.now();
  const root = wlEl("div", { class: "wl wl-inspector" });
  el.append(root);
  const fetchDetails = wlDetailsFetcher(model);
  let vis = new Int32Array(0);
  let shownRequests = 200;
  const rowH = () => Math.round(wlFontPx(root) * 0.92 * 1.5);
  const virtual = () => (model.get("clock") || "real") === "virtual";

  const filters = wlEl("div", { class: "wl-bar" });
  const reqWrap = wlEl("div", { class: "wl-table-wrap" });
  const summary = wlEl("div", { class: "wl-details" });
  const count = wlEl("span", { class: "wl-muted wl-pos" });
  const evHead = wlEl("div", { class: "wl-line wl-head" });
  const evScroll = wlEl("div", { class: "wl-list" });
  const evCanvas = wlEl("div", { class: "wl-list-canvas" });
  evScroll.append(evCanvas);
  const details = wlEl("div", { class: "wl-details" });
  const stepBar = wlEl("div", { class: "wl-bar" },
    wlButton("◀ step", "previous event (moves linked views too)", () => step(-1), "prev"),
    wlButton("step ▶", "next event (moves linked views too)", () => step(1), "step"),
    count);
  root.append(wlTitle(model), filters, wlEl("h4", {}, "requests"), reqWrap, summary,
    wlEl("h4", {}, "events"), stepBar, evHead, evScroll, details);
  wlScrollHint(reqWrap, () => "more request columns");

  function cell(cls, text, title) {
    return wlEl("span", { class: cls, title: title || null }, text);
  }
  function drawHead() {
    evHead.replaceChildren(cell("wl-c-seq", "seq"), cell("wl-c-t", virtual() ? "virtual t" : "t (ms)",
      virtual() ? "virtual clock: time moves only with proxy.advance(); shown where it moved" : "milliseconds since the first event"),
    cell("wl-c-thread", "thread"), cell("wl-c-vm", "vm"), cell("wl-c-ctx", "ctx"), cell("wl-c-kind", "kind"),
    cell("wl-grow", "what (label)"));
  }

  function set(k, v) { model.set(k, v); model.save_changes(); }

  let controls = {};
  function buildFilters() {
    const cols = model.get("columns") || {};
    const reqs = model.get("requests") || [];
    const search = wlEl("input", { type: "text", placeholder: "search labels…", "aria-label": "search" });
    search.value = model.get("search");
    search.addEventListener("input", () => set("search", search.value));
    controls = {
      kind: wlSelect([["", "every kind"], ...(cols.kinds || []).map((k) => [k, k])], model.get("kind"),
        (v) => set("kind", v), "kind"),
      thread: wlSelect([["", "every thread"], ...(cols.threads || []).map((k) => [k, k])], model.get("thread"),
        (v) => set("thread", v), "thread"),
      stream: wlSelect([[-1, "every stream"], ...reqs.map((r) => [r.stream, `stream ${r.stream}: ${r.request} → ${r.outcome}`])],
        model.get("stream"), (v) => set("stream", Number(v)), "stream"),
      search,
    };
    filters.replaceChildren(controls.kind, controls.thread, controls.stream, search,
      wlButton("clear filters", "show every event", () => {
        model.set("kind", ""); model.set("thread", ""); model.set("stream", -1); model.set("search", "");
        model.save_changes();
      }, "clear"),
    );
  }

  /** Filters changed (here or in Python): controls show them, tables follow. */
  function filtersChanged() {
    for (const k of ["kind", "thread", "stream", "search"]) {
      const c = controls[k];
      if (c && String(c.value) !== String(model.get(k))) c.value = String(model.get(k));
    }
    rebuild();
    drawRequests();
  }

  function latency(r) {
    if (r.latency_ms === null) return "";
    if (virtual()) return r.latency_ms > 0 ? `${r.latency_ms} ms (virtual)` : `${r.events} events, 0 s virtual`;
    return `${r.latency_ms.toFixed(3)} ms`;
  }

  function drawRequests() {
    const reqs = model.get("requests") || [];
    const cur = model.get("stream");
    const heads = [["stream", ""], ["thread", "wl-opt"], ["request", ""], ["outcome", ""],
      [virtual() ? "latency (virtual clock)" : "latency", "wl-opt"], ["filters run", ""], ["VM calls", "wl-opt"], ["events", "wl-opt"]];
    const head = wlEl("tr", {}, ...heads.map(([h, c]) => wlEl("th", { class: c }, h)));
    const rows = reqs.slice(0, shownRequests).map((r) => {
      const bad = (r.status !== null && r.status >= 500) || r.traps.length || r.outcome === "reset";
      const tr = wlEl("tr", { class: r.stream === cur ? "wl-selected" : "", "data-stream": r.stream },
        wlEl("td", { class: "wl-nowrap" }, String(r.stream)), wlEl("td", { class: "wl-opt wl-nowrap" }, r.thread),
        wlEl("td", {}, r.request),
        wlEl("td", { class: bad ? "wl-flag" : "" }, (bad ? "✖ " : "") + r.outcome),
        wlEl("td", { class: "wl-opt" }, latency(r)),
        wlEl("td", {}, r.filter_names.join(" → ")), wlEl("td", { class: "wl-opt" }, String(r.vm_calls)),
        wlEl("td", { class: "wl-opt" }, String(r.events)));
      tr.addEventListener("click", () => set("stream", r.stream === cur ? -1 : r.stream));
      return tr;
    });
    const table = wlEl("table", { class: "wl-table" }, wlEl("thead", {}, head), wlEl("tbody", {}, ...rows));
    const more = reqs.length > shownRequests
      ? wlButton(`show all ${reqs.length} requests`, "show more", () => { shownRequests = reqs.length; drawRequests(); }, "more")
      : null;
    reqWrap.replaceChildren(table, ...(more ? [more] : []));
    const r = reqs.find((x) => x.stream === cur);
    summary.textContent = r
      ? [`stream ${r.stream} on ${r.thread}: ${r.request} → ${r.outcome}${r.details ? ` (${r.details})` : ""}` +
          (r.latency_ms === null ? "" : `, ${latency(r)}`),
        "filters run:", ...r.filters.map((f) => `  ${f}`),
        ...(r.upstream.length ? [`upstream: ${r.upstream.join(", ")}`] : []),
        ...(r.traps.length ? [`✖ traps: ${r.traps.join("; ")}`] : []),
        `${r.vm_calls} VM/Lua callbacks, ${r.host_calls} host calls, ${r.events} events (#${r.first_seq}–#${r.last_seq})`].join("\n")
      : "Click a request to see its summary and only its events.";
  }

  function rebuild() {
    const cols = model.get("columns") || {};
    const n = (cols.seq || []).length;
    const kinds = cols.kinds || [], threads = cols.threads || [];
    const k = kinds.indexOf(model.get("kind")), th = threads.indexOf(model.get("thread"));
    const st = model.get("stream"), q = (model.get("search") || "").toLowerCase();
    const out = [];
    for (let i = 0; i < n; i++) {
      if (k >= 0 && cols.kind[i] !== k) continue;
      if (th >= 0 && cols.th[i] !== th) continue;
      if (st >= 0 && cols.st[i] !== st) continue;
      if (q && !(`${cols.label[i]} ${cols.note[i]} ${cols.name[i]}`.toLowerCase().includes(q))) continue;
      out.push(i);
    }
    vis = Int32Array.from(out);
    evScroll.scrollTop = 0;
    drawHead();
    painted = "";
    paint();
    showPosition();
  }

  /** The event index the cursor stands on: the last event at or before cursor_seq (-1: none). */
  function cursorIndex() {
    const cols = model.get("columns") || {};
    return wlLastAtOrBefore(cols.seq || [], model.get("cursor_seq"));
  }

  function showPosition() {
    const n = ((model.get("columns") || {}).seq || []).length;
    const i = cursorIndex();
    const p = i < 0 ? -1 : wlLowerBound(vis, i);
    const shown = p >= 0 && p < vis.length && vis[p] === i;
    count.textContent = `${vis.length} of ${n} events` +
      (i < 0 ? " · cursor before the first event" : ` · cursor at #${model.get("columns").seq[i]}${shown ? "" : " (filtered out)"}`);
  }

  function step(dir) {
    if (!vis.length) return;
    const i = cursorIndex();
    let p = wlLowerBound(vis, i < 0 ? -1 : i);
    if (dir > 0) p = i < 0 ? 0 : (p < vis.length && vis[p] === i ? p + 1 : p);
    else p = p - 1;
    p = Math.max(0, Math.min(vis.length - 1, p));
    moveCursor(vis[p]);
  }

  function moveCursor(i) {
    wlSetCursor(model, model.get("columns").seq[i]);
    reveal(i);
  }

  /** Scroll the list so event `i` is in view, and repaint the highlight. */
  function reveal(i) {
    const p = wlLowerBound(vis, i);
    if (p < vis.length && vis[p] === i) {
      const h = rowH(), top = p * h;
      if (top < evScroll.scrollTop || top + h > evScroll.scrollTop + evScroll.clientHeight) {
        evScroll.scrollTop = Math.max(0, top - 3 * h);
      }
    }
    painted = "";
    paint();
    showPosition();
  }

  function timeText(cols, i, prev) {
    if (!virtual()) return (cols.t[i] / 1000).toFixed(3);
    // virtual clock: time stands still between advance() calls; say where it moved
    if (prev >= 0 && cols.t[i] === cols.t[prev]) return "";
    return `${(cols.t[i] / 1e6).toFixed(3)} s`;
  }

  let painted = "";
  function paint() {
    const cols = model.get("columns") || {};
    const h = rowH();
    evCanvas.style.height = `${vis.length * h}px`;
    const top = Math.max(0, Math.floor(evScroll.scrollTop / h) - 6);
    const count = Math.ceil((evScroll.clientHeight || 320) / h) + 12;
    const sel = model.get("selected"), cur = cursorIndex();
    const key = `${top}:${count}:${vis.length}:${sel}:${cur}:${h}`;
    if (key === painted) return;
    painted = key;
    const frag = document.createDocumentFragment();
    for (let p = top; p < Math.min(vis.length, top + count); p++) {
      const i = vis[p];
      const kind = cols.kinds[cols.kind[i]];
      const cls = `wl-line${i === sel ? " wl-selected" : ""}${i === cur ? " wl-current" : ""}`;
      const row = wlEl("div", { class: cls, "data-index": i, "data-seq": cols.seq[i] });
      row.style.top = `${p * h}px`;
      row.style.height = `${h}px`;
      const kc = cell("wl-c-kind", kind);
      kc.style.borderLeftColor = WL_KIND_COLOURS[kind] || "#999";
      const label = "  ".repeat(Math.min(cols.depth[i], 6)) + cols.label[i];
      row.title = `#${cols.seq[i]} ${cols.threads[cols.th[i]]} ${cols.vm[i]} ${label.trim()}${cols.note[i] ? `  [${cols.note[i]}]` : ""}`;
      row.append(cell("wl-c-seq", `#${cols.seq[i]}`), cell("wl-c-t", timeText(cols, i, p > 0 ? vis[p - 1] : -1)), cell("wl-c-thread", cols.threads[cols.th[i]]),
        cell("wl-c-vm", cols.vm[i]), cell("wl-c-ctx", cols.ctx[i] >= 0 ? String(cols.ctx[i]) : ""), kc,
        cell(`wl-grow${cols.flag[i] ? " wl-flag" : ""}`, label));
      if (cols.note[i]) row.append(cell("wl-c-note", cols.note[i]));
      row.addEventListener("click", () => select(i));
      frag.append(row);
    }
    evCanvas.replaceChildren(frag);
  }

  function select(i) {
    set("selected", i);
    moveCursor(i);
    const cols = model.get("columns");
    const head = `#${cols.seq[i]} ${cols.threads[cols.th[i]]} ${cols.kinds[cols.kind[i]]} ${cols.label[i]}`;
    details.textContent = `${head}\n(asking the kernel for the full record…)`;
    fetchDetails(i).then((ev) => {
      if (model.get("selected") === i) details.textContent = ev ? `${head}\n${JSON.stringify(ev, null, 1)}` : head;
    });
  }

  evScroll.addEventListener("scroll", () => paint());
  model.on("change:columns", () => { buildFilters(); rebuild(); });
  model.on("change:requests", () => { buildFilters(); drawRequests(); });
  for (const k of ["kind", "thread", "stream", "search"]) model.on(`change:${k}`, filtersChanged);
  // the cursor is where cursor_seq says (set here, from Python, or by a linked view)
  model.on("change:cursor_seq", () => reveal(cursorIndex()));
  buildFilters();
  drawRequests();
  rebuild();
  wlProjectorToggle(root);
  wlOnResize(root, () => { painted = ""; paint(); });
  requestAnimationFrame(() => {
    painted = "";
    paint();
    root.dataset.renderMs = (performance.now() - started).toFixed(1);
    root.dataset.ready = "1";
  });
}

export default { render };
