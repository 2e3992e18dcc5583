"""The live dashboard in headless Chromium: the stage strip (weight, time in stage, rollback window), per-signal
charts with their scale written on them, decisions linked to their reports, updates without reloading, and the
page read at desktop and phone widths, by keyboard, with WCAG AA contrast."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gatekeeper.web.app import BackgroundServer, create_app
from tests.test_dashboard_browser import _rgb, browser, contrast, focus_walk, shot  # noqa: F401  (fixture)
from tests.test_web_dashboard import TOKEN, sample_repository

pytestmark = pytest.mark.browser


@pytest.fixture
def served() -> Iterator[tuple[str, Any]]:
    now = time.time()
    repo = sample_repository(now)
    with BackgroundServer(create_app(repository=repo, token=TOKEN)) as server:
        yield server.url, repo


def test_the_gate_page_shows_the_stage_strip_signal_charts_and_decision_links(served) -> None:
    url, _ = served
    html = httpx.get(url + "/gates/shop/checkout").text
    assert "aria-current='step'" in html and "rollback: reversible" in html and "in stage" in html
    assert "e-value per look (log scale)" in html and "threshold" in html
    live = httpx.get(url + "/gates/shop/checkout?fragment=live")
    assert live.status_code == 200 and "<html" not in live.text and "class='progress'" in live.text
    assert live.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in live.headers["content-security-policy"]
    halted = httpx.get(url + "/gates/shop/orders").text
    assert "closed: forward fix only" in halted or "forward-fix-only" in halted


@pytest.mark.parametrize(("label", "width", "height"), [("desktop", 1280, 900), ("phone", 390, 844)])
def test_the_gate_page_reads_at_desktop_and_phone_widths(browser, served, label, width, height) -> None:  # noqa: F811
    url, _ = served
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(url + "/gates/shop/checkout")
    strip = page.locator("ol.progress li")
    assert strip.count() == 4 and page.locator("li[aria-current=step]").is_visible()
    assert page.locator("section.card svg.spark").count() >= 1
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{label}: the page scrolls sideways by {overflow}px"
    shot(page, f"live-{label}")
    page.close()


def test_the_page_updates_by_itself_without_reloading(browser, served) -> None:  # noqa: F811
    url, repo = served
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(url + "/gates/shop/payments")
    page.evaluate("() => { window.__sameDocument = true; }")
    assert "AwaitingApproval" in page.locator("#live").inner_text()
    repo.abort(namespace="shop", name="payments", by="dana", reason="bad build")
    page.wait_for_function("() => !document.getElementById('live').innerText.includes('AwaitingApproval')",
                           timeout=20_000)  # fmt: skip
    assert page.evaluate("() => window.__sameDocument === true"), "the page was reloaded"
    assert "Updated " in page.locator("#updated").inner_text()
    page.close()


def test_decision_links_come_in_order_by_keyboard_and_open_the_recorded_decision(browser, served) -> None:  # noqa: F811
    url, _ = served
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(url + "/gates/shop/checkout")
    expected = page.eval_on_selector_all("ul.decisions a", "els => els.map(e => e.getAttribute('href'))")
    assert expected, "a gate that advanced has decisions"
    walked = [f["href"] for f in focus_walk(page, 40) if "/decisions/" in f["href"]]
    assert walked[: len(expected)] == expected
    page.goto(url + expected[-1])
    assert page.locator("h1").inner_text().startswith("Decision: ")
    assert httpx.get(url + "/gates/shop/checkout/decisions/12.5").status_code == 404
    page.close()


def test_the_strip_the_charts_and_the_notes_meet_wcag_aa_contrast(browser, served) -> None:  # noqa: F811
    url, _ = served
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(url + "/gates/shop/checkout")
    pairs = page.eval_on_selector_all(
        "ol.progress li, .muted, figcaption, dl.facts dt",
        "els => els.map(e => { let n = e, bg = 'rgba(0, 0, 0, 0)';"
        " while (n && (bg === 'rgba(0, 0, 0, 0)' || bg === 'transparent')) { bg = getComputedStyle(n).backgroundColor;"
        " n = n.parentElement; } return [e.className || e.tagName, getComputedStyle(e).color, bg]; })",
    )
    ticks = page.eval_on_selector_all("svg.spark text.tick", "els => els.map(e => getComputedStyle(e).fill)")
    assert pairs and ticks
    for cls, fg, bg in pairs:
        bg = bg if "rgb" in bg else "rgb(255, 255, 255)"
        ratio = contrast(_rgb(fg), _rgb(bg))
        assert ratio >= 4.5, f"{cls}: {fg} on {bg} is {ratio:.2f}:1"
    for fill in ticks:
        assert contrast(_rgb(fill), (255, 255, 255)) >= 4.5, fill
    page.close()
