"""The built website, opened in headless Chromium with no network (marker ``browser``).

Needs ``_build/html`` (``make test`` builds the book first; ``make book`` builds it alone) and
Debian's Chromium at ``/usr/bin/chromium`` (no ``playwright install``). Missing either is a failure,
not a skip: this test is the only check that the site a reader sees actually works.

The site is served from a local HTTP server on a free port; every request to any other host is
aborted and recorded. For every page in ``_toc.yml``:

* the page loads (HTTP 200), its ``<title>`` contains the page's H1, and it raises no JavaScript error;
* it needs nothing from the network: no request leaves localhost;
* MathJax (served locally) has finished typesetting, every equation (``span.math``, ``div.math``) holds an
  ``mjx-container``, and there is no MathJax error node;
* every ``<img>`` has loaded (``naturalWidth > 0``);
* chapters have a Colab launch link to ``github/<owner>/<repo>/blob/<branch>/notebooks/<name>.ipynb``
  (repository and branch from ``_config.yml``); no page links Colab to anything but a notebook;
* chapters whose source calls ``to_jshtml`` show the animation with its controls (a range slider and
  the play/step buttons), and stepping through it with the buttons moves the slider and changes the frame;
* nothing overflows the main content column sideways (an element wider than the column must sit in a
  box that scrolls or clips, e.g. a long formula or a wide table), and the page itself does not scroll
  sideways (at a 1280 × 900 window);

and, with ``S4LITE_SCREENSHOTS=1``, a full-page screenshot lands in
``test-artifacts/screenshots/<page>.png`` (half the time of the test, so not by default). The glossary's
Traditional-Chinese terms are drawn with a font that has them (no missing-glyph boxes; a screenshot of the
table lands in ``test-artifacts/screenshots/glossary_zh.png``). Also: the site root
redirects to the introduction, and the references page lists every entry of ``book/references.bib``.
"""

from __future__ import annotations

import functools
import html
import http.server
import os
import re
import threading
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlparse

import nbformat
import pytest
import yaml
from book_sources import toc_files

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
# Another build can be checked with S4LITE_SITE=<its html folder> and S4LITE_TOC=<its _toc.yml>.
SITE = Path(os.environ.get("S4LITE_SITE", ROOT / "_build" / "html"))
TOC = Path(os.environ.get("S4LITE_TOC", ROOT / "_toc.yml"))
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
TIMEOUT_MS = 60_000

# Known, harmless, and not ours to fix; anything else fails the test.
# * Matplotlib's to_jshtml() template links Font Awesome 4.4 from a CDN for its button icons. Offline the
#   theme's own Font Awesome draws the same icons, which check_animations() verifies.
ALLOWED_BLOCKED = {"https://maxcdn.bootstrapcdn.com/font-awesome/4.4.0/css/font-awesome.min.css"}
# * Jupyter Book 1.0.4 + sphinx-thebe 0.3.1 put the identical thebe configuration <script> into every page
#   twice; the second copy's `const` redeclaration is a SyntaxError that leaves the first copy's values as
#   they were. (Thebe is not used by this book; its launch button is off.)
ALLOWED_JS_ERRORS = [re.compile(r"^Identifier 'THEBE_JS_URL' has already been declared$")]


# ----------------------------------------------------------------------------------------------
# what the site should contain, read from the sources


def toc_pages() -> list[str]:
    """Every ``root``/``file`` of ``_toc.yml`` (e.g. ``book/intro``, ``notebooks/01_ssm``), in order."""
    return toc_files(TOC)


def repository() -> tuple[str, str]:
    """``(owner/name, branch)`` of the GitHub repository named in ``_config.yml``."""
    repo = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))["repository"]
    path = urlparse(repo["url"]).path.strip("/")
    return re.sub(r"\.git$", "", path), repo["branch"]


