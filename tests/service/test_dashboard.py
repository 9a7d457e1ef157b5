"""The dashboard in a real headless Chromium against the app on a real uvicorn server."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from actwatch.service.events import AlertRecord, Event

from .conftest import CAMERA_PASSWORD, TOKEN, LiveServer, frame, services_of

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT_S = 20  # upper bound for the page to catch up; the test passes as soon as it does

pytestmark = pytest.mark.slow


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail(f"the dashboard test needs {CHROMIUM} and {CHROMEDRIVER} (Debian: chromium chromium-driver)")
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
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)


def image_loaded(driver: WebDriver, css: str) -> bool:
    return bool(
        driver.execute_script(
            "const img = document.querySelector(arguments[0]);return !!img && img.complete && img.naturalWidth > 0;",
            css,
        )
    )


def test_dashboard_shows_cameras_and_live_events(app: FastAPI, browser: WebDriver) -> None:
    sink = services_of(app).sink
    now = time.time()  # recent: the purge at start-up removes events older than the retention
    stored = Event("cam1", 3, "fighting", 0.91, now - 60, now - 59, (10.0, 20.0, 60.0, 110.0), id="stored01")
    sink.emit_event(AlertRecord(stored, frame(), None))  # before the server starts: only in the store
    wait = WebDriverWait(browser, WAIT_S)

    with LiveServer(app) as server:
        browser.get(f"{server.url}/#token={TOKEN}")
        # cameras with their state, on the Cameras view
        wait.until(lambda d: d.find_element(By.ID, "nav").is_displayed())
        browser.find_element(By.CSS_SELECTOR, '#nav a[data-view="cameras"]').click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, 'tr[data-camera-id="cam1"] .state'))
        row = browser.find_element(By.CSS_SELECTOR, 'tr[data-camera-id="cam1"]')
        assert "streaming" in row.text and "Front door" in row.text
        assert "disabled" in browser.find_element(By.CSS_SELECTOR, 'tr[data-camera-id="cam2"]').text
        assert CAMERA_PASSWORD not in browser.page_source
        assert "token=" not in browser.current_url  # taken from the fragment, then removed
        browser.find_element(By.CSS_SELECTOR, '#nav a[data-view="live"]').click()
        # recent events from GET /events, with the snapshot fetched using the token
        wait.until(lambda d: image_loaded(d, '#recent-events li[data-event-id="stored01"] img'))
        # live: wait for the WebSocket, then emit from this thread (the pipeline's role)
        wait.until(lambda d: d.find_element(By.ID, "ws-status").text == "live")
        live = Event("cam1", 5, "falling", 0.88, now - 2, now, (20.0, 10.0, 80.0, 100.0), id="live0001")
        sink.emit_event(AlertRecord(live, frame(), None))
        item_css = '#live-events li[data-event-id="live0001"]'
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, item_css))
        text = browser.find_element(By.CSS_SELECTOR, item_css).text
        assert "falling" in text and "88%" in text and "cam1" in text
        wait.until(lambda d: image_loaded(d, item_css + " img"))
        # the recent list refreshes after a live event
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '#recent-events li[data-event-id="live0001"]'))
        problems = [
            entry["message"]
            for entry in browser.get_log("browser")  # type: ignore[attr-defined]  # Chrome-only API
            if entry["level"] == "SEVERE" or "Content Security Policy" in entry["message"]
        ]
        assert problems == []

        # a wrong token brings the sign-in form back
        browser.get(f"{server.url}/#token=wrong-token-0123456789")
        browser.refresh()
        wait.until(lambda d: d.find_element(By.ID, "auth").is_displayed())
        wait.until(lambda d: "not accepted" in d.find_element(By.ID, "auth-error").text)
        assert not browser.find_element(By.ID, "content").is_displayed()
