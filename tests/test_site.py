"""The documentation site as a reader sees it: served over HTTP on 127.0.0.1 and opened in headless Chromium.

Run by ``nox -s site``, which builds the site, installs Playwright and finds a Chromium (Debian's ``chromium``
package, ``AUTOGRAD_CHROMIUM``, or Playwright's own download where it installs), then runs this file with
``AUTOGRAD_SITE_DIR`` (the built HTML), ``AUTOGRAD_CHROMIUM`` and ``AUTOGRAD_SITE_SCREENSHOTS`` (where the
screenshots of the main pages go) set. Every request that does not go to 127.0.0.1 fails, so the site
is checked as it reads offline; a failed request (a 404, or one that needed the network) fails its page.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(os.environ.get("AUTOGRAD_SITE_DIR", ROOT / "docs" / "_build" / "html"))
SHOTS = Path(os.environ.get("AUTOGRAD_SITE_SCREENSHOTS", ROOT / "docs" / "_build" / "screenshots"))
# The network is cut off for the browser: every request but those to 127.0.0.1 goes to a proxy that is not there.
OFFLINE = ["--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=127.0.0.1"]
DESKTOP = {"width": 1400, "height": 1000}
PHONE = {"width": 400, "height": 900}
# The pages whose screenshots CI keeps.
MAIN_PAGES = [
    "index.html",
    "guides.html",
    "quickstart.html",
    "plugins.html",
    "examples/index.html",
    "examples/char_gpt.html",
    "api/index.html",
    "api/core.html",
    "api/generated/autograd.functional.html",
    "api/generated/autograd.functional.scaled_dot_product_attention.html",
    "api/generated/autograd.nn.Conv2d.html",
    "api/generated/autograd.tensor.Tensor.html",
]

pytestmark = pytest.mark.skipif(
    not (SITE / "index.html").exists(), reason=f"no built site in {SITE}: nox -s site builds it and runs this"
)


def _pages() -> list[str]:
    """Every page of the site (``_static`` holds the theme's templates, not pages)."""
    return sorted(str(p.relative_to(SITE)) for p in SITE.rglob("*.html") if p.relative_to(SITE).parts[0] != "_static")


# --- the HTML as served: links and anchors, without a browser -----------------------------------------------


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[tuple[str, str]] = []  # (tag, url)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for key in ("id", "name") if tag == "a" else ("id",):
            if a.get(key):
                self.ids.add(a[key])
        url = a.get("href") if tag in ("a", "link") else a.get("src") if tag in ("img", "script") else None
        if url:
            self.links.append((tag, url))


@functools.cache
def _parsed(rel: str) -> _Page:
    page = _Page()
    page.feed((SITE / rel).read_text(encoding="utf-8"))
    return page


def test_every_internal_link_and_anchor_resolves() -> None:
    problems = []
    for rel in _pages():
        base = f"http://site/{rel}"
        for tag, url in _parsed(rel).links:
            target = urlparse(urljoin(base, url))
            if target.scheme in ("mailto", "javascript", "data") or (target.netloc and target.netloc != "site"):
                continue
            path = unquote(target.path.lstrip("/")) or "index.html"
            if path.endswith("/"):
                path += "index.html"
            file = SITE / path
            if not file.is_file():
                problems.append(f"{rel}: <{tag}> {url} -> no file {path}")
            elif target.fragment and file.suffix == ".html" and unquote(target.fragment) not in _parsed(path).ids:
                problems.append(f"{rel}: {url} -> no anchor #{target.fragment} in {path}")
    assert not problems, f"{len(problems)} broken links:\n" + "\n".join(problems[:50])


def test_the_version_list_offers_no_stable_version_before_a_release() -> None:
    versions = json.loads((SITE / "_static" / "switcher.json").read_text())
    released = os.environ.get("AUTOGRAD_DOCS_RELEASED") == "1"
    assert [v["version"] for v in versions] == (["latest", "stable"] if released else ["latest"]), versions


# --- in the browser ---------------------------------------------------------------------------------------------


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def base_url():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(SITE)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (nox -s site has it)")
    executable = os.environ.get("AUTOGRAD_CHROMIUM") or None
    with sync_api.sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=executable, args=OFFLINE)
        except Exception as exc:  # noqa: BLE001 - any launch failure means there is no browser to test with
            message = f"cannot start Chromium ({executable or 'Playwright’s own'}): {str(exc).splitlines()[0]}"
            if os.environ.get("AUTOGRAD_REQUIRE_BROWSER") == "1":
                pytest.fail(message)
            pytest.skip(message)
        yield browser
        browser.close()


class Recorder:
    """A browser tab that records every failed request (a 404, or one that needed the network) and script error."""

    def __init__(self, browser, viewport: dict[str, int]) -> None:
        self.context = browser.new_context(viewport=viewport)
        self.problems: list[str] = []
        self.page = self.context.new_page()
        self.page.on("requestfailed", self._failed)
        self.page.on("response", lambda r: r.status >= 400 and self.problems.append(f"HTTP {r.status}: {r.url}"))
        self.page.on("pageerror", lambda e: self.problems.append(f"script error: {e}"))

    def _failed(self, request) -> None:
        if request.failure == "net::ERR_ABORTED":  # cancelled by leaving the page (search's previews, say)
            return
        local = re.match(r"^https?://127\.0\.0\.1[:/]", request.url)
        what = "failed" if local else "needs the network"
        self.problems.append(f"{what}: {request.url} ({request.failure})")

    def take(self) -> list[str]:
        out, self.problems = self.problems, []
        return out


