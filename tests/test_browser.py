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

and a full-page screenshot lands in ``test-artifacts/screenshots/<page>.png``. Also: the site root
redirects to the introduction, and the references page lists every entry of ``book/references.bib``.
"""

from __future__ import annotations

import functools
import html
import http.server
import re
import threading
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlparse

import nbformat
import pytest
import yaml
from book_sources import toc_files

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
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
    return toc_files()


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
        for k in range(1, last + 1):
            anim.locator('.anim-buttons button[title="Next frame"]').click()
            value = slider.evaluate("(s) => parseInt(s.value)")
            if value != k:
                problems.append(f"animation {i}: after {k} 'Next frame' clicks the slider is at {value}")
                break
            frames.add(img.get_attribute("src"))
        if last >= 1 and len(frames) < 2:
            problems.append(f"animation {i}: stepping through {last + 1} frames never changes the image")
        anim.locator('.anim-buttons button[title="First frame"]').click()
        blank = anim.locator(".anim-buttons button").evaluate_all(_BLANK_BUTTONS)
        if blank:
            problems.append(f"animation {i}: buttons without a visible icon (offline): {blank}")
    return problems


# ----------------------------------------------------------------------------------------------
# the tests


def test_root_redirects_to_intro(visit: Visit) -> None:
    response = visit.open("index.html")
    assert response is not None and response.ok
    visit.page.wait_for_url(re.compile(r".*/book/intro\.html$"), timeout=TIMEOUT_MS)
    assert not visit.blocked, f"requests to the network: {visit.blocked}"


@pytest.mark.parametrize("doc", PAGES)
def test_page(visit: Visit, doc: str) -> None:
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
    keys = re.findall(r"^@\w+\s*\{\s*([^,\s]+)\s*,", (ROOT / "book" / "references.bib").read_text(encoding="utf-8"), re.M)
    assert len(keys) >= 9, f"book/references.bib: expected at least 9 entries, found {keys}"
    response = visit.open("book/references.html")
    assert response is not None and response.ok
    shown = visit.page.locator('[role="doc-biblioentry"], dl.citation > dt').count()
    assert shown == len(keys), f"the references page shows {shown} entries, book/references.bib has {len(keys)}: {keys}"


def test_screenshot_names_are_unique() -> None:
    """Screenshots are named by the page's file name, so two pages must not share one."""
    names = [Path(p).name for p in PAGES]
    assert len(names) == len(set(names)), f"pages with the same file name: {names}"
