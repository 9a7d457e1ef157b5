"""The upload-a-video, model/system and API docs pages in a real headless Chromium, against the app with the
real compute pipeline on a real uvicorn server (no internet: every script and style comes from the package).

Screenshots of each page are saved as test artefacts (``$ACTWATCH_SCREENSHOTS``, else the test's temporary
folder: :func:`tests.support.browser.screenshot_dir`).
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from actwatch.service.stages import Stages
from tests.conftest import TEST_CLASSES
from tests.support.browser import chromium, page_problems, screenshot_dir

from .conftest import TOKEN, LiveServer
from .upload_support import make_clip, make_live_stages, real_app

pytestmark = pytest.mark.slow

WAIT_S = 30  # upper bound for the page to catch up; the test goes on as soon as it has
JOB_WAIT_S = 600  # the real job on a loaded CPU


@pytest.fixture(scope="module")
def clip(vtest_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(vtest_path, tmp_path_factory)


@pytest.fixture(scope="module")
def live_stages(detector_weights: Path, exported_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Stages:
    return make_live_stages(detector_weights, exported_model_dir, tmp_path_factory)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    with chromium(tmp_path / "chromium-profile") as driver:
        yield driver


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    return screenshot_dir(tmp_path)


def screenshot(driver: WebDriver, folder: Path, name: str) -> None:
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, max(900, min(int(height) + 160, 2400)))  # the whole page, not just the fold
    assert driver.save_screenshot(str(folder / f"{name}.png"))
    driver.set_window_size(1280, 900)


def js(driver: WebDriver, script: str, *args: Any) -> Any:
    return driver.execute_script(script, *args)


def no_console_errors(driver: WebDriver) -> None:
    problems = page_problems(driver)
    assert problems == [], problems


def test_uploaded_clip_shows_progress_then_people_and_annotated_video(
    browser: WebDriver,
    shots: Path,
    tmp_path: Path,
    detector_weights: Path,
    exported_model_dir: Path,
    live_stages: Stages,
    clip: Path,
) -> None:
    driver = browser
    app = real_app(tmp_path, detector_weights, exported_model_dir, live_stages)
    wait = WebDriverWait(driver, WAIT_S)
    with LiveServer(app) as server:
        driver.get(f"{server.url}/#token={TOKEN}")
        wait.until(lambda d: d.find_element(By.ID, "nav").is_displayed())
        driver.find_element(By.CSS_SELECTOR, 'a[data-view="upload"]').click()
        wait.until(lambda d: "Up to 200 MiB" in d.find_element(By.ID, "upload-limits").text)
        driver.find_element(By.ID, "upload-file").send_keys(str(clip))

        # the progress bar: shown at once, labelled with the state, filling up to 1
        wait.until(lambda d: d.find_element(By.ID, "job-progress").is_displayed())
        assert driver.find_element(By.ID, "job-title").text.startswith("people.avi")
        state = driver.find_element(By.ID, "job-state").text
        assert state.split()[0] in ("Uploading", "Queued", "Running", "Done"), state
        WebDriverWait(driver, JOB_WAIT_S).until(
            lambda d: d.find_element(By.ID, "job-state").text.startswith(("Running", "Done"))
        )
        if driver.find_element(By.ID, "job-state").text.startswith("Running"):  # an artefact, when it is seen
            screenshot(driver, shots, "upload-running")
        WebDriverWait(driver, JOB_WAIT_S).until(lambda d: d.find_element(By.ID, "job-state").text == "Done")
        assert js(driver, "return document.getElementById('job-progress').value") == 1
        assert "job=" in driver.current_url  # a reload finds the job again

        # the per-person table: probabilities high to low, the top label first
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#persons tr"))
        rows = driver.find_elements(By.CSS_SELECTOR, "#persons tr")
        for row in rows:
            cells = row.find_elements(By.TAG_NAME, "td")
            assert cells[0].text == "#" + str(row.get_attribute("data-track-id"))
            assert cells[1].text.endswith(" s") and cells[2].text in TEST_CLASSES
            scores = [float(str(m.get_attribute("value"))) for m in cells[3].find_elements(By.TAG_NAME, "meter")]
            labels = [li.find_element(By.TAG_NAME, "span").text for li in cells[3].find_elements(By.TAG_NAME, "li")]
            assert scores == sorted(scores, reverse=True) and labels[0] == cells[2].text
            assert sorted(labels) == sorted(TEST_CLASSES)

        # the annotated video plays in Chromium (H.264 decoded: its frames have the clip's size)
        WebDriverWait(driver, WAIT_S).until(
            lambda d: js(d, "const v = document.getElementById('job-video'); return v.readyState >= 2 && v.videoWidth")
        )
        assert js(driver, "const v = document.getElementById('job-video'); return [v.videoWidth, v.videoHeight]") == [
            768,
            576,
        ]
        assert TOKEN not in str(driver.find_element(By.ID, "job-video").get_attribute("src"))
        download = driver.find_element(By.ID, "job-download").get_attribute("href")
        assert download is not None and "download=true" in download and TOKEN not in download
        with urllib.request.urlopen(download) as answer:  # the signed link works without the token
            assert answer.headers["Content-Disposition"] == 'attachment; filename="people-annotated.mp4"'
            assert answer.read(12)[4:8] == b"ftyp"
        js(driver, "const v = document.getElementById('job-video'); v.currentTime = 1.5;")
        screenshot(driver, shots, "upload")
        no_console_errors(driver)


def test_too_large_upload_is_refused_with_a_clear_message(
    browser: WebDriver,
    shots: Path,
    tmp_path: Path,
    detector_weights: Path,
    exported_model_dir: Path,
    live_stages: Stages,
    clip: Path,
) -> None:
    driver = browser
    app = real_app(tmp_path, detector_weights, exported_model_dir, live_stages, max_upload_mb=0.1)
    wait = WebDriverWait(driver, WAIT_S)
    with LiveServer(app) as server:
        driver.get(f"{server.url}/#token={TOKEN}")
        wait.until(lambda d: d.find_element(By.ID, "nav").is_displayed())
        driver.get(f"{server.url}/#/upload")
        wait.until(lambda d: "Up to 0.1 MiB" in d.find_element(By.ID, "upload-limits").text)
        driver.find_element(By.ID, "upload-file").send_keys(str(clip))
        wait.until(lambda d: d.find_element(By.ID, "upload-error").text)
        message = driver.find_element(By.ID, "upload-error").text
        assert message == (
            "Not uploaded: the video is larger than 0.1 MiB, the most accepted (predictions.max_upload_mb): "
            "upload a shorter or smaller one."
        )
        assert driver.find_element(By.ID, "upload-error").get_attribute("role") == "alert"
        assert not driver.find_element(By.ID, "upload-job").is_displayed()
        assert app.state.services.predictions.jobs() == []
        screenshot(driver, shots, "upload-too-large")


def test_system_page_and_offline_docs(
    browser: WebDriver,
    shots: Path,
    tmp_path: Path,
    detector_weights: Path,
    exported_model_dir: Path,
    clip: Path,
) -> None:
    driver = browser
    # the serve wiring (one metrics registry) with a camera, so the compute loop has timings to show
    app = real_app(tmp_path, detector_weights, exported_model_dir, None, camera_file=clip)
    metrics = app.state.services.metrics.registry
    wait = WebDriverWait(driver, WAIT_S)
    with LiveServer(app) as server:
        driver.get(f"{server.url}/#token={TOKEN}")
        wait.until(lambda d: d.find_element(By.ID, "nav").is_displayed())
        WebDriverWait(driver, JOB_WAIT_S).until(
            lambda _d: (
                (metrics.get_sample_value("actwatch_stage_latency_seconds_count", {"stage": "classify"}) or 0) > 0
            )
        )
        driver.get(f"{server.url}/#/system")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#model-classes li"))
        classes = [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#model-classes li")]
        assert classes == TEST_CLASSES
        spec = driver.find_element(By.ID, "model-spec").text
        assert "8 crops at 10 fps" in spec and "64 × 64 px" in spec
        assert "never trained" in spec and "random" in spec  # the untrained test model is marked as such
        assert "CPUExecutionProvider" in driver.find_element(By.ID, "providers").text
        stages = [tr.get_attribute("data-stage") for tr in driver.find_elements(By.CSS_SELECTOR, "#stages tr")]
        assert stages == ["detect", "track", "encode", "classify"]
        detect = driver.find_element(By.CSS_SELECTOR, '#stages tr[data-stage="detect"]').text.split()
        assert int(detect[1]) > 0 and detect[3] == "ms"  # e.g. "detect 12 85.3 ms 1.02 s"
        load = driver.find_element(By.ID, "pipeline-load").text  # e.g. "Busy detect 97%, track 2%, ..."
        assert "Busy" in load and "detect " in load and "writer " in load and "Failed batches\n0" in load
        screenshot(driver, shots, "system")
        no_console_errors(driver)

        # /docs: Swagger UI from the package renders the API with no internet and no inline script
        driver.get(f"{server.url}/docs")
        WebDriverWait(driver, WAIT_S).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".swagger-ui .info .title"))
        assert "actwatch" in driver.find_element(By.CSS_SELECTOR, ".swagger-ui .info .title").text
        wait.until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "#operations-predictions-create_prediction_predictions_post")
        )
        screenshot(driver, shots, "docs")
        no_console_errors(driver)