def _plain(markdown: str) -> str:
    """Heading text as a browser shows it: no Markdown emphasis/code/math markers, links as their text."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", markdown)
    text = re.sub(r"[`*$]", "", text)
    text = re.sub(r"(?<!\w)_|_(?!\w)", "", text)
    return " ".join(text.split())


def _first_h1(markdown: str) -> str | None:
    fence = None
    for line in markdown.splitlines():
        m = re.match(r"^\s{0,3}(```|~~~)", line)
        if m:
            fence = None if fence == m.group(1) else (fence or m.group(1))
            continue
        if fence is None:
            h = re.match(r"^\s{0,3}#[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$", line)
            if h:
                return h.group(1)
    return None


@functools.cache
def source_info(page: str) -> dict[str, Any]:
    """What the page's source says the built page must show: its title, and (chapters) animations."""
    md, ipynb = ROOT / f"{page}.md", ROOT / f"{page}.ipynb"
    if ipynb.exists():
        nb = nbformat.read(str(ipynb), as_version=4)
        markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        code = [c.source for c in nb.cells if c.cell_type == "code" and "skip-execution" not in c.metadata.get("tags", [])]
        return {"title": _first_h1(markdown), "notebook": True, "animation": any("to_jshtml" in s for s in code)}
    if md.exists():
        return {"title": _first_h1(md.read_text(encoding="utf-8")), "notebook": False, "animation": False}
    return {"title": None, "notebook": page.startswith("notebooks/"), "animation": False}


PAGES = toc_pages()


# ----------------------------------------------------------------------------------------------
# fixtures: the built site on a local server, and Chromium


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="session")
def site_url() -> Iterator[str]:
    """Serve ``_build/html`` on a free localhost port (fails if the site was not built)."""
    if not (SITE / "index.html").is_file():
        pytest.fail(
            f"the built site is missing ({SITE / 'index.html'} does not exist): build it with `make book` "
            "(`make test` builds it before running the tests)",
            pytrace=False,
        )
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="site-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium driven by Playwright (fails if Chromium is not installed)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's Chromium (apt-get install chromium)", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class Visit:
    """One page in a fresh browser context, offline, with its JS errors and blocked requests recorded."""

    def __init__(self, browser: Any, site_url: str) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.set_default_timeout(TIMEOUT_MS)
        self.blocked: list[str] = []
        self.js_errors: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("pageerror", self._page_error)
        self.site_url = site_url

    def _route(self, route: Any) -> None:
        url = route.request.url
        if urlparse(url).hostname in LOCAL_HOSTS:
            route.continue_()
            return
        if url not in ALLOWED_BLOCKED:
            self.blocked.append(url)
        route.abort()

    def _page_error(self, err: Any) -> None:
        message = getattr(err, "message", None) or str(err)
        if not any(p.search(message) for p in ALLOWED_JS_ERRORS):
            self.js_errors.append(message)

    def open(self, path: str) -> Any:
        return self.page.goto(f"{self.site_url}/{path}", wait_until="load")

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def visit(browser: Any, site_url: str) -> Iterator[Visit]:
    v = Visit(browser, site_url)
    try:
        yield v
    finally:
        v.close()


# ----------------------------------------------------------------------------------------------
# in-page checks (each returns a list of problems, so one test reports everything wrong with a page)

_WAIT_IMAGES = """
async () => {
  const imgs = Array.from(document.images);
  for (const img of imgs) { img.loading = "eager"; }
  for (const img of imgs) { img.scrollIntoView({block: "center"}); }
  window.scrollTo(0, 0);
  const done = (img) => img.complete ? Promise.resolve() :
      new Promise((resolve) => { img.addEventListener("load", resolve); img.addEventListener("error", resolve); });
  await Promise.race([Promise.all(imgs.map(done)), new Promise((r) => setTimeout(r, 20000))]);
  return imgs.filter((img) => !(img.complete && img.naturalWidth > 0))
             .map((img) => (img.currentSrc || img.src || img.id || "<img>").slice(0, 120));
}
"""

_MATH = """
() => {
  const eqs = Array.from(document.querySelectorAll("span.math, div.math"));
  return {
    equations: eqs.length,
    unrendered: eqs.filter((e) => !e.querySelector("mjx-container")).map((e) => e.textContent.trim().slice(0, 80)),
    containers: document.querySelectorAll("mjx-container").length,
    errors: Array.from(document.querySelectorAll("mjx-merror, .MathJax_Error")).map((e) => e.textContent.slice(0, 80)),
  };
}
"""


# A button's icon is drawn either by Font Awesome's JS (an <svg>) or its CSS (an <i> with a ::before glyph).
_BLANK_BUTTONS = """
(buttons) => buttons.filter((b) => {
  const svg = b.querySelector("svg");
  if (svg) return svg.getBoundingClientRect().width === 0;
  const i = b.querySelector("i");
  if (!i) return true;
  const glyph = getComputedStyle(i, "::before").content;
  return !glyph || glyph === "none" || glyph === "normal" || i.getBoundingClientRect().width === 0;
}).map((b) => b.title)
"""


