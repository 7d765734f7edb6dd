// wasmlab views: helpers shared by every view (concatenated in front of each view's module by
// wasmlab/views/widget.py; plain DOM and SVG, no imports, nothing fetched from the network).

const WL_KIND_COLOURS = {
  stream: "#000000", filter: "#009e73", callback: "#0072b2", hostcall: "#56b4e9", lua: "#cc79a7",
  vm: "#e69f00", context: "#999999", queue: "#e69f00", timer: "#999999", callout: "#000000",
  log: "#999999", trap: "#d55e00", shared_data: "#f0e442", upstream: "#000000",
};
const WL_LANE_COLOURS = {
  downstream: "#000000", host: "#999999", filter: "#009e73", wasm: "#0072b2", lua: "#cc79a7",
  shared_data: "#f0e442", queues: "#e69f00", upstream: "#000000",
};
const WL_SVG_NS = "http://www.w3.org/2000/svg";

/** el("div", {class: "x", onclick: fn}, child, "text", ...) */
function wlEl(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function wlSvg(tag, attrs) {
  const e = document.createElementNS(WL_SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return e;
}

function wlButton(text, title, onclick, act) {
  return wlEl("button", { type: "button", title, "aria-label": title, "data-act": act, onclick }, text);
}

function wlSelect(options, value, onchange, title) {
  const s = wlEl("select", { title, "aria-label": title });
  for (const [v, label] of options) {
    const o = wlEl("option", { value: String(v) }, label);
    if (String(v) === String(value)) o.selected = true;
    s.append(o);
  }
  s.addEventListener("change", () => onchange(s.value));
  return s;
}

function wlTitle(model) {
  const note = wlEl("span", { class: "wl-note" }, model.get("note") || "");
  const t = wlEl("div", { class: "wl-title" }, model.get("title") || "", note);
  model.on("change:note", () => { note.textContent = model.get("note") || ""; });
  return t;
}

/** The first index i with arr[i] >= x (arr sorted ascending). */
function wlLowerBound(arr, x) {
  let lo = 0, hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (arr[mid] < x) lo = mid + 1; else hi = mid;
  }
  return lo;
}

/** Ask the kernel for the full record of event `index`; resolves with it (or null offline). */
function wlDetailsFetcher(model) {
  const cache = new Map();
  const waiting = new Map();
  model.on("msg:custom", (msg) => {
    if (!msg || msg.type !== "details") return;
    cache.set(msg.index, msg.event);
    const w = waiting.get(msg.index);
    if (w) { waiting.delete(msg.index); w.forEach((f) => f(msg.event)); }
  });
  return (index) => new Promise((resolve) => {
    if (cache.has(index)) return resolve(cache.get(index));
    const list = waiting.get(index) || [];
    list.push(resolve);
    waiting.set(index, list);
    try { model.send({ type: "details", index }); } catch (e) { resolve(null); }
    setTimeout(() => { if (waiting.has(index)) { waiting.delete(index); resolve(null); } }, 4000);
  });
}

/** A play/pause loop driven by the browser (the kernel is never busy while it runs). */
function wlPlayer(tick, rate) {
  let timer = null;
  return {
    get playing() { return timer !== null; },
    start() {
      if (timer !== null) return;
      timer = setInterval(() => { if (!tick()) this.stop(); }, Math.max(16, 1000 / rate()));
      this.onchange && this.onchange();
    },
    stop() {
      if (timer === null) return;
      clearInterval(timer);
      timer = null;
      this.onchange && this.onchange();
    },
    restart() { if (timer !== null) { this.stop(); this.start(); } },
  };
}

function wlKeyNav(target, handlers) {
  target.tabIndex = 0;
  target.addEventListener("keydown", (e) => {
    const f = handlers[e.key];
    if (f) { e.preventDefault(); e.stopPropagation(); f(e); }
  });
}

// ---- sizing ---------------------------------------------------------------------------------------
// Sizes come from the root's computed font size (JupyterLab's content font size, ×2 in projector
// mode): views read it with wlFontPx and redraw on the root's "wl-resize" event.

/** The root's font size in CSS px (14 before the root is in the page). */
function wlFontPx(root) {
  const px = root && root.isConnected ? parseFloat(getComputedStyle(root).fontSize) : NaN;
  return Number.isFinite(px) && px > 0 ? px : 14;
}

/** Call `f` when the root's size changes: projector toggle, Presentation Mode, font settings, a
 * narrower output area (sidebar opened, browser zoom). */
function wlOnResize(root, f) {
  root.addEventListener("wl-resize", f);
  if (typeof ResizeObserver === "function") {
    let last = "";
    new ResizeObserver(() => {
      const key = `${root.clientWidth}:${wlFontPx(root)}`;
      if (key !== last) { last = key; f(); }
    }).observe(root);
  }
}

/** The "projector" toggle: a button in the view's title (or first toolbar) that doubles every size
 * of this view (class wl-projector). Each view's render() calls it once, after building its DOM. */
function wlProjectorToggle(root) {
  if (!root || root.dataset.projectorToggle) return null;
  root.dataset.projectorToggle = "1";
  const b = wlEl("button", {
    type: "button", class: "wl-projector-toggle", "data-act": "projector", "aria-pressed": "false",
    title: "projector: double the size of this view (again: back to normal)", "aria-label": "projector size",
  }, "projector ×2");
  b.addEventListener("click", () => {
    const on = root.classList.toggle("wl-projector");
    b.setAttribute("aria-pressed", on ? "true" : "false");
    b.textContent = on ? "normal size" : "projector ×2";
    root.dispatchEvent(new CustomEvent("wl-resize"));
  });
  const host = root.querySelector(".wl-title") || root.querySelector(".wl-bar");
  if (host) host.append(b); else root.prepend(b);
  return b;
}

/** A visible hint before `scroller` while it scrolls sideways ("scroll → for 3 more columns").
 * `describe(scroller)` may name what is hidden; the hint hides itself when nothing is. */
function wlScrollHint(scroller, describe) {
  const hint = wlEl("div", { class: "wl-scroll-hint", hidden: true, "aria-live": "polite" });
  scroller.before(hint);
  function update() {
    const hidden = scroller.scrollWidth - scroller.clientWidth;
    if (hidden <= 1) { hint.hidden = true; return; }
    const atEnd = scroller.scrollLeft + scroller.clientWidth >= scroller.scrollWidth - 1;
    const what = describe ? describe(scroller) : `${Math.round((100 * hidden) / scroller.scrollWidth)} % of it`;
    hint.textContent = atEnd ? `scroll ← for the start (${what})` : `scroll → for more (${what})`;
    hint.hidden = false;
  }
  scroller.addEventListener("scroll", update, { passive: true });
  if (typeof ResizeObserver === "function") new ResizeObserver(update).observe(scroller);
  requestAnimationFrame(update);
  return { hint, update };
}

// ---- one cursor -------------------------------------------------------------------------------------
// Every view has a synced `cursor_seq` (the trace seq its cursor stands on; 0 = before the first
// event). Views linked with jslink share it: the one the user steps sets it, the others follow.

/** Follow `cursor_seq` set from elsewhere: `moveTo(seq)` is called unless `here()` already is it. */
function wlFollowCursor(model, here, moveTo) {
  model.on("change:cursor_seq", () => {
    const seq = model.get("cursor_seq");
    if (seq !== here()) moveTo(seq);
  });
}

/** Tell linked views where this view's cursor now stands. */
function wlSetCursor(model, seq) {
  if (model.get("cursor_seq") === seq) return;
  model.set("cursor_seq", seq);
  model.save_changes();
}

/** The last index i with arr[i] <= x (-1 when none; arr sorted ascending). */
function wlLastAtOrBefore(arr, x) {
  let lo = 0, hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (arr[mid] <= x) lo = mid + 1; else hi = mid;
  }
  return lo - 1;
}

/** An overlay (arrows between boxes) is drawn in px for one width of `stage`. JupyterLab skips
 * laying out cells that are off-screen (content-visibility), so after a window resize or zoom the
 * overlay can be stale until a ResizeObserver runs. A container query hides it the moment the
 * stage has another width than the one it was drawn for. Returns mark(): call it after drawing. */
function wlWidthGuard(root, stage, overlaySelector) {
  const id = `g${Math.random().toString(36).slice(2, 10)}`;
  root.setAttribute("data-wl-guard", id);
  stage.style.containerType = "inline-size";
  const rule = wlEl("style", {});
  root.prepend(rule);
  return () => {
    const w = stage.getBoundingClientRect().width;
    rule.textContent = `@container (max-width: ${(w - 0.5).toFixed(2)}px) or (min-width: ${(w + 0.5).toFixed(2)}px) {
  [data-wl-guard="${id}"] ${overlaySelector} { display: none; } }`;
  };
}
