"""A headless Chromium for the stack tests: Debian's ``chromium`` and ``chromium-driver`` (installed by
``make test-deps``) driven by Selenium with explicit paths, so nothing is ever downloaded; logged in
through the Airflow UI's own form. Screenshots go to ``tests/artifacts/``."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.helpers.paths import ROOT
from tests.helpers.waiting import wait_until

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,1000",
]


def chromium(profile: Path) -> Any:
    """A new headless Chromium (``selenium.webdriver.Chrome``) with its profile in ``profile``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager: never download (both paths are given anyway)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.implicitly_wait(15)
    ARTIFACTS.mkdir(exist_ok=True)
    return driver


def log_in(driver: Any, url: str, password: str, user: str = "admin", shots: tuple[str, str] | None = None) -> None:
    """Log in through the UI's login form at ``url``; until the ``_token`` cookie is set and the home page
    shows. ``shots``: the screenshots' names of the filled form and of the home page."""
    from selenium.webdriver.common.by import By

    driver.get(f"{url}/")
    driver.find_element(By.CSS_SELECTOR, "input[name=username]").send_keys(user)
    driver.find_element(By.CSS_SELECTOR, "input[name=password]").send_keys(password)
    if shots:
        screenshot(driver, shots[0])
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(lambda: driver.get_cookie("_token") is not None, "the UI's _token cookie after logging in")
    wait_for(lambda: "Dag Runs" in body_text(driver), "the home page after logging in")
    if shots:
        screenshot(driver, shots[1])


@contextlib.contextmanager
def logged_in(profile: Path, url: str, password: str, shots: tuple[str, str]) -> Iterator[Any]:
    """Chromium logged in through the UI's form (the simple auth manager's password), quit on exit: what
    each stack test module's ``browser`` fixture yields."""
    driver = chromium(profile)
    try:
        log_in(driver, url, password, shots=shots)
        yield driver
    finally:
        driver.quit()


def screenshot(driver: Any, name: str) -> None:
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    """The browser's wait: ``wait_until`` at the pace of a page."""
    return wait_until(predicate, timeout=timeout, what=what, interval=0.5)


def body_text(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text
