"""A real headless Chromium (Debian's chromium and chromium-driver) driven by Selenium, and where screenshots go."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support.services import missing

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def browser(width: int = 1400, height: int = 2200) -> Any:
    """A new headless Chromium; skips locally (fails in CI) without the Debian packages."""
    if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
        missing("Chromium", "chromium and chromedriver are not installed", "apt-get install chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--window-size={width},{height}",
        f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def screenshot(driver: Any, name: str) -> Path:
    """Save the page as ``test-artifacts/<name>.png`` (CI keeps the folder)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


# The decisions page (/ui/) marks on <body> how many views it drew (data-renders) and whether it is loading.


def renders(driver) -> int:
    return int(driver.execute_script("return document.body.dataset.renders || '0'"))


def ready(driver, after: int = 0, timeout: float = 30) -> None:
    """Wait until the page has drawn a view newer than ``after`` and finished loading it."""
    deadline = time.monotonic() + timeout
    while renders(driver) <= after or driver.execute_script("return document.body.dataset.state") != "ready":
        assert time.monotonic() < deadline, "the page did not finish loading"
        time.sleep(0.05)


def then_ready(driver, action) -> None:
    """Do ``action`` (a click, a navigation inside the page) and wait for the view it causes."""
    before = renders(driver)
    action()
    ready(driver, before)


def open_page(driver, url: str) -> None:
    """Load ``url`` afresh (the tab keeps its token, as a reload does)."""
    driver.get("about:blank")
    driver.get(url)
    ready(driver)


def authorize(driver, token):
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "authorize").click()
    field = driver.find_element(By.ID, "token")
    field.clear()
    field.send_keys(token)
    then_ready(driver, driver.find_element(By.CSS_SELECTOR, "#auth-form button[value=authorize]").click)


def wait_for(driver, css, timeout=30):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as until
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(until.presence_of_element_located((By.CSS_SELECTOR, css)))
