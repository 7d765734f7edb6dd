"""What the browser tests measure in the page (JavaScript run by Playwright), kept apart from the
test flow so each check reads on its own.

Each function takes a view's root element (``.wl``) and returns a list of problems (empty: fine).
"""

from __future__ import annotations

#: Parts of a view outside its output area. An element's box is clipped by its ancestors inside
#: the view that clip (overflow not visible); what is left must lie inside the output area. An
#: element cut sideways by a scroll container needs a visible ``.wl-scroll-hint`` in the view; one
#: cut by a non-scrolling container (overflow hidden) is cut for good, unless that container
#: ellipsizes text (a label with its full text in a tooltip).
OUTSIDE = r"""
(root) => {
  const area = root.closest('.jp-OutputArea-output') || root.parentElement;
  const A = area.getBoundingClientRect();
  const hinted = [...root.querySelectorAll('.wl-scroll-hint')].some(
    (h) => !h.hidden && h.getClientRects().length && h.textContent.trim());
  const problems = [];
  const say = (e, what) => {
    const id = e.getAttribute('class') || e.tagName;
    const text = (e.textContent || '').replace(/\s+/g, ' ').trim().slice(0, 40);
    problems.push(`${what}: <${e.tagName.toLowerCase()} class="${id}"> "${text}"`);
  };
  const R = root.getBoundingClientRect();
  if (R.left < A.left - 1 || R.right > A.right + 1)
    problems.push(`the view (${R.left.toFixed(0)}–${R.right.toFixed(0)} px) is wider than its output area ` +
      `(${A.left.toFixed(0)}–${A.right.toFixed(0)} px)`);
  for (const e of root.querySelectorAll('*')) {
    const r = e.getBoundingClientRect();
    if (r.width < 0.5 || r.height < 0.5) continue;
    let [l, rt, t, b] = [r.left, r.right, r.top, r.bottom];
    let scrolled = false, cut = false;
    for (let a = e.parentElement; a && a !== root.parentElement; a = a.parentElement) {
      const cs = getComputedStyle(a);
      const c = a.getBoundingClientRect();
      if (cs.overflowX !== 'visible') {
        if (l < c.left - 0.5 || rt > c.right + 0.5) {
          if (cs.overflowX === 'auto' || cs.overflowX === 'scroll') scrolled = true;
          else if (cs.textOverflow !== 'ellipsis' && !(a instanceof SVGElement && a.tagName !== 'svg')) cut = true;
        }
        l = Math.max(l, c.left); rt = Math.min(rt, c.right);
      }
      if (cs.overflowY !== 'visible') { t = Math.max(t, c.top); b = Math.min(b, c.bottom); }
    }
    if (b - t < 0.5) continue;  // scrolled out of view vertically (a long list): not sideways
    if (scrolled && !hinted) say(e, 'scrolls sideways without a wl-scroll-hint');
    if (cut && !scrolled) say(e, 'cut by a container that does not scroll');
    if (rt - l > 0.5 && (l < A.left - 1 || rt > A.right + 1)) say(e, 'outside the output area');
    if (problems.length > 8) break;
  }
  return problems;
}
"""

#: Text under 11 CSS px: HTML text by its computed size, SVG text by its size times the scale the
#: SVG is drawn at (a diagram shrunk to fit is unreadable however large its font-size attribute).
SMALL_TEXT = r"""
(root) => {
  const out = [];
  for (const e of root.querySelectorAll('*')) {
    if (![...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
    if (!e.getClientRects().length) continue;
    let px = parseFloat(getComputedStyle(e).fontSize);
    if (e instanceof SVGGraphicsElement && e.getScreenCTM) {
      const m = e.getScreenCTM();
      if (m) px *= Math.hypot(m.a, m.b);
    }
    if (px < 10.95) out.push(`${px.toFixed(1)} px: "${e.textContent.trim().slice(0, 30)}"`);
    if (out.length > 5) break;
  }
  return out;
}
"""

#: The character-weighted median font size of a view's visible text (CSS px).
TEXT_SIZE = r"""
(root) => {
  const sizes = [];
  for (const e of root.querySelectorAll('*')) {
    const n = [...e.childNodes].filter((x) => x.nodeType === 3).map((x) => x.textContent.trim()).join('').length;
    if (!n || !e.getClientRects().length) continue;
    let px = parseFloat(getComputedStyle(e).fontSize);
    const m = e instanceof SVGGraphicsElement && e.getScreenCTM ? e.getScreenCTM() : null;
    if (m) px *= Math.hypot(m.a, m.b);
    sizes.push([px, n]);
  }
  sizes.sort((a, b) => a[0] - b[0]);
  const total = sizes.reduce((s, x) => s + x[1], 0);
  let acc = 0;
  for (const [px, n] of sizes) { acc += n; if (acc * 2 >= total) return px; }
  return 0;
}
"""

#: What a view highlights now (its `.wl-current`), as a string that changes when it moves.
CURRENT = r"""
(root) => {
  const c = [...root.querySelectorAll('.wl-current')];
  return c.map((e) => [e.tagName, e.id, e.getAttribute('data-seq'), e.getAttribute('data-index'),
    (e.textContent || '').trim().slice(0, 120)].join('|')).join(' ; ');
}
"""


def picture_ok(picture) -> bool:
    """A static picture shows something: its image loaded with a real size, or a table/text."""
    return picture.evaluate(
        """(p) => {
          const img = p.querySelector('img');
          if (img) return img.complete && img.naturalWidth > 50 && img.naturalHeight > 20
            && img.getBoundingClientRect().height > 20;
          return p.querySelectorAll('td').length > 0 || (p.textContent || '').trim().length > 40;
        }"""
    )


def check_offline_html(browser, html, n_views: int, name: str) -> None:
    """Open an nbconvert HTML page with the network cut: a visible, non-empty static picture for
    each of the ``n_views`` widget outputs, and each says how to get the interactive view."""
    from conftest import ROOT

    page = browser.new_page(viewport={"width": 1366, "height": 768})
    try:
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort())
        page.goto(html.as_uri())
        page.wait_for_timeout(1_500)
        widgets = page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count()
        pictures = page.locator(".wl-static")
        visible = [i for i in range(pictures.count()) if pictures.nth(i).is_visible()]
        artifacts = ROOT / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        page.screenshot(path=str(artifacts / f"{name}-offline-html.png"), full_page=True)
        assert len(visible) >= n_views, f"{name}: {len(visible)} pictures for {n_views} views ({widgets} widgets)"
        for i in visible:
            assert picture_ok(pictures.nth(i)), f"{name}: static picture {i} is empty"
            assert "re-run the cell for the interactive view" in pictures.nth(i).inner_text()
    finally:
        page.close()
