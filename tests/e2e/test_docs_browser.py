"""The API docs in a real headless Chromium: run ListDecisions with "Try it out" and see a decision id."""

from __future__ import annotations

import time

import httpx

from tests.conftest import ADMIN, ADMIN_TOKEN
from tests.support.browser import browser as new_browser
from tests.support.browser import screenshot


def test_list_decisions_runs_from_the_docs_page(server_factory, fixtures_dir, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as until
    from selenium.webdriver.support.ui import WebDriverWait

    server = server_factory({"POLICY_SERVER_DATA_DIR": str(tmp_path / "data"), "POLICY_SERVER_ENGINE_WORKERS": "1"})
    with httpx.Client(base_url=server.url, timeout=30, headers=ADMIN) as http:
        http.post("/v1/state", content=(fixtures_dir / "list-kargo-demo.json").read_bytes()).raise_for_status()
        decision = http.post(
            "/v1/decisions",
            json={"promotion": {"namespace": "kargo-demo", "name": "prod.01kztrdxmgg3c76w16pjvk9zds.759376c"}},
        ).json()

    browser = new_browser()
    try:
        browser.get(f"{server.url}/docs/")
        wait = WebDriverWait(browser, 30)
        # The docs page is open; "Authorize" takes the token that "Try it out" then sends.
        wait.until(until.element_to_be_clickable((By.CSS_SELECTOR, ".auth-wrapper .authorize"))).click()
        field = wait.until(until.presence_of_element_located((By.CSS_SELECTOR, ".auth-container input")))
        field.send_keys(ADMIN_TOKEN)
        browser.find_element(By.CSS_SELECTOR, ".auth-btn-wrapper .authorize").click()
        browser.find_element(By.CSS_SELECTOR, ".auth-btn-wrapper .btn-done").click()
        operation = wait.until(until.presence_of_element_located((By.ID, "operations-decisions-ListDecisions")))
        operation.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
        wait.until(
            until.element_to_be_clickable((By.CSS_SELECTOR, "#operations-decisions-ListDecisions .try-out__btn"))
        ).click()
        wait.until(
            until.element_to_be_clickable((By.CSS_SELECTOR, "#operations-decisions-ListDecisions .execute"))
        ).click()
        body = wait.until(
            until.presence_of_element_located(
                (
                    By.CSS_SELECTOR,
                    "#operations-decisions-ListDecisions .live-responses-table .response-col_description pre",
                )
            )
        )
        deadline = time.monotonic() + 20
        while decision["id"] not in body.text and time.monotonic() < deadline:
            time.sleep(0.2)
        browser.execute_script("arguments[0].scrollIntoView();", body)
        screenshot(browser, "docs-list-decisions")
        assert decision["id"] in body.text
        assert "verification_in_progress" in body.text
        # "Try it out" starts unfiltered: the examples are in the descriptions, not filled in as values.
        url = browser.find_element(By.CSS_SELECTOR, "#operations-decisions-ListDecisions .request-url pre").text
        query = url.split("/v1/decisions", 1)[1].lstrip("?")
        assert {pair.split("=")[0] for pair in query.split("&") if pair} <= {"limit"}, url  # the page size only
    finally:
        browser.quit()
