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
