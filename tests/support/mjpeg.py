"""A real MJPEG-over-HTTP camera on loopback for tests (``multipart/x-mixed-replace``, like IP cameras).

Serves the frames of a video file, JPEG-encoded, at ``http://127.0.0.1:<port>/<anything>`` from a
thread of this process. Requests for ``/missing`` answer 404, so tests can exercise a failing source.

Example:
    >>> with MjpegServer("vtest.avi", size=(192, 144)) as server:  # doctest: +SKIP
    ...     url = server.url("video.mjpg")
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np

from actwatch.capture.video_file import read_video

BOUNDARY = "actwatchframe"


def load_jpegs(video: Path | str, size: tuple[int, int], max_frames: int) -> list[bytes]:
    """Up to ``max_frames`` frames of ``video`` resized to ``size`` (w, h), JPEG-encoded."""
    jpegs: list[bytes] = []
    for frame in read_video(video, max_frames=max_frames):
        ok, buf = cv2.imencode(".jpg", cv2.resize(frame.image, size), [cv2.IMWRITE_JPEG_QUALITY, 80])
        if ok:
            jpegs.append(np.asarray(buf).tobytes())
    if not jpegs:
        raise RuntimeError(f"no frames could be read from {video}")
    return jpegs


class MjpegServer:
    """An HTTP server streaming a looped clip as MJPEG at ``fps`` frames per second.

    Example:
        >>> with MjpegServer("vtest.avi") as server:  # doctest: +SKIP
        ...     server.url("cam.mjpg")
        'http://127.0.0.1:40123/cam.mjpg'
    """

    def __init__(
        self,
        video: Path | str,
        *,
        size: tuple[int, int] = (192, 144),
        fps: float = 10.0,
        max_frames: int = 50,
    ) -> None:
        self.jpegs = load_jpegs(video, size, max_frames)
        self.fps = fps
        self.stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.startswith("/missing"):
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                i = 0
                try:
                    while not server.stopping.is_set():
                        jpeg = server.jpegs[i % len(server.jpegs)]
                        head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                        self.wfile.write(head.encode() + jpeg + b"\r\n")
                        self.wfile.flush()
                        i += 1
                        time.sleep(1.0 / server.fps)
                except (BrokenPipeError, ConnectionResetError):
                    return

            def log_message(self, format: str, *args: object) -> None:  # keep test output clean
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self._thread: threading.Thread | None = None

    def url(self, path: str = "video.mjpg") -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def start(self) -> MjpegServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="mjpeg-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> MjpegServer:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
