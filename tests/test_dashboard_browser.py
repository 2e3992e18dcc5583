"""The dashboard in a real headless browser: Debian's chromium driven by playwright (no `playwright install`).

Screenshots go to artifacts/ (gitignored) as test artifacts. Keyboard reachability is checked by pressing Tab
and reading the focused element; badge contrast by computing the WCAG 2.x ratio from the colours the browser
actually rendered. Missing chromium fails under CI (env CI set) and skips elsewhere.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.web.app import BackgroundServer, create_app
from tests.test_web_dashboard import TOKEN, sample_repository

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def launch(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing: apt-get install -y --no-install-recommends chromium"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch(p)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def dashboard() -> Iterator[tuple[str, Any]]:
    now = time.time()
    repo = sample_repository(now)
    with BackgroundServer(create_app(repository=repo, token=TOKEN, clock=lambda: now)) as server:
        yield server.url, repo


def shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"dashboard-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    return path


def focus_walk(page: Any, presses: int) -> list[dict[str, str]]:
    seen = []
    for _ in range(presses):
        page.keyboard.press("Tab")
        seen.append(
            page.evaluate(
                "() => { const e = document.activeElement; return {tag: e.tagName, text: (e.innerText || '').trim(),"
                " href: e.getAttribute('href') || '', name: e.getAttribute('name') || ''}; }"
            )
        )
    return seen


def test_gate_list_renders_and_tab_reaches_every_gate_link_in_order(browser, dashboard) -> None:
    url, repo = dashboard
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(url + "/")
    rows = page.locator("tbody tr")
    assert rows.count() == len(repo.list_gates())
    shot(page, "list")
    focused = focus_walk(page, 3 + len(repo.list_gates()))
    assert focused[0]["text"] == "Skip to content"  # the first stop lets keyboard users jump the header
    links = [f["href"] for f in focused if f["href"].startswith("/gates/")]
    expected = [f"/gates/{r.namespace}/{r.name}" for r in repo.list_gates()]
    assert links == expected
    page.close()


def test_approve_by_keyboard_alone_on_a_gate_awaiting_approval(browser, dashboard) -> None:
    url, repo = dashboard
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(url + "/gates/shop/payments")
    shot(page, "awaiting-approval")
    focused: list[dict[str, str]] = []
    for _ in range(12):  # Tab until the approve form's first field
        focused += focus_walk(page, 1)
        if focused[-1]["name"] == "by":
            break
    assert focused[-1]["name"] == "by", focused
    page.keyboard.type("dana")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.name") == "token"
    page.keyboard.type(TOKEN)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.innerText") == "Approve stage"
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "approve by dana: recorded" in page.locator("[role=status]").inner_text()
    status = repo.get_gate(namespace="shop", name="payments").status
    assert any(a.endswith(":dana") for a in status.approvals)
    shot(page, "approved")
    page.close()


def test_halted_gate_page_reads_well_with_escalation_evidence_and_history(browser, dashboard) -> None:
    url, _ = dashboard
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(url + "/gates/shop/orders")
    assert page.locator(".escalation").is_visible()
    assert page.locator("svg.spark polyline").count() >= 1
    # a halted gate waits for a human: it can be aborted, there is nothing to approve
    assert page.get_by_role("button", name="Abort rollout").count() == 1
    assert page.get_by_role("button", name="Approve stage").count() == 0
    shot(page, "halted")
    page.close()


def _luminance(rgb: tuple[int, int, int]) -> float:
    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    """WCAG 2.x contrast ratio (https://www.w3.org/TR/WCAG21/#dfn-contrast-ratio)."""
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def _rgb(css: str) -> tuple[int, int, int]:
    r, g, b = (int(x) for x in re.findall(r"\d+", css)[:3])
    return r, g, b


def test_contrast_helper_matches_the_published_extremes() -> None:
    assert contrast((0, 0, 0), (255, 255, 255)) == pytest.approx(21.0)
    assert contrast((118, 118, 118), (255, 255, 255)) == pytest.approx(4.54, abs=0.01)  # #767676, the AA edge


def test_every_verdict_badge_meets_wcag_aa_contrast(browser, dashboard) -> None:
    url, _ = dashboard
    page = browser.new_page()
    page.goto(url + "/")
    colours = page.eval_on_selector_all(
        ".badge",
        "els => els.map(e => [e.className, getComputedStyle(e).color, getComputedStyle(e).backgroundColor])",
    )
    kinds = {cls.split()[-1] for cls, _, _ in colours}
    assert {"v-pass", "v-fail", "v-inconclusive", "v-none"} <= kinds
    for cls, fg, bg in colours:
        ratio = contrast(_rgb(fg), _rgb(bg))
        assert ratio >= 4.5, f"{cls}: {fg} on {bg} is {ratio:.2f}:1, below WCAG AA 4.5:1"
    page.close()
