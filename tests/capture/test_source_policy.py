"""The camera URL policy: files only in allowed folders, host allow/deny lists, no control characters."""

from __future__ import annotations

from pathlib import Path

import pytest

from actwatch.capture.source_policy import SourcePolicy
from actwatch.capture.sources import SourceSpec
from actwatch.config import AppConfig, ConfigError, load_config
from actwatch.errors import SourceError


def refusal(policy: SourcePolicy, url: str) -> str:
    with pytest.raises(SourceError) as info:
        policy.admit(url)
    return str(info.value)


@pytest.mark.parametrize("url", ["/etc/shadow", "file:///etc/passwd", "/proc/self/environ", "/etc", "~/.bashrc"])
def test_no_file_is_a_camera_by_default(url: str) -> None:
    assert "does not exist or is not inside a folder of sources.file_dirs" in refusal(SourcePolicy(), url)


def test_files_inside_the_allowed_folders_only(tmp_path: Path) -> None:
    allowed, other = tmp_path / "videos", tmp_path / "private"
    (allowed / "sub").mkdir(parents=True)
    other.mkdir()
    (allowed / "sub" / "clip.avi").write_bytes(b"x")
    (other / "secret.avi").write_bytes(b"x")
    policy = SourcePolicy(file_dirs=[allowed])
    spec = policy.admit(str(allowed / "sub" / "clip.avi"))
    assert (spec.kind, spec.url) == ("file", str((allowed / "sub" / "clip.avi").resolve()))
    assert policy.admit((allowed / "sub" / "clip.avi").as_uri()).url == spec.url
    # '..' and symbolic links are resolved before the folder is checked
    refusal(policy, str(allowed / ".." / "private" / "secret.avi"))
    (allowed / "link.avi").symlink_to(other / "secret.avi")
    refusal(policy, str(allowed / "link.avi"))
    with pytest.raises(SourceError, match="is not a file"):
        policy.admit(str(allowed / "sub"))


def test_a_forbidden_file_reads_exactly_like_a_missing_one(tmp_path: Path) -> None:
    (tmp_path / "clip.avi").write_bytes(b"x")
    policy = SourcePolicy(file_dirs=[tmp_path / "videos"])
    existing, missing = str(tmp_path / "clip.avi"), str(tmp_path / "nope.avi")
    assert refusal(policy, existing) == refusal(policy, missing).replace(missing, existing)


@pytest.mark.parametrize(
    "url",
    [
        "rtsp://10.0.0.5/live\r\nX-Injected: yes",
        "rtsp://10.0.0.5/live%0d%0a\r\nX-Injected: yes",
        "rtsp://admin:pw\r\nX-Injected: yes@10.0.0.5/live",
        "http://cam/video.mjpg\x00.avi",
        "rtsp://cam/\x7flive",
        "rtsp://cam/live\u0085x",
    ],
)
def test_control_characters_are_refused(url: str) -> None:
    message = refusal(SourcePolicy(), url)
    assert "control character" in message and "X-Injected" not in message and "pw" not in message
    with pytest.raises(SourceError):
        SourceSpec.parse(url)


def test_deny_list_by_network_and_by_name() -> None:
    policy = SourcePolicy(deny_hosts=["127.0.0.0/8", "169.254.0.0/16", "::1", "Metadata.Internal"])
    for url in (
        "rtsp://127.0.0.1:8554/cam",
        "rtsp://localhost:8554/cam",  # a name: every address it resolves to is checked
        "http://169.254.169.254/latest",
        "http://[::ffff:127.0.0.1]/x",  # an IPv4-mapped IPv6 address is its IPv4 address
        "http://2130706433/x",  # 127.0.0.1 written as one number
        "https://user:pw@metadata.internal/x",
    ):
        message = refusal(policy, url)
        assert "not allowed by the camera URL policy" in message and "pw" not in message
    assert policy.admit("rtsp://10.0.0.5/live").kind == "rtsp"


def test_allow_list_admits_only_what_it_lists() -> None:
    policy = SourcePolicy(allow_hosts=["10.0.0.0/8", "*.cams.example"], deny_hosts=["10.9.0.0/16"])
    assert policy.admit("rtsp://10.1.2.3/live").kind == "rtsp"
    refusal(policy, "rtsp://192.168.1.5/live")
    refusal(policy, "rtsp://10.9.1.1/live")  # deny wins
    # a deny network applies to names too, so a name that does not resolve is refused
    assert "does not resolve" in refusal(policy, "rtsp://door.cams.example/live")
    by_name = SourcePolicy(allow_hosts=["*.cams.example"])
    assert by_name.admit("rtsp://door.cams.example/live").kind == "rtsp"  # listed by name: not resolved
    refusal(by_name, "rtsp://cams.example/live")  # '*.' matches sub-domains only
    refusal(by_name, "rtsp://10.1.2.3/live")


def test_webcams_can_be_turned_off() -> None:
    assert SourcePolicy().admit("webcam:0").kind == "webcam"
    assert "sources.webcams" in refusal(SourcePolicy(webcams=False), "/dev/video0")


def test_host_rules_are_validated() -> None:
    with pytest.raises(ValueError, match="not a host name"):
        SourcePolicy(deny_hosts=["10.0.0.0/33x"])
    assert SourcePolicy(allow_hosts=[" CAM.Local "]).allow_hosts == ["cam.local"]


def test_the_configuration_is_checked_against_its_policy(tmp_path: Path) -> None:
    video = tmp_path / "clip.avi"
    video.write_bytes(b"x")
    path = tmp_path / "a.yaml"
    path.write_text(f"cameras:\n  - id: a\n    url: rtsp://10.0.0.5/x\n  - id: b\n    url: {video}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "cameras.1.url: video file" in str(info.value) and "sources.file_dirs" in str(info.value)
    path.write_text(f"sources: {{file_dirs: [{tmp_path}]}}\n" + path.read_text())
    assert load_config(path).cameras[1].url == str(video)
    with pytest.raises(ValueError, match=r"cameras\.0\.url: host"):
        AppConfig(cameras=[{"id": "a", "url": "rtsp://127.0.0.1/x"}], sources={"deny_hosts": ["127.0.0.0/8"]})
