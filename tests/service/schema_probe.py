"""schemathesis against the running service, run *inside* a network namespace with only loopback.

``python -m tests.service.schema_probe CONFIG.yaml MAX_EXAMPLES`` (under ``unshare --net``, see
test_schema.py): brings ``lo`` up, checks that it is the only interface (so camera URLs that schemathesis
generates cannot reach any other machine), serves the configured service (real pipeline) with the
settings of ``actwatch serve``, waits until it is ready, runs ``st run`` against ``/openapi.json`` with
every check, and exits with schemathesis' status (1: failures; 2 and up: it could not run).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from actwatch.config import load_config
from actwatch.service.app import create_app
from actwatch.service.server import listen_socket, uvicorn_config

SCHEMATHESIS_CONFIG = Path(__file__).with_name("schemathesis.toml")
ISOLATION_ERROR = 90  # exit status: the namespace has more than loopback


def _isolate() -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    names = sorted(name for _, name in socket.if_nameindex())
    if names != ["lo"]:
        print(f"schema_probe: not isolated: network interfaces {names} (expected only 'lo')", file=sys.stderr)
        sys.exit(ISOLATION_ERROR)


def main(config_path: Path, max_examples: int) -> int:
    _isolate()
    config = load_config(config_path)
    app = create_app(config, announce_token=lambda _message: None)
    token = app.state.services.token.get_secret_value()
    listener = listen_socket(config.server)
    server = uvicorn.Server(uvicorn_config(app, config.server, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{config.server.port}"
    try:
        deadline = time.monotonic() + 300
        while not (server.started and httpx.get(f"{base}/readyz").status_code == 200):
            if not thread.is_alive() or time.monotonic() > deadline:
                print("schema_probe: the service did not become ready", file=sys.stderr)
                return 3
            time.sleep(0.2)
        command = [
            str(Path(sys.executable).with_name("st")),
            f"--config-file={SCHEMATHESIS_CONFIG}",
            "--no-color",
            "run",
            f"{base}/openapi.json",
            "--checks=all",
            f"--header=Authorization: Bearer {token}",
            f"--max-examples={max_examples}",
            "--seed=20261126",
            "--workers=1",
        ]
        return subprocess.run(command, check=False).returncode
    finally:
        server.should_exit = True
        thread.join(60)
        listener.close()


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), int(sys.argv[2])))