def check_math(page: Any) -> list[str]:
    if page.locator("span.math, div.math").count() == 0:
        return []
    page.wait_for_function(
        "() => window.MathJax && window.MathJax.startup && window.MathJax.startup.promise", timeout=TIMEOUT_MS
    )
    page.evaluate("() => window.MathJax.startup.promise.then(() => true)")
    info = page.evaluate(_MATH)
    problems = []
    if info["containers"] == 0:
        problems.append(f"{info['equations']} equations but MathJax rendered none (no mjx-container)")
    if info["unrendered"]:
        problems.append(f"{len(info['unrendered'])} equations not rendered, e.g. {info['unrendered'][:3]}")
    if info["errors"]:
        problems.append(f"MathJax errors: {info['errors'][:5]}")
    return problems


def check_colab(page: Any, doc: str, is_notebook: bool) -> list[str]:
    links = page.locator('a[href*="colab.research.google.com"]')
    hrefs = [links.nth(i).get_attribute("href") or "" for i in range(links.count())]
    problems = [f"a Colab link that does not open a notebook: {h}" for h in hrefs if not h.endswith(".ipynb")]
    if is_notebook:
        repo, branch = repository()
        want = f"github/{repo}/blob/{branch}/{doc}.ipynb"
        if not hrefs:
            problems.append("no Colab launch link (the rocket button's Colab entry)")
        elif not any(h.endswith(want) for h in hrefs):
            problems.append(f"the Colab link {hrefs} does not end with {want!r}")
    return problems


# Clicks an animation's "Next frame" button n times; after each click, the slider's value and the image.
_NEXT_FRAMES = """
(anim, n) => {
  const slider = anim.querySelector('input[type="range"].anim-slider');
  const img = anim.querySelector("img");
  const next = anim.querySelector('.anim-buttons button[title="Next frame"]');
  const out = [];
  for (let k = 0; k < n; k++) { next.click(); out.push([parseInt(slider.value), img.getAttribute("src")]); }
  return out;
}
"""


def check_animations(page: Any) -> list[str]:
    anims = page.locator("div.animation")
    if anims.count() == 0:
        return ["the chapter calls to_jshtml but the page has no animation (div.animation)"]
    problems = []
    for i in range(anims.count()):
        anim = anims.nth(i)
        slider = anim.locator('input[type="range"].anim-slider')
        if slider.count() != 1:
            problems.append(f"animation {i}: no range slider (.anim-slider)")
            continue
        buttons = {anim.locator(f'.anim-buttons button[title="{t}"]').count() for t in ("Play", "Next frame", "First frame")}
        if buttons != {1}:
            problems.append(f"animation {i}: the Play / Next frame / First frame buttons are missing")
            continue
        img = anim.locator("img").first
        anim.scroll_into_view_if_needed()
        anim.locator('.anim-buttons button[title="First frame"]').click()
        last = int(slider.get_attribute("max") or 0)
        frames = {img.get_attribute("src")}
        steps = []  # (slider value, image) after each 'Next frame' click
        if last >= 1:  # the first click as a user makes it (visible, enabled, not covered) ...
            anim.locator('.anim-buttons button[title="Next frame"]').click()
            steps.append((slider.evaluate("(s) => parseInt(s.value)"), img.get_attribute("src")))
        if last >= 2:  # ... the others in the page, in one round trip, without drawing every frame
            steps += anim.evaluate(_NEXT_FRAMES, last - 1)
        for k, (value, src) in enumerate(steps, start=1):
            if value != k:
                problems.append(f"animation {i}: after {k} 'Next frame' clicks the slider is at {value}")
                break
            frames.add(src)
        if last >= 1 and len(frames) < 2:
            problems.append(f"animation {i}: stepping through {last + 1} frames never changes the image")
        anim.locator('.anim-buttons button[title="First frame"]').click()
        blank = anim.locator(".anim-buttons button").evaluate_all(_BLANK_BUTTONS)
        if blank:
            problems.append(f"animation {i}: buttons without a visible icon (offline): {blank}")
    return problems


