"""Test helpers shared by several test packages: real servers on 127.0.0.1 (RTSP, MJPEG over HTTP)."""
