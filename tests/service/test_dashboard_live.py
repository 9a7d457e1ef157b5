"""The dashboard in headless Chromium against the whole service: a file camera (vtest.avi, looping in real
time), the real detector and ONNX model, a real SQLite file, uvicorn.

The alert rule fires for every tracked person (the test model is untrained), at most once per 30 s per
track, so alerts come steadily. The tests run in file order on one service and one browser; each waits on
what the page shows (``WebDriverWait``), never on a fixed delay. Screenshots of each page are saved (see
:mod:`tests.support.browser`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from actwatch.config import AppConfig
from actwatch.service.registry import CAMERA_FILE_NAME, CameraFile
from tests.service.live import LiveService
from tests.support.browser import chromium, image_loaded, page_problems, screenshot_dir
from tests.support.net import free_port

pytestmark = pytest.mark.slow

TOKEN = "dashboard-live-token-0123456789ab"
WAIT_S = 180  # upper bound on a loaded 2-core machine (detector on the CPU); passes as soon as the page is ready


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, vtest_path: Path, detector_weights: Path, exported_model_dir: Path
) -> Iterator[LiveService]:
    config = AppConfig.model_validate(
        {
            "data_dir": str(tmp_path_factory.mktemp("dashboard-live")),
            "server": {"token": TOKEN, "port": free_port()},
            "cameras": [{"id": "hall", "name": "Hall", "url": str(vtest_path), "loop": True, "realtime": True}],
            "sources": {"file_dirs": [str(vtest_path.parent)]},
            "detector": {"weights": str(detector_weights), "person_class_ids": [0, 1]},
            "model": {"dir": str(exported_model_dir)},
            "pipeline": {"stride": 2},
            "alerts": {
                "rules": [
                    {"label": "walking", "threshold": 0.01, "n": 1, "m": 1, "cooldown_s": 30, "min_track_age_s": 0}
                ]
            },
            "media": {"clips": {"pre_roll_s": 1.0, "post_roll_s": 1.0, "fps": 5}},
        }
    )
    live = LiveService(config).start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return screenshot_dir(tmp_path_factory.mktemp("dashboard-shots"))


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory, service: LiveService) -> Iterator[WebDriver]:
    with chromium(tmp_path_factory.mktemp("chromium") / "profile", width=1400, height=1000) as driver:
        driver.get(f"http://127.0.0.1:{service.port}/#token={TOKEN}")
        yield driver


def wait(driver: WebDriver) -> WebDriverWait[WebDriver]:
    # The live pages re-render their lists while alerts keep coming: an element found, then read, may have
    # been replaced in between. That is "not yet" (asked again at the next poll), never a failure.
    return WebDriverWait(driver, WAIT_S, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,))


def open_view(driver: WebDriver, name: str) -> None:
    wait(driver).until(lambda d: d.find_element(By.ID, "nav").is_displayed())
    driver.find_element(By.CSS_SELECTOR, f'#nav a[data-view="{name}"]').click()
    wait(driver).until(lambda d: d.find_element(By.ID, f"view-{name}").is_displayed())


def tile_frames(driver: WebDriver, camera: str) -> int:
    value = driver.execute_script(
        "const img = document.querySelector(`.tile[data-camera-id='${arguments[0]}'] img.live-frame`);"
        "return img && img.complete && img.naturalWidth > 0 ? Number(img.dataset.frames || 0) : 0;",
        camera,
    )
    return int(value or 0)


def drawn_pixels(driver: WebDriver, canvas_css: str) -> int:
    """Pixels of the canvas that something was drawn on (alpha > 0)."""
    return int(
        driver.execute_script(
            "const c = document.querySelector(arguments[0]); if (!c || !c.width) return 0;"
            "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;"
            "for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n;",
            canvas_css,
        )
    )


def test_live_tile_shows_changing_frames_with_track_boxes(
    service: LiveService, browser: WebDriver, shots: Path
) -> None:
    open_view(browser, "live")
    wait(browser).until(lambda d: tile_frames(d, "hall") >= 1)
    first_src = browser.find_element(By.CSS_SELECTOR, ".tile[data-camera-id='hall'] img.live-frame").get_attribute(
        "src"
    )
    seen = tile_frames(browser, "hall")
    wait(browser).until(lambda d: tile_frames(d, "hall") >= seen + 3)  # new frames keep arriving
    assert (
        browser.find_element(By.CSS_SELECTOR, ".tile[data-camera-id='hall'] img.live-frame").get_attribute("src")
        != first_src
    )
    assert "token" not in (first_src or "") and TOKEN not in (first_src or "")  # a signed URL, not the token
    canvas = ".tile[data-camera-id='hall'] canvas.overlay"
    wait(browser).until(lambda d: int(d.find_element(By.CSS_SELECTOR, canvas).get_attribute("data-boxes") or 0) > 0)
    wait(browser).until(lambda d: drawn_pixels(d, canvas) > 0)
    labels = browser.find_element(By.CSS_SELECTOR, canvas).get_attribute("data-labels") or ""
    assert labels.startswith("#")  # track ids drawn
    state = browser.find_element(By.CSS_SELECTOR, ".tile[data-camera-id='hall'] .state").text
    assert state == "streaming"
    browser.save_screenshot(str(shots / "live.png"))
    assert page_problems(browser) == []


def _feed_event_with_clip(driver: WebDriver, service: LiveService) -> str | None:
    """The id of an event in the live feed whose clip is written, if there is one yet."""
    ids = driver.execute_script(  # read in one go: the feed grows while we look
        "return [...document.querySelectorAll('#live-events li[data-event-id]')].map((li) => li.dataset.eventId);"
    )
    for event_id in ids:
        if service.http.get(f"/events/{event_id}").json().get("clip_url"):
            return str(event_id)
    return None


def test_alert_opens_with_snapshot_and_clip_and_is_acknowledged(
    service: LiveService, browser: WebDriver, shots: Path
) -> None:
    open_view(browser, "live")
    wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#live-events li[data-event-id]"))
    wait(browser).until(lambda d: image_loaded(d, "#live-events li[data-event-id] img"))
    # the stored events beside the feed follow it, also while alerts keep coming (at most one reload a second)
    wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#recent-events li[data-event-id]"))
    browser.save_screenshot(str(shots / "live.png"))  # tiles, boxes and the alert feed
    # At most media.clips.max_pending clips are collected at once, and this camera alerts often, so
    # some events get no clip (logged): open one of the feed whose clip the service is writing.
    event_id = wait(browser).until(lambda d: _feed_event_with_clip(d, service))
    item = browser.find_element(By.CSS_SELECTOR, f'#live-events li[data-event-id="{event_id}"]')
    item.find_element(By.CSS_SELECTOR, "button.link-button").click()
    wait(browser).until(lambda d: d.find_element(By.ID, "event-detail").is_displayed())
    wait(browser).until(lambda d: d.find_element(By.ID, "event-detail").get_attribute("data-event-id") == event_id)
    wait(browser).until(lambda d: image_loaded(d, "#detail-snapshot"))
    wait(browser).until(lambda d: image_loaded(d, "#detail-crops"))
    # the clip is written after its post-roll; the page looks again until it is there and plays it
    # (1 s before and 1 s after the event: at least a second long, whatever rate the camera was processed at)
    wait(browser).until(
        lambda d: d.execute_script(
            "const v = document.getElementById('detail-clip'); return v.readyState >= 2 && v.duration >= 1;"
        )
    )
    assert (browser.find_element(By.ID, "detail-clip").get_attribute("src") or "").startswith("http")
    browser.save_screenshot(str(shots / "history.png"))

    browser.find_element(By.ID, "review-ack").click()
    wait(browser).until(
        lambda d: d.find_element(By.ID, "event-detail").get_attribute("data-review-state") == "acknowledged"
    )
    stored: dict[str, Any] = service.http.get(f"/events/{event_id}").json()
    assert stored["review_state"] == "acknowledged"
    row = f'#history-rows tr[data-event-id="{event_id}"] .review'
    wait(browser).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, row) and d.find_element(By.CSS_SELECTOR, row).text == "acknowledged"
    )
    assert page_problems(browser) == []


def test_camera_added_in_the_ui_starts_streaming(
    service: LiveService, browser: WebDriver, shots: Path, vtest_path: Path
) -> None:
    open_view(browser, "cameras")
    browser.find_element(By.ID, "camera-id").send_keys("yard")
    browser.find_element(By.ID, "camera-name").send_keys("Yard")
    browser.find_element(By.ID, "camera-url").send_keys(str(vtest_path))
    browser.find_element(By.ID, "camera-save").click()
    state = 'tr[data-camera-id="yard"] .state'
    wait(browser).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, state) and d.find_element(By.CSS_SELECTOR, state).text == "streaming"
    )
    assert browser.find_element(By.ID, "camera-error").text == ""
    browser.save_screenshot(str(shots / "cameras.png"))
    open_view(browser, "live")
    wait(browser).until(lambda d: tile_frames(d, "yard") >= 2)
    assert page_problems(browser) == []


def test_zone_drawn_on_the_live_frame_is_stored(service: LiveService, browser: WebDriver, shots: Path) -> None:
    open_view(browser, "cameras")
    wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, 'tr[data-camera-id="hall"] button.zone'))
    browser.find_element(By.CSS_SELECTOR, 'tr[data-camera-id="hall"] button.zone').click()
    wait(browser).until(lambda d: image_loaded(d, "#zone-image"))
    canvas = browser.find_element(By.ID, "zone-canvas")
    width, height = canvas.size["width"], canvas.size["height"]
    # four corners around the middle of the frame (offsets from the element's centre)
    for dx, dy in ((-0.3, -0.3), (0.3, -0.3), (0.3, 0.3), (-0.3, 0.3)):
        ActionChains(browser).move_to_element_with_offset(canvas, int(dx * width), int(dy * height)).click().perform()
    wait(browser).until(lambda d: d.find_element(By.ID, "zone-canvas").get_attribute("data-points") == "4")
    # the keyboard draws too: Enter adds a corner at the cross, Backspace takes the last one away
    canvas.send_keys(Keys.ARROW_LEFT, Keys.ENTER)
    wait(browser).until(lambda d: d.find_element(By.ID, "zone-canvas").get_attribute("data-points") == "5")
    canvas.send_keys(Keys.BACKSPACE)
    wait(browser).until(lambda d: d.find_element(By.ID, "zone-canvas").get_attribute("data-points") == "4")
    browser.find_element(By.ID, "zone-save").click()
    wait(browser).until(lambda d: "Zone saved" in d.find_element(By.ID, "zone-status").text)
    browser.save_screenshot(str(shots / "zone.png"))

    zone = service.camera("hall")["zone"]
    assert len(zone) == 4
    frame_w, frame_h = 768, 576  # vtest.avi
    xs, ys = sorted(p[0] for p in zone), sorted(p[1] for p in zone)
    assert 0.1 * frame_w < xs[0] < 0.3 * frame_w and 0.7 * frame_w < xs[-1] < 0.9 * frame_w
    assert 0.1 * frame_h < ys[0] < 0.3 * frame_h and 0.7 * frame_h < ys[-1] < 0.9 * frame_h
    saved = CameraFile(service.config.data_dir / CAMERA_FILE_NAME).load()  # what a restart reads
    assert saved is not None
    assert next(c.zone for c in saved if c.id == "hall") is not None
    assert page_problems(browser) == []