# Nothing may stick out of the main content column (article.bd-article) sideways: an element may be
# wider than the column only inside an ancestor that clips or scrolls horizontally (a formula's or a
# table's own scrolling box). Also the column itself and the whole page must not scroll sideways.
_OVERFLOW = """
() => {
  const col = document.querySelector("article.bd-article") || document.querySelector("main");
  if (!col) return {column: null, problems: ["no main content column (article.bd-article)"]};
  const box = col.getBoundingClientRect();
  const problems = [];
  if (col.scrollWidth > col.clientWidth + 1)
    problems.push(`the column scrolls sideways: scrollWidth ${col.scrollWidth} > width ${col.clientWidth}`);
  const page = document.documentElement;
  if (page.scrollWidth > window.innerWidth + 1)
    problems.push(`the page scrolls sideways: scrollWidth ${page.scrollWidth} > ${window.innerWidth}`);
  const clips = new Map();
  const clipping = (el) => {
    if (clips.has(el)) return clips.get(el);
    const ox = getComputedStyle(el).overflowX;
    const own = ox === "auto" || ox === "scroll" || ox === "hidden" || ox === "clip";
    const r = own || (el.parentElement && el.parentElement !== col && clipping(el.parentElement));
    clips.set(el, r);
    return r;
  };
  const describe = (el) => {
    let d = el.tagName.toLowerCase();
    if (el.id) d += "#" + el.id;
    if (el.classList.length) d += "." + Array.from(el.classList).slice(0, 3).join(".");
    const sec = el.closest("section[id]");
    return d + (sec ? ` in section #${sec.id}` : "") + `: "${(el.textContent || "").trim().slice(0, 50)}"`;
  };
  const reported = new Set();
  for (const el of col.querySelectorAll("*")) {
    if (el.getClientRects().length === 0) continue;
    const style = getComputedStyle(el);
    if (style.position === "fixed" || style.visibility === "hidden") continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    const over = Math.max(r.right - box.right, box.left - r.left);
    if (over <= 1) continue;
    if (el.parentElement && el.parentElement !== col && clipping(el.parentElement)) continue;
    let top = el;  // report the outermost overflowing element only
    while (top.parentElement && top.parentElement !== col && reported.has(top.parentElement)) top = top.parentElement;
    reported.add(el);
    if (top !== el) continue;
    problems.push(`${describe(el)} sticks out of the column by ${Math.round(over)} px`);
  }
  return {column: Math.round(box.width), problems};
}
"""


def check_overflow(page: Any) -> list[str]:
    info = page.evaluate(_OVERFLOW)
    return [f"horizontal overflow: {p}" for p in info["problems"][:10]] + (
        [f"... and {len(info['problems']) - 10} more"] if len(info["problems"]) > 10 else []
    )


# A character drawn with a font that has it differs from the "missing glyph" box (tofu) that the
# browser draws when no font has it, and two different characters look different. Each distinct
# character of the elements is drawn on a canvas in the element's own font and compared, pixel by
# pixel, with an unassigned code point (U+0378, always tofu) and with the other characters.
_GLYPHS = """
(els) => {
  const canvas = document.createElement("canvas");
  canvas.width = 64; canvas.height = 64;
  const ctx = canvas.getContext("2d", {willReadFrequently: true});
  const draw = (ch, font) => {
    ctx.clearRect(0, 0, 64, 64);
    ctx.font = font; ctx.fillStyle = "#000"; ctx.textBaseline = "top";
    ctx.fillText(ch, 4, 4);
    const px = ctx.getImageData(0, 0, 64, 64).data;
    let key = "", ink = 0;
    for (let i = 3; i < px.length; i += 4) { key += px[i] > 127 ? "1" : "0"; ink += px[i] > 127; }
    return {key, ink};
  };
  const out = {chars: 0, tofu: [], blank: [], same: 0, font: null};
  const seen = new Map();
  for (const el of els) {
    const cs = getComputedStyle(el);
    const font = `32px ${cs.fontFamily}`;
    out.font = cs.fontFamily;
    const tofu = draw("\\u0378", font).key;
    for (const ch of new Set(Array.from(el.textContent))) {
      if (!/\\p{Script=Han}/u.test(ch) || seen.has(ch)) continue;
      const g = draw(ch, font);
      out.chars += 1;
      if (g.ink === 0) out.blank.push(ch);
      else if (g.key === tofu) out.tofu.push(ch);
      seen.set(ch, g.key);
    }
  }
  out.same = seen.size - new Set(seen.values()).size;
  return out;
}
"""


# ----------------------------------------------------------------------------------------------
# the tests


def test_root_redirects_to_intro(visit: Visit) -> None:
    response = visit.open("index.html")
    assert response is not None and response.ok
    visit.page.wait_for_url(re.compile(r".*/book/intro\.html$"), timeout=TIMEOUT_MS)
    assert not visit.blocked, f"requests to the network: {visit.blocked}"


