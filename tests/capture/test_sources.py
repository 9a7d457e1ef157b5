"""SourceSpec.parse: every accepted form, every rejection, and credential masking."""

from __future__ import annotations

from pathlib import Path

import pytest

from actwatch.capture.sources import SourceSpec, mask_credentials
from actwatch.errors import ActwatchError, SourceError


@pytest.mark.parametrize(
    ("url", "kind", "masked"),
    [
        ("rtsp://cam.local:554/live", "rtsp", "rtsp://cam.local:554/live"),
        ("rtsp://admin:s3cret@10.0.0.5/ch1", "rtsp", "rtsp://admin:***@10.0.0.5/ch1"),
        ("RTSPS://admin:s3cret@10.0.0.5:322/ch1", "rtsp", "RTSPS://admin:***@10.0.0.5:322/ch1"),
        ("http://10.0.0.7/video.mjpg", "http", "http://10.0.0.7/video.mjpg"),
        ("https://u:pw@cam/mjpg?password=abc&res=hd", "http", "https://u:***@cam/mjpg?password=***&res=hd"),
        ("http://cam/stream?token=xyz", "http", "http://cam/stream?token=***"),
    ],
)
def test_network_sources(url: str, kind: str, masked: str) -> None:
    spec = SourceSpec.parse(url)
    assert (spec.kind, spec.url, spec.masked, spec.is_live) == (kind, url, masked, True)


@pytest.mark.parametrize(
    ("given", "url"),
    [("0", "0"), ("2", "2"), ("webcam:1", "1"), ("WEBCAM:03", "3"), ("/dev/video0", "/dev/video0")],
)
def test_webcam_sources(given: str, url: str) -> None:
    spec = SourceSpec.parse(given)
    assert (spec.kind, spec.url, spec.is_live) == ("webcam", url, True)
    assert spec.webcam_index == (int(url) if url.isdigit() else None)


def test_file_sources(vtest_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = SourceSpec.parse(str(vtest_path))
    assert (spec.kind, spec.url, spec.is_live) == ("file", str(vtest_path.resolve()), False)
    assert SourceSpec.parse(vtest_path.resolve().as_uri()).url == str(vtest_path.resolve())
    # a relative path is resolved against the working directory at parse time
    (tmp_path / "clip.avi").write_bytes(vtest_path.read_bytes()[:4096])
    monkeypatch.chdir(tmp_path)
    assert SourceSpec.parse("  clip.avi ").url == str(tmp_path / "clip.avi")


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("ftp://user:topsecret@host/video.mp4", "unsupported source scheme 'ftp://'"),
        ("rtmp://host/live/key", "unsupported source scheme 'rtmp://'"),
        ("webcam:abc", "a webcam is webcam:N with N its index (webcam:0), got 'webcam:abc'"),
        ("/nonexistent/video.mp4", "does not exist"),
        ("file:///nonexistent/video.mp4", "does not exist"),
        ("rtsp://", "has no host"),
        ("rtsp://admin:topsecret@/path", "has no host"),
        ("rtsp://host:99999/x", "malformed"),
        ("http://admin:topsecret@host:port/x", "malformed"),
    ],
)
def test_rejections_say_what_is_wrong_and_what_is_accepted(url: str, fragment: str) -> None:
    with pytest.raises(SourceError) as info:
        SourceSpec.parse(url)
    message = str(info.value)
    assert fragment in message
    assert "rtsp://host[:port]/path (with user:pass" in message and "webcam:0" in message  # the accepted forms
    assert mask_credentials(message) == message  # masked again at an edge, the forms stay whole
    assert "topsecret" not in message
    assert isinstance(info.value, ActwatchError)  # the CLI shows it without a traceback


def test_a_directory_is_not_a_file_source(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="is not a file"):
        SourceSpec.parse(str(tmp_path))


def test_repr_and_str_never_show_the_secret() -> None:
    spec = SourceSpec.parse("rtsp://admin:hunter22@10.1.1.1:554/stream?token=tok123456")
    for text in (repr(spec), str(spec), f"{spec}", f"{spec!r}", str([spec]), str({"s": spec})):
        assert "hunter22" not in text and "tok123456" not in text
        assert "admin:***@10.1.1.1" in text
    assert spec.url == "rtsp://admin:hunter22@10.1.1.1:554/stream?token=tok123456"  # still usable to open


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nothing to hide", "nothing to hide"),
        ("rtsp://cam/live", "rtsp://cam/live"),
        (
            "[rtsp @ 0x55] Could not open rtsp://admin:pw1@10.0.0.1:554/s1: 401 Unauthorized",
            "[rtsp @ 0x55] Could not open rtsp://admin:***@10.0.0.1:554/s1: 401 Unauthorized",
        ),
        (
            "two: 'rtsp://a:b1@h1/x' and \"http://c:d2@h2/y\"",
            "two: 'rtsp://a:***@h1/x' and \"http://c:***@h2/y\"",
        ),
        ("rtsp://admin:p@ss@host/x", "rtsp://admin:***@host/x"),  # unencoded '@' in the password
        ("rtsp://admin:pa/ss@host/x", "rtsp://admin:***@host/x"),  # unencoded '/' in the password
        ("https://ghp_TOKEN@host/x", "https://***@host/x"),  # a lone userinfo is usually a token
        ("rtsp://host/a@b", "rtsp://host/a@b"),  # an '@' in the path is not a credential
        ("GET /s?user=x&pwd=zz&api_key=k&sig=s", "GET /s?user=x&pwd=***&api_key=***&sig=***"),
        ("", ""),
    ],
)
def test_mask_credentials_in_arbitrary_text(text: str, expected: str) -> None:
    assert mask_credentials(text) == expected


def test_redact_removes_a_password_quoted_without_its_url() -> None:
    spec = SourceSpec.parse("rtsp://admin:hunter22@cam/x?token=tok123456")
    out = spec.redact("auth failed: hunter22 rejected; token tok123456; url rtsp://admin:hunter22@cam/x")
    assert "hunter22" not in out and "tok123456" not in out
    assert "rtsp://admin:***@cam/x" in out
