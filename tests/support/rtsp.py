"""A real RTSP server on loopback for tests: Debian's ``rtsp-server-perl`` fed by an ``ffmpeg`` publisher.

``rtsp-server-perl`` listens on two TCP ports: sources ANNOUNCE/RECORD on the *source* port, viewers
DESCRIBE/SETUP/PLAY on the *client* port. RTP flows over UDP only (this server does not do RTSP over
TCP, so readers must use ``rtsp_transport=udp``); the server binds UDP ports counting up from
``--rtp_start_port``. All ports are picked free at start so parallel test runs do not collide.

Commands run (ports vary; the server runs as ``perl -e LAUNCHER <rtp_start_port> <options>``, which is
``/usr/bin/rtsp-server-perl`` with the RTP port fix explained at :data:`LAUNCHER`)::

    rtsp-server-perl -c 18554 -s 18555 --rtp_start_port 41000 \\
        --client_listen_address 127.0.0.1 --source_listen_address 127.0.0.1 -l 2
    ffmpeg -nostdin -loglevel warning -re -stream_loop -1 -i vtest.avi -an -vf scale=384:288 \\
        -c:v libx264 -preset ultrafast -tune zerolatency -g 10 -f rtsp rtsp://127.0.0.1:18555/cam1

and a viewer reads ``rtsp://127.0.0.1:18554/cam1`` with ``rtsp_transport: udp`` (``ffmpeg -rtsp_transport udp``).
:class:`SilentServer` is the other kind of camera the tests need: one that accepts and never answers.

Example:
    >>> with RtspServer() as server:  # doctest: +SKIP
    ...     with server.publisher("cam1", "vtest.avi") as pub:
    ...         url = server.url("cam1", user="admin", password="secret")

In a conftest: ``rtsp_server = rtsp_server_fixture(scope="module")``; the binaries missing is an error
that says to run the project's setup, never a skip.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import pytest

SETUP_HINT = (
    "install the Debian packages 'rtsp-server-perl' and 'ffmpeg' by running the project's setup "
    "(scripts/setup.sh) before running the tests"
)
HOST = "127.0.0.1"


# /usr/bin/rtsp-server-perl plus one line: the library resets its RTP port counter to the global
# $RTSP::Server::RTP_START_PORT (20000) whenever a connection closes while nothing is mounted, which
# undoes --rtp_start_port, so two servers (parallel test runs) would both bind UDP 20000 and the
# second publisher's RECORD fails. Setting the global as well keeps each server on its own range.
LAUNCHER = (
    "use strict; use warnings; use AnyEvent; use RTSP::Server;"
    " $RTSP::Server::RTP_START_PORT = shift @ARGV;"
    " my $srv = RTSP::Server->new_with_options(); $srv->listen;"
    " my $cv = AnyEvent->condvar; $SIG{INT} = $SIG{TERM} = sub { $cv->send }; $cv->recv;"
)


class RtspToolError(RuntimeError):
    """The RTSP server or publisher is missing or did not start."""


def require_binary(name: str) -> str:
    """The path of ``name``; raises :class:`RtspToolError` saying to run the setup when it is missing."""
    path = shutil.which(name)
    if path is None:
        raise RtspToolError(f"{name!r} not found on PATH: {SETUP_HINT}")
    return path


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def free_udp_range(count: int = 64, attempts: int = 50) -> int:
    """An even port ``p`` such that UDP ports ``p .. p+count-1`` on 127.0.0.1 are free right now."""
    rng = random.Random()
    for _ in range(attempts):
        base = rng.randrange(30000, 60000 - count, 2)
        socks: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind((HOST, port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RtspToolError(f"no run of {count} free UDP ports found on {HOST}")


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
        return True
    return False


def _terminate(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """Stop ``proc`` and its process group: SIGTERM, then SIGKILL."""
    if proc.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            continue


def _tail(path: Path, chars: int = 2000) -> str:
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace")[-chars:]
    return ""


class RtspServer:
    """``rtsp-server-perl`` on free loopback ports, as a context manager.

    Example:
        >>> with RtspServer() as server:  # doctest: +SKIP
        ...     server.url("cam1")
        'rtsp://127.0.0.1:40123/cam1'
    """

    def __init__(self, *, log_dir: Path | None = None, startup_timeout_s: float = 15.0) -> None:
        self.client_port = 0
        self.source_port = 0
        self.rtp_start_port = 0
        self._startup_timeout_s = startup_timeout_s
        self._own_log_dir = log_dir is None
        # A fresh name under the temp dir, created by start() so a failed start leaves nothing behind.
        self.log_dir = (
            Path(tempfile.gettempdir()) / f"rtsp-server-{uuid.uuid4().hex[:12]}" if log_dir is None else log_dir
        )
        self.log_path = self.log_dir / "rtsp-server.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._publishers: list[RtspPublisher] = []

    def start(self) -> RtspServer:
        """Start the server and wait until both ports accept connections (retries on a port race)."""
        require_binary("rtsp-server-perl")  # the Debian package: its RTSP::Server library runs below
        require_binary("ffmpeg")
        perl = require_binary("perl")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        last = ""
        for _ in range(3):
            self.client_port, self.source_port = free_tcp_port(), free_tcp_port()
            self.rtp_start_port = free_udp_range()
            cmd = [
                perl,
                "-e",
                LAUNCHER,
                str(self.rtp_start_port),
                "-c",
                str(self.client_port),
                "-s",
                str(self.source_port),
                "--rtp_start_port",
                str(self.rtp_start_port),
                "--client_listen_address",
                HOST,
                "--source_listen_address",
                HOST,
                "-l",
                "2",
            ]
            with open(self.log_path, "ab") as log:
                self._proc = subprocess.Popen(
                    cmd,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            deadline = time.monotonic() + self._startup_timeout_s
            while time.monotonic() < deadline and self._proc.poll() is None:
                if _port_open(self.client_port) and _port_open(self.source_port):
                    return self
                time.sleep(0.05)
            _terminate(self._proc)
            last = _tail(self.log_path)
        self.stop()
        raise RtspToolError(f"rtsp-server-perl did not start: {last or 'no output'}")

    def stop(self) -> None:
        """Stop every publisher started through :meth:`publisher`, then the server."""
        for pub in self._publishers:
            pub.stop()
        if self._proc is not None:
            _terminate(self._proc)
        if self._own_log_dir:
            shutil.rmtree(self.log_dir, ignore_errors=True)

    def __enter__(self) -> RtspServer:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def url(self, path: str, *, user: str | None = None, password: str | None = None) -> str:
        """The viewer URL of ``path``; credentials are accepted and ignored by this server."""
        auth = ""
        if user is not None:
            auth = quote(user, safe="") + (f":{quote(password, safe='')}" if password is not None else "") + "@"
        return f"rtsp://{auth}{HOST}:{self.client_port}/{path.lstrip('/')}"

    def logs(self, chars: int = 3000) -> str:
        """The ends of the server's and publishers' logs, for assertion messages."""
        parts = [f"--- {self.log_path.name}\n{_tail(self.log_path, chars)}"]
        parts += [f"--- {p.log_path.name}\n{_tail(p.log_path, chars)}" for p in self._publishers]
        return "\n".join(parts)

    def publish_url(self, path: str) -> str:
        """Where a source ANNOUNCEs ``path``."""
        return f"rtsp://{HOST}:{self.source_port}/{path.lstrip('/')}"

    def describe(self, path: str) -> int | None:
        """The status code of an RTSP DESCRIBE of ``path`` on the client port (200 = being published)."""
        request = f"DESCRIBE {self.url(path)} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n\r\n"
        try:
            with socket.create_connection((HOST, self.client_port), timeout=2.0) as s:
                s.sendall(request.encode())
                head = s.recv(256).decode(errors="replace")
        except OSError:
            return None
        parts = head.split(" ", 2)
        return int(parts[1]) if len(parts) >= 2 and parts[0].startswith("RTSP/") and parts[1].isdigit() else None

    def publisher(self, path: str, video: Path | str, **kwargs: Any) -> RtspPublisher:
        """A (not yet started) :class:`RtspPublisher` of ``video`` at ``path``, stopped with the server."""
        pub = RtspPublisher(self, path, video, **kwargs)
        self._publishers.append(pub)
        return pub


class RtspPublisher:
    """An ``ffmpeg`` process that loops a video file into ``path`` of an :class:`RtspServer`.

    The stream is scaled down and encoded for speed (x264 ultrafast/zerolatency) with a keyframe every
    ``gop`` frames so a viewer that joins mid-stream decodes a picture quickly.

    Example:
        >>> with server.publisher("cam1", "vtest.avi") as pub:  # doctest: +SKIP
        ...     pub.restart()
    """

    def __init__(
        self,
        server: RtspServer,
        path: str,
        video: Path | str,
        *,
        size: tuple[int, int] = (384, 288),
        gop: int = 10,
        ready_timeout_s: float = 20.0,
    ) -> None:
        self.server = server
        self.path = path
        self.video = Path(video)
        self.size = size
        self.gop = gop
        self.ready_timeout_s = ready_timeout_s
        self.log_path = server.log_dir / f"ffmpeg-{path.replace('/', '_')}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        width, height = self.size
        return [
            require_binary("ffmpeg"),
            "-nostdin",
            "-loglevel",
            "warning",
            "-re",
            "-stream_loop",
            "-1",
            "-i",
            str(self.video),
            "-an",
            "-vf",
            f"scale={width}:{height}",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            "-g",
            str(self.gop),
            "-f",
            "rtsp",
            self.server.publish_url(self.path),
        ]

    @property
    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, wait: bool = True) -> RtspPublisher:
        """Start publishing; with ``wait``, return once the server lists the path (DESCRIBE 200)."""
        if not self.video.is_file():
            raise RtspToolError(f"video to publish not found: {self.video}")
        if self.is_running:
            return self
        deadline = time.monotonic() + self.ready_timeout_s
        while True:
            with open(self.log_path, "ab") as log:
                self._proc = subprocess.Popen(
                    self.command(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            if not wait:
                return self
            # DESCRIBE answers 200 from ANNOUNCE on, but RECORD can still fail (ffmpeg then exits):
            # ready means listed twice, 0.5 s apart, with ffmpeg still running.
            listed_since: float | None = None
            while time.monotonic() < deadline and self._proc.poll() is None:
                if self.server.describe(self.path) != 200:
                    listed_since = None
                elif listed_since is None:
                    listed_since = time.monotonic()
                elif time.monotonic() - listed_since >= 0.5:
                    return self
                time.sleep(0.1)
            # An immediate restart can race the server unmounting the previous publisher (403): retry.
            if time.monotonic() >= deadline:
                self.stop()
                raise RtspToolError(f"ffmpeg did not start publishing {self.path}: {_tail(self.log_path)}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Kill the publisher's process group; the server then unmounts the path."""
        if self._proc is not None:
            _terminate(self._proc)
            self._proc = None

    def restart(self) -> RtspPublisher:
        self.stop()
        return self.start()

    def pause(self) -> None:
        """SIGSTOP the publisher: the path stays mounted but no packet flows (a frozen encoder)."""
        if self._proc is not None:
            os.killpg(self._proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT a paused publisher."""
        if self._proc is not None:
            os.killpg(self._proc.pid, signal.SIGCONT)

    def __enter__(self) -> RtspPublisher:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


class SilentServer:
    """A TCP server on loopback that accepts connections and never sends a byte (a hung camera).

    Connections are held open until :meth:`stop`; ``accepted`` counts them, so a test can wait until a
    reader has really connected rather than sleep.

    Example:
        >>> with SilentServer() as silent:
        ...     with socket.create_connection((HOST, silent.port)) as c:
        ...         c.settimeout(0.2)
        ...         try:
        ...             c.recv(1)
        ...         except TimeoutError:
        ...             print("silent")
        silent
    """

    def __init__(self) -> None:
        self._listener = socket.create_server((HOST, 0), backlog=64)
        self.port = int(self._listener.getsockname()[1])
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name=f"silent-{self.port}", daemon=True)

    @property
    def accepted(self) -> int:
        with self._lock:
            return len(self._held)

    def url(self, scheme: str = "rtsp", *, user: str | None = None, password: str | None = None) -> str:
        auth = f"{quote(user, safe='')}:{quote(password or '', safe='')}@" if user is not None else ""
        return f"{scheme}://{auth}{HOST}:{self.port}/stream"

    def start(self) -> SilentServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(5)
        with self._lock:
            for conn in self._held:
                conn.close()
            self._held.clear()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:  # closed by stop()
                return
            with self._lock:
                self._held.append(conn)

    def __enter__(self) -> SilentServer:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def rtsp_server_fixture(scope: Any = "module") -> Callable[..., Iterator[RtspServer]]:
    """A pytest fixture (of ``scope``) that yields a started :class:`RtspServer` and stops it after.

    Example (in a conftest.py): ``rtsp_server = rtsp_server_fixture(scope="module")``.
    """

    @pytest.fixture(scope=scope)
    def _rtsp_server() -> Iterator[RtspServer]:
        with RtspServer() as server:
            yield server

    return _rtsp_server


rtsp_server = rtsp_server_fixture(scope="module")
