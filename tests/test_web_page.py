"""The web page in a real headless Chromium against a real server: what it shows is what the API answers."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import sync_playwright

from model.assets import DEFAULT_CHECKPOINT_PATH
from tests.conftest import REPO_ROOT
from training.data import load_names_dir

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
ARTIFACTS = REPO_ROOT / "test-artifacts"
SCREENSHOT = ARTIFACTS / "web_page.png"
DESKTOP, PHONE = {"width": 1200, "height": 900}, {"width": 390, "height": 844}
SCRIPT_NAMES = ["田中", "김민준", "Παπαδόπουλος", "عبد الله", "Иванов", "Nguyễn", "Hinton", "qwerty"]
JUNK = ["123", "qwerty", "x" * 70, "N/A", "!!!", "Yılmaz", "asdfghjkl", "Mr."]
TABLE_CHUNK = 64  # names per request for the list test's server: 200 names go in four requests
TABLE_HEADER = ["#", "Name", "Read as", "Top label", "Probability", "Second label", "Abstained (reason)"]
REASONS = {  # the page's words for the API's reasons
    "no-letters": "it has no letters to read",
    "unsupported-script": "it is written in a script none of the model's labels use",
    "unsupported-letters": "it has letters none of the model's labels are spelled with",
    "too-long": "it is longer than the model reads",
    "control-characters": "it holds a control character (such as NUL)",
    "not-a-name": "it does not look like a name",
    "low-confidence": "no label reaches the probability asked for",
}


def shown_predictions(result) -> list[tuple[str, str]]:
    rows = result.locator("[data-testid=prediction]")
    return [
        (rows.nth(index).locator(".label").inner_text(), rows.nth(index).locator(".percent").inner_text())
        for index in range(rows.count())
    ]


def percent(probability: float) -> str:
    return f"{probability * 100:.1f}%"


def api_answer(base_url: str, name: str, top_k: int, explain: bool = False) -> dict:
    return httpx.post(f"{base_url}/classify", json={"name": name, "top_k": top_k, "explain": explain}).json()


def expected_rows(base_url: str, lines: list[str], max_length: int) -> list[list[str]]:
    """The table the page should show, from /classify sent the same chunks the page sends."""
    rows: list[list[str] | None] = [None] * len(lines)
    sendable = []
    for index, line in enumerate(lines):
        if len(line) > max_length:
            why = f"yes: longer than the {max_length} characters the service accepts"
            rows[index] = [str(index + 1), line, "", "", "", "", why]
        else:
            sendable.append(index)
    for start in range(0, len(sendable), TABLE_CHUNK):
        chunk = sendable[start : start + TABLE_CHUNK]
        body = httpx.post(f"{base_url}/classify", json={"names": [lines[i] for i in chunk], "top_k": 3}).json()
        for index, result in zip(chunk, body["results"], strict=True):
            labels = result["predictions"]
            rows[index] = [
                str(index + 1),
                result["name"],
                result["read_as"],
                labels[0]["label"] if labels else "",
                percent(labels[0]["probability"]) if labels else "",
                labels[1]["label"] if len(labels) > 1 else "",
                "yes: " + REASONS[result["reason"]] if result["abstained"] else "no",
            ]
    return [row for row in rows if row is not None]


def table_cells(page) -> list[list[str]]:
    return page.eval_on_selector_all(
        "[data-testid=table] tbody tr", "rows => rows.map(row => [...row.cells].map(cell => cell.textContent))"
    )


def open_page(browser, base_url: str, viewport: dict, requested: list[str]):
    page = browser.new_page(viewport=viewport, accept_downloads=True)
    page.on("request", lambda request: requested.append(request.url))
    page.goto(base_url + "/")
    page.wait_for_function("document.querySelectorAll('#top-k option').length > 0")
    return page


@pytest.mark.timeout(180)
def test_web_page_explains_one_name_with_the_apis_scores_and_says_what_the_model_is_for(start_server):
    server = start_server(checkpoint=str(DEFAULT_CHECKPOINT_PATH))
    card = httpx.get(f"{server.base_url}/model").json()
    requested: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = open_page(browser, server.base_url, DESKTOP, requested)
            assert card["id"] in page.get_by_test_id("model-info").inner_text()
            page.locator("#about summary").press("Enter")  # one keystroke away, like one click
            assert page.locator("[data-testid=labels] li").all_inner_texts() == card["labels"]
            assert card["intended_use"] in page.locator("#about").inner_text()
            assert card["out_of_scope"][0] in page.locator("#about").inner_text()

            for name in ["Nguyễn", "田中", "Nguyen Van Minh"]:
                page.fill("#names", name)
                page.locator("#names").press("Control+Enter")
                result = page.locator(f"[data-testid=result][data-name='{name}']")
                result.wait_for()
                answer = api_answer(server.base_url, name, 3, explain=True)
                assert shown_predictions(result) == [
                    (p["label"], percent(p["probability"])) for p in answer["predictions"]
                ]
                fragments = result.locator("[data-testid=fragment]")
                shown = [
                    (fragments.nth(i).inner_text(), float(fragments.nth(i).get_attribute("data-score")))
                    for i in range(fragments.count())
                ]
                assert shown == [(f["text"], f["score"]) for f in answer["explanation"]]
                assert [span.get_attribute("style") is not None for span in fragments.all()] == [
                    bool(f["text"].strip()) for f in answer["explanation"]
                ]
                spoken = result.get_by_test_id("explanation-text").inner_text()
                assert answer["explained_label"] in spoken and f"{answer['explanation'][0]['text']} " in spoken
                words = result.locator("[data-testid=word]")
                assert [(w.get_attribute("data-text"), float(w.get_attribute("data-score"))) for w in words.all()] == [
                    (w["text"], w["score"]) for w in answer["explanation_words"]
                ]
                reading = result.get_by_test_id("reading").inner_text()
                assert answer["read_as"] in reading and answer["script"] in reading
                assert page.locator("[data-testid=result]").count() == 1  # the previous answer is gone
            page.screenshot(path=str(ARTIFACTS / "web_page_one_name.png"), full_page=True)

            page.fill("#names", "123")
            page.click("#classify")
            abstained = page.locator("[data-testid=result][data-name='123'] [data-testid=abstained]")
            abstained.wait_for()
            assert abstained.get_attribute("data-reason") == "no-letters" and "no letters" in abstained.inner_text()
            assert page.locator("[data-testid=explanation]").count() == 0  # abstained: nothing to explain

            page.fill("#names", "x" * 70)
            page.click("#classify")
            error = page.locator("#error")
            error.wait_for(state="visible")
            assert "64 characters" in error.inner_text()
            assert page.locator("[data-testid=result]").count() == 0  # the previous answer is gone
        finally:
            browser.close()
    assert requested and all(url.startswith(server.base_url) for url in requested)  # nothing from a CDN


@pytest.mark.timeout(240)
def test_web_page_table_of_200_pasted_names_is_the_apis_answers_in_order_and_downloads_as_shown(start_server, tmp_path):
    server = start_server(checkpoint=str(DEFAULT_CHECKPOINT_PATH), max_names_per_request=str(TABLE_CHUNK))
    test_names = [record.name for record in load_names_dir(REPO_ROOT / "data" / "names").split("test")]
    lines = test_names[: 200 - len(JUNK)]
    for position, junk in enumerate(JUNK):
        lines.insert(position * 25, junk)
    expected = expected_rows(server.base_url, lines, 64)
    requested: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = open_page(browser, server.base_url, DESKTOP, requested)
            page.fill("#names", "\n".join(lines))
            page.click("#classify")
            page.locator("[data-testid=table]").wait_for()
            assert page.locator("[data-testid=table] thead th").all_inner_texts()[0].startswith("#")
            assert table_cells(page) == expected
            assert page.locator("[data-testid=row][data-reason=rejected]").count() == 1  # the 70-letter line
            counts = {}
            for row in expected:
                key = row[3] if row[6] == "no" else "No answer"
                counts[key] = counts.get(key, 0) + 1
            summary = page.locator("[data-testid=summary] .summary-row")
            assert {
                row.get_attribute("data-label"): int(row.get_attribute("data-count")) for row in summary.all()
            } == counts

            page.locator("th button[data-sort=probability]").focus()
            page.keyboard.press("Enter")
            page.keyboard.press("Enter")  # the second press sorts descending
            by_probability = table_cells(page)
            probabilities = [float(row[4].rstrip("%")) for row in by_probability if row[4]]
            assert probabilities == sorted(probabilities, reverse=True) and len(by_probability) == len(expected)
            with page.expect_download() as download_info:
                page.click("#download")
            download = tmp_path / "table.csv"
            download_info.value.save_as(download)
            assert list(csv.reader(io.StringIO(download.read_text(encoding="utf-8")))) == [
                TABLE_HEADER,
                *by_probability,
            ]

            page.fill("#names", "\n".join(SCRIPT_NAMES))
            page.click("#classify")
            page.locator("[data-testid=table]").wait_for()
            assert [row[1] for row in table_cells(page)] == SCRIPT_NAMES
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
            phone = open_page(browser, server.base_url, PHONE, requested)
            phone.fill("#names", "\n".join(SCRIPT_NAMES))
            phone.click("#classify")
            phone.locator("[data-testid=table]").wait_for()
            assert (
                phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
            )  # the table scrolls, not the page
            phone.screenshot(path=str(ARTIFACTS / "web_page_phone.png"), full_page=True)
            phone.fill("#names", "田中")
            phone.click("#classify")
            phone.locator("[data-testid=fragment]").first.wait_for()
            assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # no sideways scroll
            phone.screenshot(path=str(ARTIFACTS / "web_page_phone_one_name.png"), full_page=True)
        finally:
            browser.close()
    assert requested and all(url.startswith(server.base_url) for url in requested)  # nothing from a CDN
    assert Path(SCREENSHOT).stat().st_size > 10_000


@pytest.mark.timeout(120)
def test_web_page_reads_the_names_column_of_an_uploaded_csv(start_server, tmp_path):
    server = start_server(checkpoint=str(DEFAULT_CHECKPOINT_PATH))
    upload = tmp_path / "people.csv"
    upload.write_text('id,name\n1,Hinton\n2,"Tanaka, Hiroshi"\n3,123\n', encoding="utf-8")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = open_page(browser, server.base_url, DESKTOP, [])
            page.set_input_files("#file", str(upload))
            page.locator("[data-testid=table]").wait_for()
            assert [row[1] for row in table_cells(page)] == ["Hinton", "Tanaka, Hiroshi", "123"]
            assert table_cells(page)[2][6] == "yes: " + REASONS["no-letters"]
        finally:
            browser.close()


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
