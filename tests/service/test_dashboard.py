"""The dashboard in a real headless Chromium against the app on a real uvicorn server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from actwatch.service.events import AlertRecord, Event, FrameOverlay, TrackOverlay
from tests.support.browser import chromium, image_loaded, page_problems

from .conftest import CAMERA_PASSWORD, TOKEN, FakeController, LiveServer, frame, services_of

WAIT_S = 20  # upper bound for the page to catch up; the test passes as soon as it does

pytestmark = pytest.mark.slow


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    with chromium(tmp_path / "chromium-profile") as driver:
        yield driver


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
        assert page_problems(browser) == []

        # a wrong token brings the sign-in form back
        browser.get(f"{server.url}/#token=wrong-token-0123456789")
        browser.refresh()
        wait.until(lambda d: d.find_element(By.ID, "auth").is_displayed())
        wait.until(lambda d: "not accepted" in d.find_element(By.ID, "auth-error").text)
        assert not browser.find_element(By.ID, "content").is_displayed()


def test_live_tile_shows_frames_boxes_and_the_camera_state(
    app: FastAPI, controller: FakeController, browser: WebDriver
) -> None:
    sink = services_of(app).sink
    wait = WebDriverWait(browser, WAIT_S)
    tile = '.tile[data-camera-id="cam1"]'
    box = TrackOverlay(4, (20.0, 20.0, 80.0, 110.0), 0.9, "falling", 0.77)

    def frame_processed() -> bool:  # what the pipeline does for each processed frame; False: keep polling
        sink.emit_tracks(FrameOverlay("cam1", time.time(), (box,)), frame())
        return False

    with LiveServer(app) as server:
        browser.get(f"{server.url}/#token={TOKEN}")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, tile + " .state"))
        assert browser.find_element(By.CSS_SELECTOR, tile + " .state").text == "streaming"
        assert not browser.find_elements(By.CSS_SELECTOR, '.tile[data-camera-id="cam2"]')  # disabled: no tile
        # each poll hands the sink one more frame, until the page has subscribed, loaded it and drawn the box
        wait.until(lambda d: frame_processed() or image_loaded(d, tile + " img.live-frame"))
        wait.until(
            lambda d: (
                frame_processed()
                or d.find_element(By.CSS_SELECTOR, tile + " canvas").get_attribute("data-labels") == "#4 falling"
            )
        )
        src = browser.find_element(By.CSS_SELECTOR, tile + " img.live-frame").get_attribute("src") or ""
        assert "/cameras/cam1/latest.jpg?expires=" in src and TOKEN not in src

        controller.states["cam1"] = (
            "reconnecting",
            f"connection refused by rtsp://admin:{CAMERA_PASSWORD}@10.0.0.5/live",
        )
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, tile + " .state").text == "reconnecting")
        error = browser.find_element(By.CSS_SELECTOR, tile + " .tile-error").text
        assert error.startswith("last error: connection refused") and CAMERA_PASSWORD not in browser.page_source
        assert page_problems(browser) == []
