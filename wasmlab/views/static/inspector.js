// The inspector: a filterable table of every event (only the rows in view are in the DOM) and a
// table of requests; clicking a request shows its summary and filters the events to it.

function render({ model, el }) {
  const started = performance.now();
  const ROW_H = 19;
  const root = wlEl("div", { class: "wl wl-inspector" });
  el.append(root);
  const fetchDetails = wlDetailsFetcher(model);
  let vis = new Int32Array(0);
  let shownRequests = 200;

  const filters = wlEl("div", { class: "wl-bar" });
  const reqWrap = wlEl("div", { class: "wl-table-wrap" });
  reqWrap.style.maxHeight = "240px";
  const summary = wlEl("div", { class: "wl-details" });
  const count = wlEl("div", { class: "wl-muted" });
  const evHead = wlEl("div", { class: "wl-row wl-ihead" });
  const evScroll = wlEl("div", { class: "wl-tl-scroll" });
  evScroll.style.height = "320px";
  const evCanvas = wlEl("div", { class: "wl-tl-canvas" });
  evScroll.append(evCanvas);
  const details = wlEl("div", { class: "wl-details" });
  root.append(wlTitle(model), filters, wlEl("h4", {}, "requests"), reqWrap, summary,
    wlEl("h4", {}, "events"), count, evHead, evScroll, details);

  const C = { seq: 64, t: 82, thread: 72, vm: 120, ctx: 36, kind: 80 };
  function cell(w, text, cls) {
    const s = wlEl("span", { class: cls || "" }, text);
    if (w) { s.style.display = "inline-block"; s.style.width = `${w}px`; s.style.overflow = "hidden"; s.style.flex = "none"; }
    return s;
  }
  evHead.style.position = "relative";
  evHead.style.fontWeight = "bold";
  evHead.append(cell(C.seq, "seq"), cell(C.t, "t (ms)"), cell(C.thread, "thread"), cell(C.vm, "vm"),
    cell(C.ctx, "ctx"), cell(C.kind, "kind"), cell(0, "what (label)  [detail]"));

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

  function drawRequests() {
    const reqs = model.get("requests") || [];
    const cur = model.get("stream");
    const head = wlEl("tr", {}, ...["stream", "thread", "request", "outcome", "latency ms", "filters run", "VM calls", "events"]
      .map((h) => wlEl("th", {}, h)));
    const rows = reqs.slice(0, shownRequests).map((r) => {
      const bad = (r.status !== null && r.status >= 500) || r.traps.length || r.outcome === "reset";
      const tr = wlEl("tr", { class: r.stream === cur ? "wl-selected" : "", "data-stream": r.stream },
        wlEl("td", {}, String(r.stream)), wlEl("td", {}, r.thread), wlEl("td", {}, r.request),
        wlEl("td", { class: bad ? "wl-flag" : "" }, (bad ? "✖ " : "") + r.outcome),
        wlEl("td", {}, r.latency_ms === null ? "" : r.latency_ms.toFixed(3)),
        wlEl("td", {}, r.filter_names.join(" → ")), wlEl("td", {}, String(r.vm_calls)), wlEl("td", {}, String(r.events)));
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
          (r.latency_ms === null ? "" : `, ${r.latency_ms} ms`),
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
    count.textContent = `${vis.length} of ${n} events`;
    evCanvas.style.height = `${vis.length * ROW_H}px`;
    evScroll.scrollTop = 0;
    painted = "";
    paint();
  }

  let painted = "";
  function paint() {
    const cols = model.get("columns") || {};
    const top = Math.max(0, Math.floor(evScroll.scrollTop / ROW_H) - 6);
    const count = Math.ceil((evScroll.clientHeight || 320) / ROW_H) + 12;
    const sel = model.get("selected");
    const key = `${top}:${count}:${vis.length}:${sel}`;
    if (key === painted) return;
    painted = key;
    const frag = document.createDocumentFragment();
    for (let p = top; p < Math.min(vis.length, top + count); p++) {
      const i = vis[p];
      const kind = cols.kinds[cols.kind[i]];
      const row = wlEl("div", { class: `wl-row${i === sel ? " wl-selected wl-current" : ""}`, "data-index": i });
      row.style.top = `${p * ROW_H}px`;
      const kc = cell(C.kind, kind, "wl-kind");
      kc.style.borderLeftColor = WL_KIND_COLOURS[kind] || "#999";
      row.append(cell(C.seq, `#${cols.seq[i]}`), cell(C.t, (cols.t[i] / 1000).toFixed(3)), cell(C.thread, cols.threads[cols.th[i]]),
        cell(C.vm, cols.vm[i]), cell(C.ctx, cols.ctx[i] >= 0 ? String(cols.ctx[i]) : ""), kc,
        cell(0, "  ".repeat(Math.min(cols.depth[i], 6)) + cols.label[i], `wl-label${cols.flag[i] ? " wl-flag" : ""}`));
      if (cols.note[i]) row.append(cell(0, cols.note[i], "wl-rnote"));
      row.addEventListener("click", () => select(i));
      frag.append(row);
    }
    evCanvas.replaceChildren(frag);
  }

  function select(i) {
    set("selected", i);
    painted = "";
    paint();
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
  buildFilters();
  drawRequests();
  rebuild();
  requestAnimationFrame(() => {
    paint();
    root.dataset.renderMs = (performance.now() - started).toFixed(1);
    root.dataset.ready = "1";
  });
}

export default { render };