# What a page must show once its scripts have run, measured in the page.
_CHECK = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  const root = document.documentElement;
  const raw = [...document.querySelectorAll('.math')]
    .filter(e => !e.querySelector('mjx-container') && e.textContent.includes('\\\\'))
    .map(e => e.textContent.slice(0, 60));
  const side = document.querySelector('#pst-primary-sidebar');
  const sideShown = side && side.offsetWidth > 0 && getComputedStyle(side).display !== 'none';
  const banner = document.querySelector('#bd-header-version-warning');
  return {
    overflow: root.scrollWidth - root.clientWidth,
    raw: raw,
    emptySidebar: !!(sideShown && side.querySelectorAll('nav a, .bd-sidenav a').length === 0),
    banner: !!(banner && banner.offsetHeight > 0),
  };
}"""


def _visit(rec: Recorder, url: str) -> None:
    rec.page.goto(url, wait_until="load")


def test_every_page_at_desktop_and_phone_widths(browser, base_url) -> None:
    """No page scrolls sideways, shows raw LaTeX, an empty sidebar or a version banner, or fails a request."""
    problems = []
    SHOTS.mkdir(parents=True, exist_ok=True)
    rec = Recorder(browser, DESKTOP)
    try:
        for rel in _pages():
            for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
                rec.page.set_viewport_size(viewport)
                if name == "desktop":
                    _visit(rec, base_url + rel)
                result = rec.page.evaluate(_CHECK)
                if result["overflow"] > 0:
                    problems.append(f"{rel} ({name}): scrolls sideways by {result['overflow']} px")
                if result["raw"]:
                    problems.append(f"{rel} ({name}): raw LaTeX after load: {result['raw'][:3]}")
                if result["emptySidebar"]:
                    problems.append(f"{rel} ({name}): an empty left sidebar")
                if result["banner"] and os.environ.get("AUTOGRAD_DOCS_RELEASED") != "1":
                    problems.append(f"{rel} ({name}): a version warning banner before any release")
                if rel in MAIN_PAGES:
                    shot = SHOTS / f"{rel.replace('/', '__').removesuffix('.html')}-{name}.png"
                    rec.page.screenshot(path=str(shot), full_page=False)
            problems += [f"{rel}: {p}" for p in rec.take()]
    finally:
        rec.context.close()
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:60])


def _header_bottom(page) -> float:
    return page.evaluate("document.querySelector('.bd-header').getBoundingClientRect().bottom")


def _signature_box(page, anchor: str) -> dict[str, float]:
    return page.evaluate(
        "(id) => { const r = document.getElementById(id).getBoundingClientRect();"
        " return {top: r.top, bottom: r.bottom, height: innerHeight}; }",
        anchor,
    )


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_header_is_one_row_and_anchors_land_below_it(browser, base_url, viewport) -> None:
    rec = Recorder(browser, viewport)
    try:
        rec.page.goto(base_url + "index.html")
        header = rec.page.evaluate("document.querySelector('.bd-header').getBoundingClientRect().height")
        assert header <= 90, f"the header is {header} px tall: it wraps"
        targets = [
            ("api/generated/autograd.tensor.Tensor.html", "autograd.tensor.Tensor.view"),
            ("api/generated/autograd.tensor.Tensor.html", "autograd.tensor.Tensor.backward"),
            ("api/generated/autograd.nn.Module.html", "autograd.nn.Module.state_dict"),
            ("api/generated/autograd.optim.Adam.html", "autograd.optim.Adam"),
            ("api/generated/autograd.kernels.Kernel.html", "autograd.kernels.Kernel.check"),
        ]
        for page, anchor in targets:
            rec.page.goto(f"{base_url}{page}#{anchor}")
            rec.page.wait_for_timeout(100)
            box, bottom = _signature_box(rec.page, anchor), _header_bottom(rec.page)
            assert box["top"] >= bottom - 1, f"{page}#{anchor}: the signature starts under the header ({box}, {bottom})"
            assert box["bottom"] <= box["height"], f"{page}#{anchor}: the signature runs off the screen ({box})"
        assert not rec.take()
    finally:
        rec.context.close()


def test_search_finds_scaled_dot_product_attention_first_and_its_link_shows_the_signature(browser, base_url) -> None:
    rec = Recorder(browser, DESKTOP)
    try:
        rec.page.goto(base_url + "search.html?q=scaled_dot_product_attention")
        first = rec.page.locator("#search-results ul.search li a").first
        first.wait_for(timeout=20_000)
        href = first.get_attribute("href")
        assert "autograd.functional.scaled_dot_product_attention" in href, f"the first result is {href}"
        first.click()
        rec.page.wait_for_load_state("load")
        anchor = "autograd.functional.scaled_dot_product_attention"
        rec.page.wait_for_timeout(100)
        box, bottom = _signature_box(rec.page, anchor), _header_bottom(rec.page)
        assert bottom - 1 <= box["top"] and box["bottom"] <= box["height"], (box, bottom)
        assert not rec.take()
    finally:
        rec.context.close()


def test_code_blocks_have_copy_buttons_and_the_site_an_icon(browser, base_url) -> None:
    rec = Recorder(browser, DESKTOP)
    try:
        rec.page.goto(base_url + "index.html")
        blocks = rec.page.locator("div.highlight pre").count()
        buttons = rec.page.locator("button.copybtn").count()
        assert blocks >= 3 and buttons == blocks, (blocks, buttons)
        icon = rec.page.evaluate("document.querySelector('link[rel~=icon]').href")
        assert rec.context.request.get(icon).ok, icon
        assert not rec.take()
    finally:
        rec.context.close()
