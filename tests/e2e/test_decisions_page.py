"""The decisions page (/ui/) in a real headless Chromium, on the demo project: what on-call people see.

The page is driven as a person would: it asks for a token (as the docs' Authorize does), shows a Stage's queue
in Kargo's order with each Promotion's latest decision, the timeline with the policy revisions that decided,
the filtered log, and one decision with its input and each policy's result. A namespace-limited token sees
its own namespace only. Screenshots land in test-artifacts/.
"""

from __future__ import annotations

import copy
import json

import httpx
import pytest

from tests.conftest import ADMIN, ADMIN_TOKEN
from tests.integration.conftest import PROD_P6, PROD_P7
from tests.support.browser import authorize, open_page, screenshot, then_ready, wait_for
from tests.support.browser import browser as new_browser

UAT_P = "uat.01kztre7ng6jgszv7zxzzr314s.0ccf689"


def _renamed(document: dict, namespace: str) -> dict:
    """The demo project's objects as a second Kargo project (same shapes, another namespace)."""
    moved = copy.deepcopy(document)
    for item in moved["items"]:
        item["metadata"]["namespace"] = namespace
    return moved


@pytest.fixture
def demo(server_factory, fixtures_dir, tmp_path):
    """A server with the demo project (and a copy as project `payments`), decisions made over time, and a policy
    revision changed half-way."""
    server = server_factory({"POLICY_SERVER_DATA_DIR": str(tmp_path / "data"), "POLICY_SERVER_ENGINE_WORKERS": "1"})
    listing = json.loads((fixtures_dir / "list-kargo-demo.json").read_text())
    stream = (fixtures_dir / "watch-prod-verification-failed.jsonl").read_text().splitlines()

    def decide(http, name, namespace="kargo-demo"):
        response = http.post("/v1/decisions", json={"promotion": {"namespace": namespace, "name": name}})
        response.raise_for_status()
        return response.json()

    with httpx.Client(base_url=server.url, timeout=30, headers=ADMIN) as http:
        http.post("/v1/state", json=listing).raise_for_status()
        http.post("/v1/state", json=_renamed(listing, "payments")).raise_for_status()
        made = {"uat": decide(http, UAT_P), "verifying": decide(http, PROD_P6)}
        decide(http, PROD_P6)  # the same answer again: folded into the previous entry
        decide(http, PROD_P6, "payments")
        # A new revision of a policy: the decisions after it were made by another policy set.
        http.patch("/v1/policies/block-while-verifying", json={"description": "on-call note"}).raise_for_status()
        # The verification fails: the queue behind it is to be cancelled.
        http.post(
            "/v1/state", content="\n".join(stream[:7]), headers={"content-type": "application/x-ndjson"}
        ).raise_for_status()
        made["failed"] = decide(http, PROD_P6)
        queue = [p["name"] for p in http.get("/v1/namespaces/kargo-demo/stages/prod").json()["queue"]]
        reader = http.post("/v1/tokens", json={"name": "payments-oncall", "role": "reader", "namespaces": ["payments"]})
        reader.raise_for_status()
    assert made["verifying"]["allow"] is False and made["failed"]["actions"]
    return server, made, queue, reader.json()["token"]


