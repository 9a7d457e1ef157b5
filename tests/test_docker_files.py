"""The deployment files agree with each other and with the configuration schema.

The images themselves are built and run by ``scripts/container-test.sh`` (minutes, by hand before a
release); these checks are fast and catch drift: a config key renamed in the code but not in the
shipped example, a bind mount Docker would create as an empty directory, a root user.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from actwatch.config import AppConfig
from actwatch.settings import parse_yaml, validate_settings

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"


def _compose() -> dict[str, Any]:
    # Compose's own YAML (merge keys included), not an actwatch settings file: the plain safe loader.
    compose = parse_yaml((DOCKER / "docker-compose.yml").read_text(encoding="utf-8"), "docker-compose.yml")
    assert isinstance(compose, dict)
    return compose


def _dockerfile() -> str:
    return (DOCKER / "Dockerfile").read_text(encoding="utf-8")


def test_example_config_validates_with_the_container_paths(tmp_path: Path) -> None:
    data = parse_yaml((DOCKER / "actwatch.yaml").read_text(encoding="utf-8"), "docker/actwatch.yaml")
    # The camera file exists only inside the image; everything else validates as shipped.
    assert data["cameras"][0]["url"] == "/opt/actwatch/assets/samples/vtest.avi"
    assert data["sources"]["file_dirs"] == ["/opt/actwatch/assets/samples"]  # the policy admits the clip
    clip = tmp_path / "vtest.avi"
    clip.write_bytes(b"\0")
    data["cameras"][0]["url"] = str(clip)
    data["sources"]["file_dirs"] = [str(tmp_path)]
    config = validate_settings(AppConfig, data, "docker/actwatch.yaml")
    assert config.data_dir == Path("/data")
    assert config.model.dir == Path("/model")
    assert config.server.token is None  # the token comes from the Docker secret, never from this file


def test_compose_mounts_only_what_exists_and_never_creates_host_paths() -> None:
    compose = _compose()
    assert compose["name"] == "actwatch"
    services = compose["services"]
    assert {name: service["profiles"] for name, service in services.items()} == {
        "actwatch-gpu": ["gpu"],
        "actwatch-cpu": ["cpu"],
    }
    for service in services.values():
        binds = [v for v in service["volumes"] if isinstance(v, dict) and v["type"] == "bind"]
        assert {b["target"] for b in binds} == {"/config/actwatch.yaml", "/model"}
        for bind in binds:
            assert bind["bind"] == {"create_host_path": False}, bind
            assert bind["read_only"] is True
        assert "actwatch-data:/data" in service["volumes"]
        # The shipped file is there; the model folder is the user's export (git-ignored, see README).
        assert (DOCKER / next(b["source"] for b in binds if b["target"] == "/config/actwatch.yaml")).is_file()
        assert service["environment"]["ACTWATCH_SERVER__TOKEN_FILE"] == "/run/secrets/actwatch_token"
        assert "ACTWATCH_SERVER__TOKEN" not in service["environment"]
        assert service["secrets"] == ["actwatch_token"]
        assert service["healthcheck"]["start_period"]
    assert services["actwatch-gpu"]["build"]["args"] == {"ACCEL": "gpu"}
    assert services["actwatch-cpu"]["build"]["args"] == {"ACCEL": "cpu"}
    (device,) = services["actwatch-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert "deploy" not in services["actwatch-cpu"]


def test_git_ignores_what_compose_expects_the_user_to_make() -> None:
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "/docker/model/" in ignored and "/docker/secrets/" in ignored
    assert _compose()["secrets"]["actwatch_token"]["file"].startswith("./secrets/")


def test_dockerfile_runs_non_root_with_a_healthcheck_and_the_compose_paths() -> None:
    text = _dockerfile()
    (user,) = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert user.split(":")[0] not in {"0", "root"}
    assert re.search(r"^HEALTHCHECK .*--start-period=\d+s", text, re.MULTILINE)
    assert '"--config", "/config/actwatch.yaml"' in text
    assert re.search(r"^ARG BASE_IMAGE=", text, re.MULTILINE) and re.search(r"^ARG ACCEL=gpu$", text, re.MULTILINE)
    assert "RUN actwatch assets" in text
    # ONNX Runtime's CUDA provider has no rpath to the CUDA libraries pip installs: the GPU image registers them.
    assert "site-packages/nvidia/*/lib' >/etc/ld.so.conf.d/" in text and "&& ldconfig" in text
    assert "torch" not in re.sub(r"#.*", "", text)  # the serving image installs no torch of its own


@pytest.mark.parametrize("kept_out", [".venv", ".git", "data", "experiments", "tests"])
def test_dockerignore_keeps_the_build_context_to_the_package(kept_out: str) -> None:
    patterns = [
        line for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines() if line and line[0] != "#"
    ]
    assert patterns[0] == "*"  # everything is out unless named below
    assert f"!{kept_out}" not in patterns and f"!{kept_out}/" not in patterns
    assert {"!pyproject.toml", "!README.md", "!actwatch/"} <= set(patterns)
