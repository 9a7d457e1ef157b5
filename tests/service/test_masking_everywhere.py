"""Property: a camera password never shows, whatever characters it holds, wherever its URL is shown.

Generated user names and passwords hold any character a YAML author may type unencoded (spaces,
quotes, ``< > @ : / # ? %``, unicode), only control characters excepted (the URL policy refuses them).
Each example goes through every place a camera URL reaches people: ``POST``/``GET``/``PATCH
/cameras`` (201 or 422), a camera's ``last_error``, the log line of a camera that fails to start,
``SourceSpec.masked``/``redact`` (what the reader logs and reports), ``validate-config --show``, and
configuration errors.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from actwatch.capture.sources import SourceSpec, mask_credentials
from actwatch.cli.main import app as cli_app
from actwatch.config import AppConfig, CameraConfig, ConfigError, load_config
from actwatch.errors import SourceError
from actwatch.service.app import create_app
from actwatch.service.cameras import CameraService
from actwatch.service.metrics import ServiceMetrics
from actwatch.service.registry import CameraRegistry
from tests.service.conftest import FakeController, FakeStatus, auth, make_config

HOST = "10.0.0.9"
# Any character but control characters (C0, DEL, C1) and surrogates.
_TEXT = st.characters(blacklist_categories=("Cc", "Cs"))
users = st.text(_TEXT.filter(lambda c: c != ":"), max_size=12)
passwords = st.text(_TEXT, min_size=3, max_size=24)
PROPERTY = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


def camera_url(user: str, password: str) -> str:
    return f"rtsp://{user}:{password}@{HOST}:554/live"


def shown_without(password: str, *texts: str) -> None:
    for text in texts:
        assert password not in text, text


def _fixed_texts() -> str:
    """The fixed words of the messages a camera URL may appear in (a password that is one of them shows
    rightly): the messages for URLs whose password is a placeholder, plus the surrounding phrases."""
    texts = [
        "could not open: 401 Unauthorized cameras.0.url camera door invalid configuration OK (1 cameras",
        "SourceSpec(kind='rtsp', masked='', is_live=True) Value error, cannot open [rtsp @ 0x55]",
    ]
    for url in ("rtsp://u:p@/x", "rtsp://u:p@h:99999/x", "ftp://u:p@h/x", "rtmp://u:p@h/x", "rtsp://u:p/@h/x"):
        try:
            SourceSpec.parse(url)
        except SourceError as exc:
            texts.append(str(exc))
    return "\n".join(texts)


FIXED_TEXTS = _fixed_texts()


def usable(user: str, password: str) -> None:
    """Skip examples whose password also occurs in what may rightly be shown (the user name, the host,
    the words of the message)."""
    masked_form = f"rtsp://{user}:***@{HOST}:554/live {FIXED_TEXTS}"
    forms = (masked_form, repr(masked_form), json.dumps(masked_form), ascii(masked_form))
    assume(password.strip() == password and not any(password in form for form in forms))


def test_the_mask_of_a_whole_url_is_exact_for_ordinary_user_names() -> None:
    @PROPERTY
    @given(st.text(st.characters(whitelist_categories=("Ll", "Lu", "Nd")), min_size=1, max_size=8), passwords)
    def check(user: str, password: str) -> None:
        usable(user, password)
        assert mask_credentials(camera_url(user, password)) == f"rtsp://{user}:***@{HOST}:554/live"

    check()


@PROPERTY
@given(users, passwords)
def test_source_spec_and_free_text_never_show_the_password(user: str, password: str) -> None:
    usable(user, password)
    url = camera_url(user, password)
    message = f"[rtsp @ 0x55] could not open {url}: 401 Unauthorized"
    shown_without(password, mask_credentials(url), mask_credentials(message), mask_credentials(f"'{url}'"))
    try:
        spec = SourceSpec.parse(url)
    except SourceError as exc:  # e.g. '/' or '#' in the password: malformed, and said so masked
        shown_without(password, str(exc))
        return
    shown_without(password, spec.masked, repr(spec), str(spec), spec.redact(message), spec.redact(password))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[TestClient, FakeController]]:
    controller = FakeController()
    with TestClient(create_app(make_config(tmp_path), controller)) as c:
        yield c, controller


def test_api_responses_never_show_the_password(client: tuple[TestClient, FakeController]) -> None:
    http, controller = client
    ids = (f"cam-{n}" for n in itertools.count())

    @PROPERTY
    @given(users, passwords)
    def check(user: str, password: str) -> None:
        usable(user, password)
        url = camera_url(user, password)
        camera_id = next(ids)
        r = http.post("/cameras", json={"id": camera_id, "url": url}, headers=auth())
        if r.status_code == 422:
            shown_without(password, *(d["msg"] for d in r.json()["detail"]))
            return
        assert r.status_code == 201, r.text
        assert HOST in r.json()["url"]
        listed = http.get("/cameras", headers=auth()).json()
        patched = http.patch(f"/cameras/{camera_id}", json={"name": "renamed"}, headers=auth()).json()
        shown_without(password, r.json()["url"], patched["url"], *(c["url"] for c in listed))
        # A reader error that quotes the URL: the API shows it masked.
        statuses = controller.statuses
        controller.statuses = lambda: [FakeStatus(camera_id, "x", "failed", f"could not open {url}: 401")]  # type: ignore[method-assign]
        try:
            error = http.get(f"/cameras/{camera_id}", headers=auth()).json()["last_error"]
        finally:
            controller.statuses = statuses  # type: ignore[method-assign]
        shown_without(password, error)
        # A controller that refuses the camera with the URL in its message: 422, masked.
        controller.fail_add = SourceError(f"cannot open {url}")
        try:
            refused = http.post("/cameras", json={"id": f"{camera_id}-x", "url": url}, headers=auth())
        finally:
            controller.fail_add = None
        assert refused.status_code == 422
        shown_without(password, refused.json()["detail"])
        assert http.delete(f"/cameras/{camera_id}", headers=auth()).status_code == 204

    check()


def test_start_up_failure_log_lines_never_show_the_password(caplog: pytest.LogCaptureFixture) -> None:
    @PROPERTY
    @given(users, passwords)
    def check(user: str, password: str) -> None:
        usable(user, password)
        url = camera_url(user, password)
        try:
            camera = CameraConfig(id="door", url=url)
        except ValueError as exc:
            shown_without(password, str(exc))
            return
        controller = FakeController(fail_add=RuntimeError(f"could not open {url}: 401 Unauthorized"))
        service = CameraService(CameraRegistry([camera], max_cameras=4), controller, ServiceMetrics())
        caplog.clear()
        with caplog.at_level(logging.INFO):
            service.start_configured()
        assert caplog.records, "the failure is logged"
        shown_without(password, *(r.getMessage() for r in caplog.records), service.get("door").start_error or "")

    check()


def test_validate_config_show_and_config_errors_never_show_the_password(tmp_path: Path) -> None:
    runner = CliRunner()

    @PROPERTY
    @given(users, passwords)
    def check(user: str, password: str) -> None:
        usable(user, password)
        url = camera_url(user, password)
        good = tmp_path / "good.yaml"
        good.write_text(yaml.safe_dump({"data_dir": str(tmp_path), "cameras": [{"id": "door", "url": url}]}))
        result = runner.invoke(cli_app, ["validate-config", str(good), "--show"])
        if result.exit_code == 0:
            headline, shown = result.output.split("\n", 1)
            outputs = [headline, json.loads(shown)["cameras"][0]["url"]]
        else:  # a malformed URL (a '/' or '#' in the password): the error says so, masked
            assert isinstance(result.exception, ConfigError), result.exception
            outputs = [str(result.exception)]
        bad = tmp_path / "bad.yaml"
        bad.write_text(yaml.safe_dump({"cameras": [{"id": "door", "url": url.replace("rtsp://", "ftp://")}]}))
        with pytest.raises(ConfigError) as info:
            load_config(bad)
        outputs.append(str(info.value))
        with pytest.raises(ValueError) as direct:
            AppConfig(cameras=[{"id": "door", "url": url.replace("rtsp://", "rtmp://")}])
        outputs.append(str(direct.value))
        shown_without(password, *outputs)

    check()