def test_on_call_walks_from_a_stage_queue_to_the_decision_that_blocked_it(demo):
    from selenium.webdriver.common.by import By

    server, made, queue, _ = demo
    driver = new_browser(1400, 1800)
    try:
        open_page(driver, f"{server.url}/ui/")
        # No token yet: the page says what it needs, the way the API does, and shows no data.
        assert "needs a token" in driver.find_element(By.ID, "notice").text
        assert driver.find_elements(By.CSS_SELECTOR, "#decisions tbody tr") == []

        authorize(driver, ADMIN_TOKEN)
        assert driver.find_element(By.ID, "authorize").text == "Authorized"
        projects = wait_for(driver, "#namespaces li.ns[data-namespace='kargo-demo'] li[data-stage='prod'] a")
        assert "2 queued" in projects.text
        then_ready(driver, projects.click)
        wait_for(driver, "#queue tbody tr")
        assert driver.find_element(By.TAG_NAME, "h1").text == "Stage kargo-demo/prod"

        # The queue in Kargo's order, each Promotion with its latest decision, reasons and actions.
        rows = driver.find_elements(By.CSS_SELECTOR, "#queue tbody tr")
        assert [row.get_attribute("data-promotion") for row in rows] == queue == [PROD_P6, PROD_P7]
        first = rows[0].text
        assert "deny" in first and "verification_failed" in first and "cancel-queue-on-failure" in first
        assert first.count("abort") == 2 and PROD_P7 in first
        assert "no decision" in rows[1].text
        assert "Failed" in driver.find_element(By.ID, "stage-facts").text

        # The timeline: every decision of the Stage, denials on their lane, and the two policy sets that made them.
        marks = driver.find_elements(By.CSS_SELECTOR, "#timeline g.mark")
        assert {m.get_attribute("data-id") for m in marks} == {made["verifying"]["id"], made["failed"]["id"]}
        assert all("deny" in m.get_attribute("class") for m in marks)
        sets = [s.text for s in driver.find_elements(By.CSS_SELECTOR, "#timeline .revision-legend")]
        assert len(sets) == 2 and "block-while-verifying@1" in sets[0] and "block-while-verifying@2" in sets[1]
        # The log shows the fold: the same answer twice is one entry with its count.
        log = {r.get_attribute("data-id"): r.text for r in driver.find_elements(By.CSS_SELECTOR, "#decisions tbody tr")}
        assert set(log) == {made["verifying"]["id"], made["failed"]["id"]}
        assert "×2" in log[made["verifying"]["id"]]
        screenshot(driver, "decisions-page-stage")

        # Filters as in GET /v1/decisions, kept in the address so that a link can be shared.
        field = driver.find_element(By.CSS_SELECTOR, "#filters input[name=code]")
        field.send_keys("verification_in_progress")
        then_ready(driver, driver.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click)
        assert "code=verification_in_progress" in driver.current_url
        ids = [r.get_attribute("data-id") for r in driver.find_elements(By.CSS_SELECTOR, "#decisions tbody tr")]
        assert ids == [made["verifying"]["id"]]

        # One decision: its input and each policy's own result.
        open_page(driver, f"{server.url}/ui/#/?namespace=kargo-demo&stage=prod")
        then_ready(driver, wait_for(driver, "#queue tbody tr a.details").click)
        wait_for(driver, "#policy-results")
        assert made["failed"]["id"] in driver.find_element(By.TAG_NAME, "h1").text
        results = {
            r.get_attribute("data-policy"): r.text for r in driver.find_elements(By.CSS_SELECTOR, "#policy-results tr")
        }
        assert (
            "deny" in results["cancel-queue-on-failure"] and "verification_failed" in results["cancel-queue-on-failure"]
        )
        assert "allow" in results["block-while-verifying"] and "2" in results["block-while-verifying"]
        assert len(driver.find_elements(By.CSS_SELECTOR, "#actions tbody tr")) == 2
        shown = json.loads(driver.find_element(By.CSS_SELECTOR, "#input pre").text)
        assert shown["promotion"]["name"] == PROD_P6 and shown["namespace"] == "kargo-demo"
        screenshot(driver, "decisions-page-decision")

        # Everything came from this server: no CDN, nothing fetched elsewhere (the page works offline).
        sources = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert sources and all(s.startswith(server.url) for s in sources), sources
        assert not [e for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]
    finally:
        driver.quit()


def test_a_namespace_limited_token_sees_only_its_namespace(demo):
    from selenium.webdriver.common.by import By

    server, made, _, payments_token = demo
    driver = new_browser(1400, 1200)
    try:
        open_page(driver, f"{server.url}/ui/")
        authorize(driver, payments_token)
        wait_for(driver, "#namespaces li.ns")
        assert [
            n.get_attribute("data-namespace") for n in driver.find_elements(By.CSS_SELECTOR, "#namespaces li.ns")
        ] == ["payments"]
        stages = {row.get_attribute("data-id") for row in driver.find_elements(By.CSS_SELECTOR, "#decisions tbody tr")}
        assert len(stages) == 1 and made["verifying"]["id"] not in stages  # only the payments decision

        # Asking for another namespace by its address is refused, and nothing of it shows.
        open_page(driver, f"{server.url}/ui/#/?namespace=kargo-demo&stage=prod")
        assert "403" in driver.find_element(By.ID, "notice").text
        assert driver.find_elements(By.CSS_SELECTOR, "#queue tbody tr") == []
        assert made["failed"]["id"] not in driver.find_element(By.TAG_NAME, "body").text
        open_page(driver, f"{server.url}/ui/#/decision/{made['failed']['id']}")
        assert "403" in driver.find_element(By.ID, "notice").text or "404" in driver.find_element(By.ID, "notice").text
        assert driver.find_elements(By.ID, "policy-results") == []
        screenshot(driver, "decisions-page-limited-token")
    finally:
        driver.quit()
