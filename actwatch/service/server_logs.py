"""The server's logs without secrets: uvicorn's logging set-up with a filter that redacts them.

uvicorn writes each request line to its access log and each WebSocket handshake ("WebSocket
/ws/events?token=… [accepted]") to its error log, query string included. The API token may arrive
as ``?token=`` (the WebSocket's query form, kept for clients that cannot send a first message), and
camera URLs with passwords may appear in messages, so every record that reaches a handler of the
server's logs first goes through :class:`SecretRedactingFilter`: query values of secret parameters
(``token``, ``password``, ``key``… see :func:`~actwatch.capture.sources.mask_credentials`) and URL
passwords become ``***``.

Example:
    >>> record = logging.LogRecord("uvicorn.access", logging.INFO, "", 0,
    ...     '%s - "%s %s HTTP/%s" %d', ("127.0.0.1:5000", "GET", "/ws/events?token=s3cret&x=1", "1.1", 101), None)
    >>> SecretRedactingFilter().filter(record), record.getMessage()
    (True, '127.0.0.1:5000 - "GET /ws/events?token=***&x=1 HTTP/1.1" 101')
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from actwatch.capture.sources import mask_credentials


def _redact(value: Any) -> Any:
    return mask_credentials(value) if isinstance(value, str) else value


class SecretRedactingFilter(logging.Filter):
    """Masks secret query values and URL passwords in a record's message and arguments (keeps the record).

    Arguments are redacted one by one rather than the whole message replaced, because uvicorn's
    access formatter reads the request line from the arguments.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = _redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _redact(arg) for key, arg in record.args.items()}
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text: a traceback's exception message may quote a camera URL.
            record.exc_text = mask_credentials(logging.Formatter().formatException(record.exc_info))
        return True


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's own logging configuration (its formats and streams) with the redacting filter on every
    handler; pass it as ``uvicorn.Config(log_config=...)`` wherever the service is served.

    Example:
        >>> config = uvicorn_log_config()
        >>> sorted(name for name, h in config["handlers"].items() if "secrets" in h["filters"])
        ['access', 'default']
    """
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {**config.get("filters", {}), "secrets": {"()": SecretRedactingFilter}}
    for handler in config["handlers"].values():
        handler["filters"] = [*handler.get("filters", []), "secrets"]
    return config


def redact_root_handlers() -> None:
    """Put the redacting filter on the root logger's handlers (libraries' debug logs, e.g. the
    ``websockets`` handshake, go there), once each."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, SecretRedactingFilter) for f in handler.filters):
            handler.addFilter(SecretRedactingFilter())
