"""The README's quick-start, run as printed (its own curl commands), then its browse step in a real Chromium.

If the README's commands stop working (a moved example file, a changed endpoint, a wrong body), this fails; and
the decisions page it points to must show the decision those commands just made.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

from tests.conftest import ADMIN_TOKEN, ROOT
from tests.integration.conftest import PROD_P6
from tests.support.browser import authorize, open_page, screenshot, then_ready, wait_for
from tests.support.browser import browser as new_browser
from tests.support.services import missing

README_URL = "http://127.0.0.1:8181"


def _quick_start() -> str:
    """The README's shell block that records the demo project and asks for a decision."""
    blocks = re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    found = [block for block in blocks if "TOKEN=pst_" in block and "/v1/decisions" in block]
    assert len(found) == 1, "the README has one quick-start block with TOKEN=pst_… and a decision"
    return found[0]


def _documents(text: str) -> list:
    decoder, position, out = json.JSONDecoder(), 0, []
    while position < len(text):
        if text[position].isspace():
            position += 1
            continue
        value, position = decoder.raw_decode(text, position)
        out.append(value)
    return out


def test_the_readme_quick_start_works_as_printed_and_its_browse_step_shows_the_decision(server_factory, tmp_path):
    from selenium.webdriver.common.by import By

    if shutil.which("curl") is None:
        missing("curl", "the README's commands use curl", "apt-get install curl")
    server = server_factory({"POLICY_SERVER_DATA_DIR": str(tmp_path / "data"), "POLICY_SERVER_ENGINE_WORKERS": "1"})
    script = _quick_start().replace(README_URL, server.url)
    script = re.sub(r"^TOKEN=pst_\S*", f"TOKEN={ADMIN_TOKEN}", script, flags=re.M)
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, capture_output=True, timeout=120)
    assert run.returncode == 0, run.stderr.decode()
    recorded, stage, decision, log = _documents(run.stdout.decode())
    assert recorded["applied"] == 25 and recorded["stale"] == 0
    assert [p["name"] for p in stage["queue"]][0] == PROD_P6
    assert decision["allow"] is False
    assert [r["code"] for r in decision["reasons"]] == ["verification_in_progress"]
    assert decision["id"] in [d["id"] for d in log["items"]]  # "why is my Promotion pending?"

    driver = new_browser(1400, 1400)
    try:
        open_page(driver, f"{server.url}/ui/")
        authorize(driver, ADMIN_TOKEN)
        then_ready(driver, wait_for(driver, "li.ns[data-namespace='kargo-demo'] li[data-stage='prod'] a").click)
        queue = driver.find_element(By.CSS_SELECTOR, f"#queue tr[data-promotion='{PROD_P6}']").text
        assert "deny" in queue and "verification_in_progress" in queue
        shown = [r.get_attribute("data-id") for r in driver.find_elements(By.CSS_SELECTOR, "#decisions tbody tr")]
        assert shown == [decision["id"]]
        screenshot(driver, "readme-browse-step")
    finally:
        driver.quit()
