"""The API token never reaches the server's logs: a real uvicorn with the log set-up ``serve`` uses."""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

import httpx
import pytest
import uvicorn
from websockets.sync.client import connect

from actwatch.service.app import create_app
from actwatch.service.server_logs import SecretRedactingFilter, uvicorn_log_config
from tests.service.conftest import TOKEN, FakeController, make_config
from tests.service.live import wait_for
from tests.support.net import free_port

CAMERA_PASSWORD_IN_QUERY = "camPw12345"


def test_the_token_in_a_query_is_redacted_from_uvicorn_logs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = create_app(make_config(tmp_path), FakeController())
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="info", log_config=uvicorn_log_config())
    )
    thread = threading.Thread(target=server.run, name="uvicorn-logs-test", daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, 60, what="uvicorn to start")
        with connect(f"ws://127.0.0.1:{port}/ws/events?token={TOKEN}") as ws:
            assert '"hello"' in str(ws.recv(timeout=30))
        with connect(f"ws://127.0.0.1:{port}/ws/events?token=wrong-{TOKEN}") as ws:
            pass
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            assert http.get(f"/healthz?token={TOKEN}").status_code == 200
            assert http.get(f"/cameras?token={TOKEN}&password={CAMERA_PASSWORD_IN_QUERY}").status_code == 401
    finally:
        server.should_exit = True
        thread.join(30)
    logs = capsys.readouterr()
    text = logs.out + logs.err
    assert "/ws/events?token=***" in text  # the handshake was logged, redacted
    assert "/healthz?token=***" in text and "password=***" in text  # so were the requests
    assert TOKEN not in text and CAMERA_PASSWORD_IN_QUERY not in text


def test_a_traceback_in_the_log_is_masked_too() -> None:
    try:
        raise RuntimeError("could not open rtsp://admin:Tr4ceb4ck pw@10.0.0.5/live")
    except RuntimeError:
        record = logging.LogRecord("uvicorn.error", logging.ERROR, "", 0, "failed", (), sys.exc_info())
    assert SecretRedactingFilter().filter(record)
    text = logging.Formatter().format(record)
    assert "Tr4ceb4ck" not in text and "admin:***@10.0.0.5/live" in text
