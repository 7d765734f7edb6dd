// wasmlab vs real Envoy, side by side: aligned lines per thread, differences marked with words
// and glyphs (= same, ≠ differs, ◀ only wasmlab, only envoy ▶), jump from difference to difference.

function render({ model, el }) {
  const started = performance.now();
  const ROW_H = 19;
  const root = wlEl("div", { class: "wl wl-compare wl-cmp" });
  el.append(root);
  const TAGS = { same: "=", differs: "≠", "only wasmlab": "◀ only wasmlab", "only envoy": "only envoy ▶" };
  let vis = new Int32Array(0);
  let current = model.get("current");

  const onlyBox = wlEl("input", { type: "checkbox", "aria-label": "only differences" });
  onlyBox.checked = model.get("only_differences");
  onlyBox.addEventListener("change", () => { model.set("only_differences", onlyBox.checked); model.save_changes(); });
  const pos = wlEl("span", { class: "wl-pos" });
  const bar = wlEl("div", { class: "wl-bar" },
    wlButton("◀ previous difference", "previous difference", () => jump(-1), "prev"),
    wlButton("next difference ▶", "next difference", () => jump(1), "next"),
    wlEl("label", {}, onlyBox, " only differences"), pos);
  const summary = wlEl("div", { class: "wl-muted" });
  const head = wlEl("div", { class: "wl-row" });
  head.style.position = "relative";
  head.style.fontWeight = "bold";
  const scroll = wlEl("div", { class: "wl-tl-scroll" });
  const canvas = wlEl("div", { class: "wl-tl-canvas" });
  scroll.append(canvas);
  root.append(wlTitle(model), summary, bar, head, scroll);

  const W = { tag: 110, thread: 72, side: 470 };
  function cell(w, text, cls) {
    const s = wlEl("span", { class: cls || "" }, text);
    s.style.display = "inline-block"; s.style.width = `${w}px`; s.style.overflow = "hidden";
    s.style.textOverflow = "ellipsis"; s.style.flex = "none";
    return s;
  }

  function rebuild() {
    const r = model.get("rows") || { tag: [] };
    const sm = model.get("summary") || {};
    const [lt, rt] = sm.titles || ["wasmlab", "envoy"];
    head.replaceChildren(cell(W.tag, ""), cell(W.thread, "thread"), cell(W.side, lt), cell(W.side, rt), cell(220, "why"));
    const c = sm.counts || {};
    summary.textContent = sm.identical
      ? `Identical: ${c.same} lines in the same order on every thread.`
      : `${c.same || 0} same · ${c.differs || 0} ≠ differ · ${c["only wasmlab"] || 0} only in ${lt} · ${c["only envoy"] || 0} only in ${rt}`;
    const only = model.get("only_differences");
    const out = [];
    for (let i = 0; i < r.tag.length; i++) if (!only || r.tag[i] !== "same") out.push(i);
    vis = Int32Array.from(out);
    canvas.style.height = `${vis.length * ROW_H}px`;
    canvas.style.width = `${W.tag + W.thread + 2 * W.side + 240}px`;
    painted = "";
    paint();
  }

  function diffs() {
    const r = model.get("rows");
    const out = [];
    for (let i = 0; i < r.tag.length; i++) if (r.tag[i] !== "same") out.push(i);
    return out;
  }

  function jump(dir) {
    const d = diffs();
    if (!d.length) { pos.textContent = "no differences"; return; }
    let k = dir > 0 ? d.findIndex((i) => i > current) : d.length - 1 - [...d].reverse().findIndex((i) => i < current);
    if (k < 0 || k >= d.length) k = dir > 0 ? 0 : d.length - 1;
    current = d[k];
    model.set("current", current);
    model.save_changes();
    pos.textContent = `difference ${k + 1} of ${d.length}`;
    const p = wlLowerBound(vis, current);
    scroll.scrollTop = Math.max(0, (p - 4) * ROW_H);
    painted = "";
    paint();
  }

  let painted = "";
  function paint() {
    const r = model.get("rows");
    const top = Math.max(0, Math.floor(scroll.scrollTop / ROW_H) - 6);
    const count = Math.ceil((scroll.clientHeight || 380) / ROW_H) + 12;
    const key = `${top}:${count}:${vis.length}:${current}`;
    if (key === painted) return;
    painted = key;
    const frag = document.createDocumentFragment();
    for (let p = top; p < Math.min(vis.length, top + count); p++) {
      const i = vis[p];
      const tag = r.tag[i];
      const cls = tag === "same" ? "" : tag === "differs" ? " wl-diff" : tag === "only wasmlab" ? " wl-only-left" : " wl-only-right";
      const row = wlEl("div", { class: `wl-row${cls}${i === current ? " wl-current" : ""}`, "data-tag": tag, "data-index": i });
      row.style.top = `${p * ROW_H}px`;
      if (tag !== "same") row.style.background = tag === "differs" ? "#f7d7c2" : "#d6e8f5";
      row.append(cell(W.tag, TAGS[tag] || tag, "wl-tag"), cell(W.thread, r.thread[i]),
        cell(W.side, r.left[i], "wl-left"), cell(W.side, r.right[i], "wl-right"), cell(220, r.why[i], "wl-muted"));
      row.title = `${r.left[i]}\n${r.right[i]}`;
      frag.append(row);
    }
    canvas.replaceChildren(frag);
  }

  scroll.addEventListener("scroll", () => paint());
  model.on("change:rows", rebuild);
  model.on("change:only_differences", () => { onlyBox.checked = model.get("only_differences"); rebuild(); });
  rebuild();
  requestAnimationFrame(() => {
    root.dataset.renderMs = (performance.now() - started).toFixed(1);
    root.dataset.ready = "1";
  });
}

export default { render };
