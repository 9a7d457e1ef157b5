"""The API does what its OpenAPI schema says: schemathesis against the running service (real pipeline),
inside a network namespace that has only loopback (``unshare --net``), so the camera URLs it generates
(rtsp://, http://, any host) cannot reach another machine. 0 server errors, 0 schema mismatches."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
MAX_EXAMPLES = 12  # per operation and phase: keeps the run to about a minute


def test_the_api_matches_its_schema(tmp_path: Path, detector_weights: Path, exported_model_dir: Path) -> None:
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.fail("'unshare' (util-linux) is needed to run schemathesis in a network namespace with only loopback")
    if subprocess.run([unshare, "--net", "--", "true"], capture_output=True, check=False).returncode != 0:
        pytest.fail("'unshare --net' is not permitted here (run the tests as root, or with CAP_SYS_ADMIN)")
    config = {
        "data_dir": str(tmp_path / "data"),
        "server": {
            "token": "schema-test-token-0123456789",
            "port": 8765,  # the namespace is new: every port is free
            "auth_failures_per_minute": 100_000,  # schemathesis sends wrong tokens on purpose, many
        },
        "detector": {"weights": str(detector_weights), "person_class_ids": [0, 1]},
        "model": {"dir": str(exported_model_dir)},
    }
    config_path = tmp_path / "actwatch.yaml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run(
        [
            unshare,
            "--net",
            "--",
            sys.executable,
            "-m",
            "tests.service.schema_probe",
            str(config_path),
            str(MAX_EXAMPLES),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    report = (run.stdout + run.stderr)[-20_000:]
    print(run.stdout[-4000:])  # the summary, shown with -rA
    assert run.returncode == 0, f"schemathesis found problems (exit {run.returncode}):\n{report}"
    assert "Tested: 24" in run.stdout, report  # every operation of the schema was exercised