@pytest.mark.parametrize("doc", PAGES)
def test_page(visit: Visit, doc: str) -> None:
    check_page(visit, doc)


def check_page(visit: Visit, doc: str) -> None:
    """Title, math, images, Colab badge, animations, overflow, JavaScript errors, network; a screenshot."""
    info = source_info(doc)
    assert info["title"] is not None, f"{doc}: the source (.md or .ipynb) is missing or has no H1"
    response = visit.open(f"{doc}.html")
    status = response.status if response is not None else None
    assert status == 200, f"{doc}.html: HTTP {status} (the page is not in the built site: rebuild it with `make book`)"
    page = visit.page
    problems = []

    title, want = html.unescape(page.title()), _plain(info["title"])
    if want not in title:
        problems.append(f"<title> {title!r} does not contain the H1 {want!r}")
    problems += check_math(page)
    missing = page.evaluate(_WAIT_IMAGES)
    if missing:
        problems.append(f"{len(missing)} images did not load: {missing[:5]}")
    problems += check_colab(page, doc, info["notebook"])
    if info["animation"]:
        problems += check_animations(page)
    problems += check_overflow(page)

    if os.environ.get("S4LITE_SCREENSHOTS") == "1":  # full-page screenshots for a visual review (slow)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.mouse.move(0, 0)
        page.evaluate("() => { if (document.activeElement) document.activeElement.blur(); window.scrollTo(0, 0); }")
        page.screenshot(path=str(SCREENSHOTS / f"{Path(doc).name}.png"), full_page=True)

    if visit.js_errors:
        problems.append(f"JavaScript errors: {visit.js_errors[:5]}")
    if visit.blocked:
        problems.append(f"the page asked the network for: {sorted(set(visit.blocked))[:10]}")
    assert not problems, f"{doc}:\n  " + "\n  ".join(problems)


def test_references_list_every_bib_entry(visit: Visit) -> None:
    """The references page lists every entry of every bibliography file named in ``_config.yml``."""
    bibfiles = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))["bibtex_bibfiles"]
    keys = [
        key
        for bib in bibfiles
        for key in re.findall(r"^@\w+\s*\{\s*([^,\s]+)\s*,", (ROOT / bib).read_text(encoding="utf-8"), re.M)
    ]
    assert len(keys) >= 9, f"{bibfiles}: expected at least 9 entries, found {keys}"
    response = visit.open("book/references.html")
    assert response is not None and response.ok
    shown = visit.page.locator('[role="doc-biblioentry"], dl.citation > dt').count()
    assert shown == len(keys), f"the references page shows {shown} entries, {bibfiles} have {len(keys)}: {keys}"


def test_screenshot_names_are_unique() -> None:
    """Screenshots are named by the page's file name, so two pages must not share one."""
    names = [Path(p).name for p in PAGES]
    assert len(names) == len(set(names)), f"pages with the same file name: {names}"


ZH_PAGE = "book/notation"  # the glossary of the reading note's Traditional-Chinese terms is a section of it
ZH_TABLE = "table.zh-glossary"


def test_chinese_glossary_renders_its_glyphs(visit: Visit) -> None:
    """The Traditional-Chinese terms are drawn with a font that has them: no tofu boxes, no blanks."""
    response = visit.open(f"{ZH_PAGE}.html")
    assert response is not None and response.ok
    cells = visit.page.locator(f"{ZH_TABLE} td:first-child")
    assert cells.count() >= 40, f"{ZH_PAGE}: expected the glossary table {ZH_TABLE} with ≥ 40 terms, found {cells.count()}"
    info = cells.evaluate_all(_GLYPHS)
    table = visit.page.locator(ZH_TABLE)
    table.scroll_into_view_if_needed()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    table.screenshot(path=str(SCREENSHOTS / "glossary_zh.png"))
    assert info["chars"] >= 60, f"only {info['chars']} distinct Han characters found: {info}"
    assert not info["tofu"] and not info["blank"], (
        f"{len(info['tofu'])} characters drawn as the missing-glyph box and {len(info['blank'])} blank "
        f"(font-family {info['font']}): install a CJK font (Debian: fonts-noto-cjk): "
        f"{''.join(info['tofu'][:20])} {''.join(info['blank'][:20])}"
    )
    assert info["same"] == 0, f"{info['same']} different characters are drawn identically (tofu?): {info}"
