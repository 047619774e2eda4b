"""The explorer page in a real browser: Debian's chromium, headless, driven by Playwright (its own browser builds are
never downloaded: executable_path points at /usr/bin/chromium).

The tests skip, saying why, where chromium or Playwright is missing, except in CI (CI=true), where that fails.
`python tests/test_explore_browser.py PAGE.html SHOT.png` takes the README's screenshot the same way.
"""
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from test_explore import reference, tiny_model   # tests/ is on sys.path: pytest's rootdir import, or the script's own

from gpt.explore import explore, write_page

CHROMIUM = os.environ.get("TENSORLITE_CHROMIUM", "/usr/bin/chromium")
# The network here is closed: without these, chromium keeps trying to reach outside (updates, sync, field trials).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1500, "height": 1100}


def missing_browser():
    """Why the browser tests cannot run here, or None."""
    if not os.path.isfile(CHROMIUM):
        return f"no chromium at {CHROMIUM} (Debian: apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -e '.[dev]')"
    return None


def launch(playwright, profile_dir):
    """A fresh chromium profile in profile_dir, headless, with the flags above."""
    return playwright.chromium.launch_persistent_context(profile_dir, executable_path=CHROMIUM, args=FLAGS,
                                                         headless=True, viewport=VIEWPORT)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    reason = missing_browser()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}: CI must run the browser tests (.ci/run installs both)")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        context = launch(playwright, str(tmp_path_factory.mktemp("chromium-profile")))
        yield context
        context.close()


class Page:
    """One loaded page and every console error or uncaught exception it produced."""

    def __init__(self, browser, path):
        self.page, self.errors = browser.new_page(), []
        self.page.on("console", lambda message: self.errors.append(message.text) if message.type == "error" else None)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.goto(Path(path).as_uri())             # returns after the load event: the inline script has run
        if not self.page.evaluate("document.body.dataset.ready === 'true'"):
            raise AssertionError(f"the page's script did not finish: {self.errors}")

    def text(self, selector):
        return self.page.locator(selector).inner_text()

    def hover_cell(self, q, k):
        """Hover one cell of the enlarged head; return the number the readout shows for it."""
        self.page.hover(f'#head-matrix rect[data-q="{q}"][data-k="{k}"]')
        return float(re.search(r"= (\S+)$", self.text("#readout")).group(1))

    def grid_image(self, grid, layer, head):
        return self.page.eval_on_selector(f'#{grid} canvas[data-layer="{layer}"][data-head="{head}"]',
                                          "canvas => canvas.toDataURL()")


def test_the_page_shows_the_engines_numbers(browser, tmp_path):
    model, tokenizer = tiny_model()
    prompt = "ROMEO:\nBut soft, what light"
    ids = tokenizer.encode(prompt)
    result = explore(model, tokenizer, prompt, window=16)
    start, E = result["start"], result["earlier"]
    assert start > 0 and E == 1                                   # the page has the summed-earlier-keys column
    page = Page(browser, write_page(result, str(tmp_path / "page.html")))
    assert page.page.locator("#attention-grid canvas").count() == 4 and page.errors == []

    # forward: enlarge a head, read an attention weight, compare with P from the model's own q and k
    page.page.click('#attention-grid canvas[data-layer="1"][data-head="1"]')
    assert page.text("#head-title") == "layer 1, head 1: P"
    P = reference(model, ids, len(ids) - 2, ids[-1])[0][1]["P"][1]          # layer 1, head 1: (T, T)
    q, key = 12, 9                                                            # window row 12: position start + 12
    assert page.hover_cell(q, E + key) == pytest.approx(P[start + q, start + key], rel=1e-4, abs=1e-7)
    assert page.hover_cell(q, 0) == pytest.approx(P[start + q, :start].sum(), rel=1e-4)

    # backward: pick another position; the loss and the dS squares change
    t = start + 5
    before = page.text("#loss-line"), page.grid_image("dS-grid", 0, 1)
    page.page.click(f'#position-strip .token[data-position="{t}"]')
    assert page.text("#loss-line") != before[0] and page.grid_image("dS-grid", 0, 1) != before[1]
    assert f"tokens 0..{t}) = " in page.text("#loss-line")

    # read a dS entry of layer 0, head 1 and compare with dS = P * (dP - rowsum(P * dP)) from dO and V
    page.page.click('#dS-grid canvas[data-layer="0"][data-head="1"]')
    title = page.text("#head-title")
    assert title.startswith("layer 0, head 1: dS of the loss of ") and title.endswith(f"at position {t}")
    dS = reference(model, ids, t, ids[t + 1])[0][0]["dS"][1]
    scale = np.abs(dS).max()
    for q, key in ((5, 2), (5, 5), (3, 0)):
        shown = page.hover_cell(q, E + key)
        assert shown == pytest.approx(dS[start + q, start + key], rel=1e-3, abs=1e-5 * scale)
    assert page.hover_cell(5, 0) == pytest.approx(dS[start + 5, :start].sum(), rel=1e-3, abs=1e-5 * scale)

    # another target at the same position: a different loss
    loss = page.text("#loss-line")
    page.page.click('#target-buttons button[data-target="1"]')
    assert page.text("#loss-line") != loss
    page.page.hover('#residual rect[data-block="1"][data-column="3"]')
    assert re.search(r"after block 1 at position \d+ .* = \S+$", page.text("#grad-readout"))
    page.page.screenshot(path=str(tmp_path / "explore.png"), full_page=True)
    assert page.errors == []


def test_a_gpt2_shaped_page(browser, tmp_path):
    """12 layers x 12 heads, block_size 1024: the grids, the enlarged head and a backward view all draw."""
    model, tokenizer = tiny_model(n_layer=12, n_head=12, n_embd=24, block_size=1024)
    result = explore(model, tokenizer, "ROMEO:\nBut soft, what light through yonder window breaks?" * 2,
                     positions=[-1, -2], top_k=2)
    page = Page(browser, write_page(result, str(tmp_path / "page.html")))
    assert page.page.locator("#dS-grid canvas").count() == 144
    page.page.click('#dP-grid canvas[data-layer="11"][data-head="11"]')
    assert page.text("#head-title").startswith("layer 11, head 11: dP")
    last = len(result["tokens"]) - 1
    assert np.isfinite(page.hover_cell(last, 1))
    assert page.errors == []


def screenshot(page_path, png_path):
    """The README's picture: the backward half of the page, one head's dS enlarged on the right."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        context = launch(playwright, profile)
        page = Page(context, page_path)
        page.page.click('#dS-grid canvas[data-layer="2"][data-head="1"]')
        last = page.page.locator("#head-lines rect.query").count() - 1
        page.hover_cell(last, page.page.locator(f'#head-matrix rect[data-q="{last}"]').count() - 1)
        page.page.evaluate("document.getElementById('backward').scrollIntoView()")
        page.page.screenshot(path=png_path)
        context.close()
        if page.errors:
            raise RuntimeError(f"the page logged errors: {page.errors}")


if __name__ == "__main__":
    screenshot(*sys.argv[1:3])
