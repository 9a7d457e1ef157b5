"""The shared RTSP test helper fails loudly (never skips) when its binaries are missing."""

from __future__ import annotations

import pytest

from tests.support.rtsp import RtspServer, RtspToolError, free_udp_range, require_binary


def test_missing_binaries_say_to_run_the_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(RtspToolError, match=r"'rtsp-server-perl' not found on PATH: .*scripts/setup.sh"):
        RtspServer().start()
    with pytest.raises(RtspToolError, match="'ffmpeg' not found"):
        require_binary("ffmpeg")


def test_free_udp_range_is_even_and_bindable() -> None:
    import socket

    base = free_udp_range(count=8)
    assert base % 2 == 0
    for port in range(base, base + 8):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", port))
