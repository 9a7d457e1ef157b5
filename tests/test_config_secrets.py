"""Secrets in the configuration: ``${VAR}`` in the YAML, ``NAME_FILE`` / ``ACTWATCH_…_FILE`` Docker secrets.

Real files and real processes: the CLI runs as a user runs it, so what reaches stdout/stderr is checked.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from actwatch.config import load_config
from actwatch.errors import ConfigError

PASSWORD = "hunter2-p@ss word"  # '@' and a space: what a YAML author types unencoded
TOKEN = "tok-" + "z" * 40


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("ACTWATCH_") or name.startswith("CAM_"):
            monkeypatch.delenv(name)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _camera_yaml(tmp_path: Path) -> Path:
    return _write(
        tmp_path / "actwatch.yaml",
        f"data_dir: {tmp_path / 'data'}\n"
        "cameras:\n"
        "  - id: door\n"
        "    url: 'rtsp://${CAM_USER}:${CAM_PASSWORD}@10.0.0.5/stream'\n"
        "    name: 'Door (${CAM_USER})'\n"
        "storage:\n"
        "  database_url: 'postgresql://actwatch:${CAM_PASSWORD}@db/actwatch'\n",
    )


def test_variables_are_substituted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAM_USER", "admin")
    monkeypatch.setenv("CAM_PASSWORD", PASSWORD)
    cfg = load_config(_camera_yaml(tmp_path))
    assert cfg.cameras[0].url == f"rtsp://admin:{PASSWORD}@10.0.0.5/stream"
    assert cfg.cameras[0].name == "Door (admin)"
    assert cfg.storage.database_url == f"postgresql://actwatch:{PASSWORD}@db/actwatch"


def test_a_variable_can_come_from_a_secret_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = _write(tmp_path / "cam_password", PASSWORD + "\n")  # the newline echo/editors add is dropped
    monkeypatch.setenv("CAM_USER", "admin")
    monkeypatch.setenv("CAM_PASSWORD_FILE", str(secret))
    assert load_config(_camera_yaml(tmp_path)).cameras[0].url == f"rtsp://admin:{PASSWORD}@10.0.0.5/stream"


def test_escaped_reference_stays_literal(tmp_path: Path) -> None:
    cfg = load_config(
        _write(tmp_path / "c.yaml", "cameras:\n  - id: a\n    url: rtsp://cam/s\n    name: 'cost $${X}'\n")
    )
    assert cfg.cameras[0].name == "cost ${X}"


def test_unset_variable_is_an_error_naming_it_and_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAM_USER", "admin")
    with pytest.raises(ConfigError) as info:
        load_config(_camera_yaml(tmp_path))
    message = str(info.value)
    assert "cameras.0.url: ${CAM_PASSWORD} is not set; set CAM_PASSWORD, or CAM_PASSWORD_FILE" in message
    assert "storage.database_url: ${CAM_PASSWORD} is not set" in message


def test_variable_and_its_file_both_set_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAM_USER", "admin")
    monkeypatch.setenv("CAM_PASSWORD", PASSWORD)
    monkeypatch.setenv("CAM_PASSWORD_FILE", str(_write(tmp_path / "pw", PASSWORD)))
    with pytest.raises(ConfigError, match="both CAM_PASSWORD and CAM_PASSWORD_FILE are set"):
        load_config(_camera_yaml(tmp_path))


def test_unreadable_secret_file_is_named_without_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTWATCH_SERVER__TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match=r"ACTWATCH_SERVER__TOKEN_FILE: cannot read the secret file .*missing"):
        load_config(None)


def test_settings_file_variables_set_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTWATCH_SERVER__TOKEN_FILE", str(_write(tmp_path / "token", TOKEN + "\n")))
    monkeypatch.setenv("ACTWATCH_STORAGE__DATABASE_URL_FILE", str(_write(tmp_path / "db", "sqlite:////tmp/x.db")))
    cfg = load_config(None)
    assert cfg.server.token is not None and cfg.server.token.get_secret_value() == TOKEN
    assert cfg.storage.database_url == "sqlite:////tmp/x.db"
    shown = json.dumps(cfg.public_dict())
    assert TOKEN not in shown and "/tmp/x.db" not in shown


def test_settings_file_variable_and_plain_variable_both_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTWATCH_SERVER__TOKEN", TOKEN)
    monkeypatch.setenv("ACTWATCH_SERVER__TOKEN_FILE", str(_write(tmp_path / "token", TOKEN)))
    with pytest.raises(ConfigError, match="both ACTWATCH_SERVER__TOKEN and ACTWATCH_SERVER__TOKEN_FILE are set"):
        load_config(None)


def test_substituted_values_are_masked_in_public_dict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAM_USER", "admin")
    monkeypatch.setenv("CAM_PASSWORD", PASSWORD)
    shown = json.dumps(load_config(_camera_yaml(tmp_path)).public_dict())
    assert PASSWORD not in shown and "admin" not in shown
    assert "Door (***)" in shown


def test_substituted_values_are_masked_in_validation_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The secret lands in a key whose validator quotes the value back: the error must not show it.
    monkeypatch.setenv("CAM_SCHEME", "ftp-secret-scheme")
    path = _write(tmp_path / "c.yaml", "cameras:\n  - id: a\n    url: '${CAM_SCHEME}://host/x'\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "cameras.0.url" in str(info.value) and "ftp-secret-scheme" not in str(info.value)


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("ACTWATCH_") and not k.startswith("CAM_")}
    return subprocess.run(
        [sys.executable, "-m", "actwatch", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**clean, **env},
        check=False,
    )


def test_validate_config_show_never_prints_secrets(tmp_path: Path) -> None:
    env = {
        "CAM_USER": "admin",
        "CAM_PASSWORD_FILE": str(_write(tmp_path / "pw", PASSWORD)),
        "ACTWATCH_SERVER__TOKEN_FILE": str(_write(tmp_path / "token", TOKEN)),
    }
    result = _cli("validate-config", str(_camera_yaml(tmp_path)), "--show", env=env)
    assert result.returncode == 0, result.stderr
    assert "OK (1 cameras" in result.stdout
    for secret in (PASSWORD, TOKEN, "hunter2"):
        assert secret not in result.stdout + result.stderr


def test_validate_config_unset_variable_exits_2_without_traceback(tmp_path: Path) -> None:
    result = _cli("validate-config", str(_camera_yaml(tmp_path)), env={"CAM_USER": "admin"})
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "${CAM_PASSWORD} is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_loading_logs_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CAM_USER", "admin")
    monkeypatch.setenv("CAM_PASSWORD", PASSWORD)
    monkeypatch.setenv("ACTWATCH_UNKNOWN_SECTION", "x")  # makes load_config log a warning
    with caplog.at_level(logging.DEBUG):
        load_config(_camera_yaml(tmp_path))
    assert caplog.records and PASSWORD not in caplog.text


def test_log_lines_never_show_secrets_once_serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """As ``actwatch serve`` runs it: a camera whose start fails with its URL in the error is logged with
    the secret masked, also where URL masking does not look (a path segment)."""
    from actwatch.config.secrets import redact_secrets_in_logs
    from actwatch.errors import SourceError
    from actwatch.service.app import create_app
    from tests.service.conftest import TOKEN, FakeController

    monkeypatch.setenv("CAM_KEY", "path-secret-key-42")
    path = _write(
        tmp_path / "c.yaml",
        f"data_dir: {tmp_path / 'data'}\nserver: {{token: {TOKEN}}}\n"
        "cameras:\n  - id: door\n    url: 'rtsp://10.0.0.5/${CAM_KEY}/stream'\n",
    )
    cfg = load_config(path)
    controller = FakeController(fail_add=SourceError(f"cannot open {cfg.cameras[0].url}: timed out"))
    undo = redact_secrets_in_logs(cfg.secret_values)
    try:
        with caplog.at_level(logging.INFO):
            create_app(cfg, controller).state.services.cameras.start_configured()
    finally:
        undo()
    assert "could not start camera door" in caplog.text
    assert "path-secret-key-42" not in caplog.text and "rtsp://10.0.0.5/***/stream" in caplog.text
