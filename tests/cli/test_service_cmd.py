"""``actwatch serve`` / ``validate-config`` as a user runs them: real processes, real files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from actwatch.errors import StateError
from actwatch.service.data_dir import hold_data_dir, prepare_data_dir
from tests.support.net import free_port

ACTWATCH = [sys.executable, "-m", "actwatch"]


def _run(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ACTWATCH, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_validate_config_accepts_a_good_file_and_masks_credentials(tmp_path: Path, vtest_path: Path) -> None:
    cfg = _write(
        tmp_path / "ok.yaml",
        f"data_dir: {tmp_path}\nsources: {{file_dirs: [{vtest_path.parent}]}}\n"
        f"cameras:\n  - id: door\n    url: rtsp://admin:hunter2@10.1.2.3/live\n"
        f"  - id: clip\n    url: {vtest_path}\n",
    )
    result = _run("validate-config", str(cfg), "--show")
    assert result.returncode == 0, result.stderr
    assert "OK (2 cameras" in result.stdout
    assert "hunter2" not in result.stdout and "admin:***@10.1.2.3" in result.stdout


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("server:\n  prot: 80\n", "server.prot"),
        ("cameras:\n  - id: a\n    url: ftp://x/y\n", "cameras.0.url"),
        ("server: [unclosed\n", "line"),
    ],
)
def test_validate_config_names_the_bad_key_without_a_traceback(tmp_path: Path, text: str, expected: str) -> None:
    result = _run("validate-config", str(_write(tmp_path / "bad.yaml", text)))
    assert result.returncode == 2
    assert result.stderr.startswith("error:") and expected in result.stderr
    assert "Traceback" not in result.stderr


def test_environment_overrides_are_validated_too(tmp_path: Path) -> None:
    cfg = _write(tmp_path / "ok.yaml", f"data_dir: {tmp_path}\n")
    result = _run("validate-config", str(cfg), env={"ACTWATCH_SERVER__PORT": "not-a-port"})
    assert result.returncode == 2 and "server.port" in result.stderr and "Traceback" not in result.stderr


def _serve_start_up_error(tmp_path: Path, port: int, weights: Path, model_dir: Path, processes: int = 1) -> str:
    """Run ``actwatch serve`` with this detector and model; it must stop with a one-line error (exit 2,
    no traceback). Returns its stderr."""
    cfg = _write(
        tmp_path / "serve.yaml",
        f"data_dir: {tmp_path}\nserver: {{port: {port}, token: {'t' * 32}}}\n"
        f"detector: {{weights: {weights}, person_class_ids: [0, 1]}}\nmodel: {{dir: {model_dir}}}\n"
        f"pipeline: {{processes: {processes}}}\n",
    )
    result = _run("serve", "--config", str(cfg))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "error:" in result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


def test_serve_with_a_corrupt_model_is_a_clear_start_up_error(tmp_path: Path, detector_weights: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "manifest.json").write_text("{not json", encoding="utf-8")
    assert "manifest" in _serve_start_up_error(tmp_path, 18999, detector_weights, model).lower()


def test_serve_with_compute_processes_and_a_missing_model_is_one_clear_error(
    tmp_path: Path, detector_weights: Path
) -> None:
    stderr = _serve_start_up_error(tmp_path, free_port(), detector_weights, tmp_path / "no-model", processes=2)
    assert "no-model" in stderr and "actwatch export" in stderr
    assert "killing it" not in stderr and "WARNING" not in stderr, stderr  # the failed process just ends


def test_ctrl_c_stops_a_service_with_compute_processes_in_order(
    tmp_path: Path, detector_weights: Path, exported_model_dir: Path, vtest_path: Path
) -> None:
    # Ctrl-C in a terminal signals the whole process group, compute processes included: the service stops
    # them itself (their last events stored), with no traceback and nothing left running.
    port = free_port()
    cfg = _write(
        tmp_path / "serve.yaml",
        f"data_dir: {tmp_path / 'data'}\nserver: {{port: {port}, token: {'t' * 32}}}\n"
        f"detector: {{weights: {detector_weights}, person_class_ids: [0, 1]}}\n"
        f"model: {{dir: {exported_model_dir}}}\npipeline: {{processes: 2}}\n"
        f"sources: {{file_dirs: [{vtest_path.parent}]}}\n"
        f"cameras: [{{id: hall, url: {vtest_path}, loop: true, realtime: true}}]\n",
    )
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [*ACTWATCH, "serve", "--config", str(cfg)], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 300
        while not _ready(port):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the service did not get ready in 5 minutes"
            time.sleep(0.5)
        system = httpx.get(f"http://127.0.0.1:{port}/system", headers={"Authorization": f"Bearer {'t' * 32}"})
        compute_pids = [p["pid"] for p in system.json()["processes"]]
        assert len(compute_pids) == 2 and all(compute_pids), system.text
        with pytest.raises(StateError, match=f"in use by another actwatch process \\(pid {process.pid}\\)"):
            hold_data_dir(tmp_path / "data")  # the running service holds its data_dir
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(timeout=120) == 0, log.read_text()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    text = log.read_text()
    assert "Traceback" not in text and "KeyboardInterrupt" not in text and "killing it" not in text, text
    assert "compute process" not in text.split("Shutting down", 1)[-1], text  # none died or was restarted
    for pid in compute_pids:  # each stopped and reaped by the service, none left behind
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def test_serve_with_a_corrupt_detector_is_a_clear_start_up_error(tmp_path: Path, exported_model_dir: Path) -> None:
    weights = _write(tmp_path / "broken.pt", "this is not a YOLO checkpoint")
    assert "broken.pt" in _serve_start_up_error(tmp_path, 18998, weights, exported_model_dir)


def test_demo_prints_the_token_in_a_url_fragment_only() -> None:
    from actwatch.cli.service_cmd import start_up_lines

    lines = start_up_lines("127.0.0.1", 8000, "T0KEN-0123456789")
    assert any(line.endswith("/#token=T0KEN-0123456789") for line in lines)
    assert all("?token=" not in line for line in lines)
    assert sum("T0KEN-0123456789" in line for line in lines) == 1  # the dashboard URL's fragment only
    assert all("T0KEN" not in line for line in start_up_lines("127.0.0.1", 8000, None))


def _serve_fails_before_the_models_load(tmp_path: Path, data_dir: Path | str, port: int, *, token: bool) -> str:
    """``actwatch serve`` with a detector and a model that do not exist: a failure about anything else
    proves it was found first. It must be one ``error:`` line, exit 2, no traceback. Returns stderr."""
    server = f"{{port: {port}, token: {'t' * 32}}}" if token else f"{{port: {port}}}"
    cfg = _write(
        tmp_path / "serve.yaml",
        f"data_dir: {data_dir}\nserver: {server}\n"
        f"detector: {{weights: {tmp_path / 'absent.pt'}}}\nmodel: {{dir: {tmp_path / 'absent-model'}}}\n",
    )
    result = _run("serve", "--config", str(cfg), timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("error:") or "\nerror:" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "absent" not in result.stderr, result.stderr
    return result.stderr


def test_serve_on_a_port_in_use_fails_before_the_models_load(tmp_path: Path) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        stderr = _serve_fails_before_the_models_load(tmp_path, tmp_path / "data", port, token=True)
    assert f"cannot listen on 127.0.0.1:{port}" in stderr


def test_a_second_service_on_a_data_dir_in_use_stops_and_touches_nothing(tmp_path: Path) -> None:
    # Two services on one data_dir would share the events database and camera file, and the second
    # would clear the first one's upload jobs.
    data = tmp_path / "data"
    prepare_data_dir(data)
    job = data / "predictions" / "job1" / "result.json"
    job.parent.mkdir(parents=True)
    job.write_text("{}", encoding="utf-8")
    held = hold_data_dir(data)  # as a running service (this test's process) holds it
    try:
        stderr = _serve_fails_before_the_models_load(tmp_path, data, free_port(), token=True)
    finally:
        held.release()
    assert f"data_dir {data} is in use by another actwatch process (pid {os.getpid()})" in stderr
    assert job.read_text(encoding="utf-8") == "{}" and not (data / "events.db").exists()
    # released (or its process gone): the next start gets past it, to the missing models
    assert "absent" in _run("serve", "--config", str(tmp_path / "serve.yaml"), timeout=120).stderr


@pytest.mark.parametrize("command", ["serve", "demo"])
@pytest.mark.parametrize("port", ["70000", "0", "-1"])
def test_a_port_out_of_range_on_the_command_line_is_a_usage_error(tmp_path: Path, command: str, port: str) -> None:
    # the same rule as server.port in the file (1-65535); before, serve crashed in bind() with a traceback
    args = ["serve", "--config", str(_write(tmp_path / "serve.yaml", "{}\n"))] if command == "serve" else ["demo"]
    result = _run(*args, "--port", port, timeout=60)
    assert result.returncode == 2 and "--port" in result.stderr, result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_serve_with_data_dir_being_a_file(tmp_path: Path) -> None:
    data = _write(tmp_path / "data", "a file")
    assert "is not a folder" in _serve_fails_before_the_models_load(tmp_path, data, free_port(), token=False)


def test_serve_with_a_data_dir_it_cannot_write(tmp_path: Path) -> None:
    if os.geteuid() == 0:  # root writes anywhere chmod allows nothing: /proc refuses new files to everyone
        data: Path = Path("/proc/self")
    else:
        data = tmp_path / "read-only"
        data.mkdir(mode=0o500)
    assert "cannot write in data_dir" in _serve_fails_before_the_models_load(tmp_path, data, free_port(), token=False)


@pytest.mark.parametrize(
    ("content", "expected"), [(b"\xff\xfe\x00\x01binary\x80", "not text"), (b"short\n", "too short")]
)
def test_serve_with_an_unusable_token_file(tmp_path: Path, content: bytes, expected: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "token").write_bytes(content)
    os.chmod(data / "token", 0o600)
    stderr = _serve_fails_before_the_models_load(tmp_path, data, free_port(), token=False)
    assert expected in stderr and "token" in stderr


@pytest.mark.parametrize("kind", ["corrupt", "directory"])
def test_serve_with_an_unusable_events_database(tmp_path: Path, kind: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    if kind == "corrupt":
        (data / "events.db").write_bytes(b"this is not a SQLite database" * 100)
    else:
        (data / "events.db").mkdir()
    stderr = _serve_fails_before_the_models_load(tmp_path, data, free_port(), token=True)
    assert "events.db" in stderr and ("not a database" in stderr or "a file and a folder" in stderr)
