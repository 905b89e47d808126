"""The web page in a real headless Chromium against a real server: what it shows is what the API answers."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import sync_playwright

from model.assets import DEFAULT_CHECKPOINT_PATH
from tests.conftest import REPO_ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = REPO_ROOT / "test-artifacts" / "web_page.png"


def shown_predictions(result) -> list[tuple[str, str]]:
    rows = result.locator("[data-testid=prediction]")
    return [
        (rows.nth(index).locator(".label").inner_text(), rows.nth(index).locator(".percent").inner_text())
        for index in range(rows.count())
    ]


def api_predictions(base_url: str, name: str, top_k: int) -> list[tuple[str, str]]:
    body = httpx.post(f"{base_url}/classify", json={"name": name, "top_k": top_k}).json()
    return [(p["label"], f"{p['probability'] * 100:.1f}%") for p in body["predictions"]]


@pytest.mark.timeout(120)
def test_web_page_shows_the_api_answer_as_labelled_bars(start_server):
    # The shipped model gives real labels for the screenshot; only structure is asserted.
    server = start_server(checkpoint=str(DEFAULT_CHECKPOINT_PATH))
    model_id = httpx.get(f"{server.base_url}/model").json()["id"]
    requested: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 1000})
            page.on("request", lambda request: requested.append(request.url))
            page.goto(server.base_url + "/")
            page.wait_for_function("document.querySelectorAll('#top-k option').length > 0")
            assert model_id in page.get_by_test_id("model-info").inner_text()

            page.fill("#names", "Hinton")
            page.click("#classify")
            result = page.locator("[data-testid=result][data-name='Hinton']")
            result.wait_for()
            assert shown_predictions(result) == api_predictions(server.base_url, "Hinton", 3)
            assert model_id in page.locator("#status").inner_text()

            names = ["Nguyễn", "Schmidhuber", "王"]
            page.fill("#names", "\n".join(names))
            page.select_option("#top-k", "4")
            page.click("#classify")
            page.locator("[data-testid=result]").nth(2).wait_for()
            results = page.locator("[data-testid=result]")
            assert [results.nth(index).get_attribute("data-name") for index in range(results.count())] == names
            for index, name in enumerate(names):
                assert shown_predictions(results.nth(index)) == api_predictions(server.base_url, name, 4)
            SCREENSHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)

            page.fill("#names", "Hinton\n123\nMrs. Anna van der Berg")
            page.click("#classify")
            abstained = page.locator("[data-testid=result][data-name='123'] [data-testid=abstained]")
            abstained.wait_for()
            assert abstained.get_attribute("data-reason") == "no-letters" and "no letters" in abstained.inner_text()
            full_name = page.locator("[data-testid=result][data-name='Mrs. Anna van der Berg']")
            assert "read as “anna van der berg”" in full_name.inner_text()
            assert "van der Berg:" in full_name.locator(".parts").inner_text()

            page.fill("#names", "Hinton\n" + "x" * 70)
            page.click("#classify")
            error = page.locator("#error")
            error.wait_for(state="visible")
            assert "line 2" in error.inner_text() and "at most 64" in error.inner_text()
            assert page.locator("[data-testid=result]").count() == 0  # the previous answer is gone
        finally:
            browser.close()
    assert requested and all(url.startswith(server.base_url) for url in requested)  # nothing from a CDN
    assert Path(SCREENSHOT).stat().st_size > 10_000


@pytest.mark.timeout(120)
def test_docs_render_the_classify_operation_with_the_network_blocked(start_server):
    """Swagger UI comes from files the package ships: with every other host unreachable it still
    renders POST /classify, and it never even tries another host."""
    server = start_server(checkpoint=str(DEFAULT_CHECKPOINT_PATH))
    blocked: list[str] = []

    def only_this_server(route) -> None:
        if route.request.url.startswith(server.base_url):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1000})
            page.route("**/*", only_this_server)
            page.goto(server.base_url + "/docs")
            operation = page.locator("#operations-default-classify")
            operation.wait_for(timeout=30_000)
            assert "/classify" in operation.inner_text() and "POST" in operation.inner_text()
            page.screenshot(path=str(SCREENSHOT.with_name("docs_offline.png")))
        finally:
            browser.close()
    assert blocked == []
