"""What the browser tests measure in the page (JavaScript run by Playwright), kept apart from the
test flow so each check reads on its own.

Each function takes a view's root element (``.wl``) and returns a list of problems (empty: fine).
"""

from __future__ import annotations

from conftest import ROOT

ARTIFACTS = ROOT / "test-artifacts"

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
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    try:
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort())
        page.goto(html.as_uri())
        page.wait_for_timeout(1_500)
        widgets = page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count()
        pictures = page.locator(".wl-static")
        visible = [i for i in range(pictures.count()) if pictures.nth(i).is_visible()]
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{name}-offline-html.png"), full_page=True)
        assert len(visible) >= n_views, f"{name}: {len(visible)} pictures for {n_views} views ({widgets} widgets)"
        for i in visible:
            assert picture_ok(pictures.nth(i)), f"{name}: static picture {i} is empty"
            assert "re-run the cell for the interactive view" in pictures.nth(i).inner_text()
    finally:
        page.close()


# ---- checks of the views in a page -------------------------------------------------------------------
def shot(locator, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        locator.screenshot(path=str(ARTIFACTS / name), timeout=10_000)
    except Exception as e:  # a screenshot is for humans: never the reason a test fails
        print(f"screenshot {name} failed: {e}")


def check_fit(page, roots, size: str, name: str) -> list[str]:
    """Every view at this size: nothing outside its output area (unless it scrolls and says so);
    at 100 % zoom no text under 11 CSS px."""
    problems = []
    for i in range(roots.count()):
        root = roots.nth(i)
        root.scroll_into_view_if_needed()
        kind = root.get_attribute("class")
        for p in root.evaluate(OUTSIDE):
            problems.append(f"{name} {size} view {i} ({kind}): {p}")
        if size == "1366":
            for p in root.evaluate(SMALL_TEXT):
                problems.append(f"{name} {size} view {i} ({kind}): text under 11 px: {p}")
        shot(root, f"{name}-{size}-view{i}.png")
    return problems


def check_steps(roots, name: str) -> list[str]:
    """Each view's step button moves its highlighted element (.wl-current)."""
    problems = []
    for i in range(roots.count()):
        root = roots.nth(i)
        kind = root.get_attribute("class")
        step = root.locator('button[data-act="step"]')
        if step.count() == 0:
            problems.append(f"{name} view {i} ({kind}): no step button (button[data-act=step])")
            continue
        before = root.evaluate(CURRENT)
        after = before
        for _ in range(3):  # a step that lands on an event the view does not draw may not move it
            step.first.click()
            after = root.evaluate(CURRENT)
            if after != before:
                break
        if after == before or not after:
            problems.append(f"{name} view {i} ({kind}): stepping did not move .wl-current ({after!r})")
    return problems


def check_static_hidden(roots, name: str) -> list[str]:
    """A live view hides the static picture it leaves next to it."""
    out = []
    for i in range(roots.count()):
        state = roots.nth(i).evaluate(
            """(root) => {
              const child = root.closest('.jp-OutputArea-child');
              let next = child && child.nextElementSibling;
              if (!next || !next.querySelector('.wl-static')) return 'missing';
              return getComputedStyle(next).display;
            }"""
        )
        if state != "none":
            out.append(f"{name} view {i}: static picture next to the live view is {state!r}, not hidden")
    return out


def mermaid_too_small(page, size: str, name: str) -> list[str]:
    """A Mermaid diagram drawn smaller than its natural size (JupyterLab fits it to the output):
    its 16 px text must stay at 11 px or more."""
    out = []
    for i, scale in enumerate(
        page.eval_on_selector_all(
            ".jp-RenderedMermaid img", "imgs => imgs.map(i => i.naturalWidth ? i.clientWidth / i.naturalWidth : 1)"
        )
    ):
        if 16 * scale < 10.95:
            out.append(f"{name} {size} Mermaid diagram {i}: drawn at {scale:.2f}× — its text is {16 * scale:.1f} px")
    return out


def projector_doubles(root, kind: str) -> list[str]:
    """The view's projector toggle doubles its size, and toggles back."""
    button = root.locator('button[data-act="projector"]')
    if button.count() != 1:
        return [f"{kind}: {button.count()} projector toggles (button[data-act=projector]), not 1"]
    size = "r => parseFloat(getComputedStyle(r).fontSize)"
    px0 = root.evaluate(size)
    button.click()
    px1 = root.evaluate(size)
    button.click()
    px2 = root.evaluate(size)
    if abs(px1 - 2 * px0) > 0.01 or px2 != px0:
        return [f"{kind}: projector toggle went {px0} → {px1} → {px2} px, not ×2 and back"]
    return []


def steps_move_others(roots, lead: int, others: list[int], kinds: list[str]) -> list[str]:
    """Step view ``lead`` until every view in ``others`` moved its highlight (or 40 steps)."""
    step = roots.nth(lead).locator('button[data-act="step"]')
    if step.count() == 0:
        return [f"{kinds[lead]}: no step button (button[data-act=step])"]
    before = {i: roots.nth(i).evaluate(CURRENT) for i in others}
    moved: set[int] = set()
    for _ in range(40):
        step.first.click()
        moved |= {i for i in others if roots.nth(i).evaluate(CURRENT) != before[i]}
        if moved == set(others):
            break
    return [f"stepping {kinds[lead]} 40 times never moved {kinds[i]}" for i in sorted(set(others) - moved)]
