// wasmlab vs real Envoy, side by side: aligned lines per thread, differences marked with words
// and glyphs (= same, ≠ differs, ◀ only wasmlab, only envoy ▶) and the differing part of a
// line highlighted; jump from difference to difference. Columns share the width of the output
// (no sideways scrolling): long lines ellipsize, and the current line is written out in full,
// with the reason, in the panel above the list.

function render({ model, el }) {
  const started = performance.now();
  const root = wlEl("div", { class: "wl wl-compare wl-cmp" });
  el.append(root);
  const TAGS = { same: "=", differs: "≠", "only wasmlab": "◀", "only envoy": "▶" };
  const TAG_WORDS = { same: "same", differs: "differs", "only wasmlab": "only in wasmlab", "only envoy": "only in Envoy" };
  let vis = new Int32Array(0);
  let current = model.get("current");
  const rowH = () => Math.round(wlFontPx(root) * 0.92 * 1.5);

  const onlyBox = wlEl("input", { type: "checkbox", "aria-label": "only differences" });
  onlyBox.checked = model.get("only_differences");
  onlyBox.addEventListener("change", () => { model.set("only_differences", onlyBox.checked); model.save_changes(); });
  const pos = wlEl("span", { class: "wl-pos" });
  const bar = wlEl("div", { class: "wl-bar" },
    wlButton("◀ previous difference", "previous difference", () => jump(-1), "prev"),
    wlButton("next difference ▶", "next difference", () => jump(1), "next"),
    wlEl("label", {}, onlyBox, " only differences"), pos);
  const summary = wlEl("div", { class: "wl-muted" });
  const why = wlEl("div", { class: "wl-cmp-why", "aria-live": "polite" });
  const head = wlEl("div", { class: "wl-line wl-head" });
  const scroll = wlEl("div", { class: "wl-list" });
  const canvas = wlEl("div", { class: "wl-list-canvas" });
  scroll.append(canvas);
  root.append(wlTitle(model), summary, bar, why, head, scroll);

  function cell(cls, text) { return wlEl("span", { class: cls }, text); }

  /** A line with its differing part in <mark> (mark = [start, end) or null). */
  function marked(cls, text, mark) {
    const s = wlEl("span", { class: cls });
    if (mark && mark[1] > mark[0]) s.append(text.slice(0, mark[0]), wlEl("mark", {}, text.slice(mark[0], mark[1])), text.slice(mark[1]));
    else s.append(text);
    return s;
  }

  function titles() {
    const sm = model.get("summary") || {};
    return sm.titles || ["wasmlab", "envoy"];
  }

  function rebuild() {
    const r = model.get("rows") || { tag: [] };
    const sm = model.get("summary") || {};
    const [lt, rt] = titles();
    head.replaceChildren(cell("wl-c-tag", ""), cell("wl-c-thread", "thread"), cell("wl-left", lt), cell("wl-right", rt), cell("wl-c-why", "why"));
    const c = sm.counts || {};
    summary.textContent = sm.identical
      ? `Identical: ${c.same} lines in the same order on every thread.`
      : `${c.same || 0} same · ${c.differs || 0} ≠ differ · ${c["only wasmlab"] || 0} ◀ only in ${lt} · ${c["only envoy"] || 0} ▶ only in ${rt}`;
    const only = model.get("only_differences");
    const out = [];
    for (let i = 0; i < r.tag.length; i++) if (!only || r.tag[i] !== "same") out.push(i);
    vis = Int32Array.from(out);
    painted = "";
    paint();
    explain();
  }

  function diffs() {
    const r = model.get("rows");
    const out = [];
    for (let i = 0; i < r.tag.length; i++) if (r.tag[i] !== "same") out.push(i);
    return out;
  }

  /** The current line in full, both sides, the differing part marked, and why. */
  function explain() {
    const r = model.get("rows");
    if (current < 0 || !r || current >= r.tag.length) { why.replaceChildren(); return; }
    const [lt, rt] = titles();
    const tag = r.tag[current];
    const parts = [wlEl("b", {}, `${TAGS[tag]} ${TAG_WORDS[tag]} [${r.thread[current]}]`), "\n"];
    if (r.left[current]) parts.push(`${lt}: `, marked("", r.left[current], r.lmark && r.lmark[current]), "\n");
    if (r.right[current]) parts.push(`${rt}: `, marked("", r.right[current], r.rmark && r.rmark[current]), "\n");
    if (r.why[current]) parts.push(`why: ${r.why[current]}`);
    why.replaceChildren(...parts);
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
    reveal();
  }

  /** Scroll the current line into view (a few lines below the top) and redraw. */
  function reveal() {
    if (current >= 0) scroll.scrollTop = Math.max(0, (wlLowerBound(vis, current) - 4) * rowH());
    painted = "";
    paint();
    explain();
  }

  let painted = "";
  function paint() {
    const r = model.get("rows");
    const h = rowH();
    canvas.style.height = `${vis.length * h}px`;
    const top = Math.max(0, Math.floor(scroll.scrollTop / h) - 6);
    const count = Math.ceil((scroll.clientHeight || 380) / h) + 12;
    const key = `${top}:${count}:${vis.length}:${current}:${h}`;
    if (key === painted) return;
    painted = key;
    const frag = document.createDocumentFragment();
    for (let p = top; p < Math.min(vis.length, top + count); p++) {
      const i = vis[p];
      const tag = r.tag[i];
      const cls = tag === "same" ? "" : tag === "differs" ? " wl-diff" : tag === "only wasmlab" ? " wl-only-left" : " wl-only-right";
      const row = wlEl("div", { class: `wl-line${cls}${i === current ? " wl-current" : ""}`, "data-tag": tag, "data-index": i });
      row.style.top = `${p * h}px`;
      row.style.height = `${h}px`;
      row.append(wlEl("span", { class: "wl-c-tag", title: TAG_WORDS[tag] }, TAGS[tag] || tag), cell("wl-c-thread", r.thread[i]),
        marked("wl-left", r.left[i], r.lmark && r.lmark[i]), marked("wl-right", r.right[i], r.rmark && r.rmark[i]),
        cell("wl-c-why wl-muted", r.why[i]));
      row.title = `${TAG_WORDS[tag]}\n${r.left[i]}\n${r.right[i]}${r.why[i] ? `\nwhy: ${r.why[i]}` : ""}`;
      row.addEventListener("click", () => {
        current = i; model.set("current", i); model.save_changes(); painted = ""; paint(); explain();
      });
      frag.append(row);
    }
    canvas.replaceChildren(frag);
  }

  scroll.addEventListener("scroll", () => paint());
  model.on("change:rows", rebuild);
  model.on("change:current", () => { current = model.get("current"); painted = ""; paint(); explain(); });
  model.on("change:only_differences", () => { onlyBox.checked = model.get("only_differences"); rebuild(); });
  rebuild();
  wlProjectorToggle(root);
  wlOnResize(root, () => { painted = ""; paint(); });
  requestAnimationFrame(() => {
    reveal();  // the first difference, in view from the start
    root.dataset.renderMs = (performance.now() - started).toFixed(1);
    root.dataset.ready = "1";
  });
}

export default { render };
