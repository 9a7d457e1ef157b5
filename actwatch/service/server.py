"""The one way the service is served: ``actwatch serve``, ``actwatch demo`` and the tests all use this.

The WebSocket slow-client contract (README, "WebSocket") comes from these settings together:

- ``ws="websockets-sansio"``: its ``send`` waits while the connection's write buffer is over its
  high-water mark, so a client that reads slowly holds up only its own sender task and its own queue fills
  (:class:`~actwatch.service.broadcast.Client` then drops the oldest messages and tells it the count).
  Keepalive pings are written beside that wait, never behind it.
- Keepalive pings every ``server.ws_ping_interval_s`` but **no ping timeout**: a ping is queued behind the
  messages already sent, so a slow reader's pong comes late, and a ping timeout would close exactly the
  clients the queue is there to serve (uvicorn's default closed them with 1011 after about 40 s).
- ``TCP_USER_TIMEOUT = server.dead_peer_timeout_s`` on the listening socket (accepted connections inherit
  it): the kernel ends a connection whose data stays unacknowledged that long (a vanished peer: the pings
  make sure there is always data in flight) or whose receive window stays shut that long (a client that
  reads nothing at all).
- ``SO_SNDBUF = server.send_buffer_bytes``, fixed (which also turns off the kernel's autotuning): what a
  slow client has in flight is bounded, so it is told about drops instead of reading megabytes of stale
  messages.

Example:
    >>> from actwatch.config import ServerConfig
    >>> settings = ServerConfig(ws_ping_interval_s=5)
    >>> config = uvicorn_config(object(), settings)
    >>> config.ws, config.ws_ping_interval, config.ws_ping_timeout, config.ws_max_size
    ('websockets-sansio', 5.0, None, 1048576)
    >>> with listen_socket(settings, port=0) as sock:
    ...     sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT)
    120000
"""

from __future__ import annotations

import contextlib
import socket
import sys
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from actwatch.config import ServerConfig
from actwatch.errors import ConfigError
from actwatch.service.server_logs import uvicorn_log_config

# Frames up to this size reach the handler, which answers anything over its own limit
# (routers/ws.py MAX_MESSAGE_CHARS) with an error; larger ones are closed with 1009 by the protocol.
WS_MAX_FRAME_BYTES = 1 << 20


def uvicorn_config(app: Any, settings: ServerConfig, *, log_level: str = "info") -> uvicorn.Config:
    """uvicorn's settings for ``app`` (run it with :func:`serve` or ``uvicorn.Server(...).run(sockets=...)``)."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level.lower(),
        lifespan="on",
        ws="websockets-sansio",
        ws_max_size=WS_MAX_FRAME_BYTES,
        ws_ping_interval=settings.ws_ping_interval_s,
        ws_ping_timeout=None,
        log_config=uvicorn_log_config(),  # no token or URL password in the access log
    )


def listen_socket(settings: ServerConfig, *, port: int | None = None) -> socket.socket:
    """A listening TCP socket on ``settings.host`` (``port`` overrides ``settings.port``; 0: any free one).

    ``serve`` opens it before the models load (minutes on a CPU), so a port in use is found at once.
    Raises :class:`~actwatch.errors.ConfigError` when the address cannot be bound.

    Example:
        >>> from actwatch.config import ServerConfig
        >>> with listen_socket(ServerConfig(), port=0) as taken:
        ...     listen_socket(ServerConfig(port=taken.getsockname()[1]))
        Traceback (most recent call last):
        ...
        actwatch.errors.ConfigError: cannot listen on 127.0.0.1:...
    """
    host = settings.host
    port = settings.port if port is None else port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); another program may use the port, or "
            "the address is not one of this machine: stop it, or choose another --port / server.port "
            "(--host / server.host)"
        ) from None
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(settings.dead_peer_timeout_s * 1000))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, settings.send_buffer_bytes)
    except BaseException:
        sock.close()
        raise
    return sock


def serve(app: Any, settings: ServerConfig, *, log_level: str = "info", sock: socket.socket | None = None) -> None:
    """Serve ``app`` until interrupted, on ``sock`` (default: a new :func:`listen_socket`).

    Exits with status 3 when the server did not start (as ``uvicorn.run`` does: e.g. start-up failed).
    """
    listener = sock if sock is not None else listen_socket(settings)
    server = uvicorn.Server(uvicorn_config(app, settings, log_level=log_level))
    with listener, contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[listener])
    if not server.started:
        sys.exit(STARTUP_FAILURE)
