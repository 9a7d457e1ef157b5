"""Headless Chromium (Debian's ``chromium`` and ``chromium-driver``) driven by Selenium, for dashboard tests.

Screenshots go to ``$ACTWATCH_SCREENSHOTS`` when set (CI keeps them as artefacts), else to the test's
temporary folder.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@contextmanager
def chromium(profile_dir: Path, width: int = 1280, height: int = 900) -> Iterator[WebDriver]:
    """A headless Chromium with a fresh profile in ``profile_dir``, quit (and the profile removed) after."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail(f"the dashboard tests need {CHROMIUM} and {CHROMEDRIVER} (Debian: chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--autoplay-policy=no-user-gesture-required",
        f"--user-data-dir={profile_dir}",
        f"--window-size={width},{height}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile_dir, ignore_errors=True)


def screenshot_dir(tmp_path: Path) -> Path:
    """Where screenshots go: ``$ACTWATCH_SCREENSHOTS`` or ``tmp_path/screenshots``."""
    folder = Path(os.environ.get("ACTWATCH_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def image_loaded(driver: WebDriver, css: str) -> bool:
    """Whether the ``<img>`` at ``css`` has loaded a picture."""
    return bool(
        driver.execute_script(
            "const img = document.querySelector(arguments[0]);return !!img && img.complete && img.naturalWidth > 0;",
            css,
        )
    )


def page_problems(driver: WebDriver) -> list[str]:
    """Severe console messages and Content-Security-Policy reports since the last call."""
    return [
        entry["message"]
        for entry in driver.get_log("browser")  # type: ignore[attr-defined]  # Chrome-only API
        if entry["level"] == "SEVERE" or "Content Security Policy" in entry["message"]
    ]
