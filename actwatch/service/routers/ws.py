"""``WS /ws/events``: live alerts (and, on request, live track boxes).

Authentication, in this order: ``?token=`` in the URL, an ``Authorization: Bearer`` header, or — when
neither came with the handshake — a first message ``{"type": "auth", "token": "..."}`` within
``AUTH_TIMEOUT_S`` (browsers cannot set headers, and a token in the URL ends up in access logs, so the
dashboard uses the first message). The connection is accepted first and then closed with code 1008
(policy violation) if the token is missing or wrong, so every client sees the same close code. Wrong
tokens count against the client address's budget (``server.auth_failures_per_minute``; an exhausted one is
closed with 1008 at once), and at most ``server.max_pending_websockets`` connections may wait for their
``auth`` message at a time (more are closed with 1013, try again later).

Server → client: ``hello`` (after auth), ``event``, ``tracks`` (only with ``"tracks": true``),
``dropped`` (``count`` messages were dropped because the client read too slowly), ``subscribed``,
``pong``, ``error``. Client → server: ``subscribe`` (``cameras``/``labels``: lists or null for all,
``tracks``: bool) and ``ping``. A message of any other shape (not JSON, nested too deep, a number of more
digits than Python converts, not an object, an unknown type, binary, longer than ``MAX_MESSAGE_CHARS``) is
answered with ``error`` and the connection stays open; a frame over
:data:`~actwatch.service.server.WS_MAX_FRAME_BYTES` is closed by the protocol with 1009.

Example:
    >>> [r.path for r in router().routes]
    ['/ws/events']
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from fastapi import APIRouter, WebSocket, WebSocketDisconnect, status
from pydantic import BaseModel, ValidationError

import actwatch
from actwatch.service.auth import bearer_from_header, token_matches
from actwatch.service.broadcast import Broadcaster, Client
from actwatch.service.deps import ServiceState, get_services
from actwatch.service.messages import (
    ErrorMessage,
    HelloMessage,
    PongMessage,
    ReplyMessage,
    SubscribedMessage,
    Subscription,
)
from actwatch.service.schemas import AuthMessage, PingMessage, SubscribeMessage
from actwatch.service.throttle import client_address

log = logging.getLogger(__name__)

AUTH_TIMEOUT_S = 10.0
MAX_MESSAGE_CHARS = 65_536
_MESSAGES: dict[str, type[BaseModel]] = {"subscribe": SubscribeMessage, "ping": PingMessage}


async def _authenticate(websocket: WebSocket, services: ServiceState) -> bool:
    """Whether the client sent the right token; if not, the connection is closed (1008, or 1013 when too
    many connections are already waiting for their ``auth`` message)."""
    client = client_address(websocket.scope)
    throttle = services.auth_throttle
    if throttle.retry_after(client) is not None:
        await _close(websocket, status.WS_1008_POLICY_VIOLATION, "too many failed authentication attempts")
        return False
    given = websocket.query_params.get("token") or bearer_from_header(websocket.headers.get("authorization"))
    if given is None:
        pending = services.pending_websockets
        if not pending.acquire():
            await _close(websocket, status.WS_1013_TRY_AGAIN_LATER, "too many connections waiting to authenticate")
            return False
        try:
            given = await _first_message_token(websocket)
        except WebSocketDisconnect:
            return False
        finally:
            pending.release()
    if token_matches(services.token.get_secret_value(), given):
        return True
    throttle.failed(client)
    await _close(websocket, status.WS_1008_POLICY_VIOLATION, "missing or invalid token")
    return False


async def _first_message_token(websocket: WebSocket) -> str | None:
    """The token of a first message ``{"type": "auth", "token": ...}``; ``None`` for anything else."""
    try:
        message = await asyncio.wait_for(websocket.receive(), timeout=AUTH_TIMEOUT_S)
    except TimeoutError:
        return None
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", status.WS_1000_NORMAL_CLOSURE))
    text = message.get("text")
    if text is None or len(text) > MAX_MESSAGE_CHARS:
        return None
    try:
        return AuthMessage.model_validate_json(text).token
    except ValidationError:  # pydantic's JSON parser bounds depth and number size itself
        return None


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):
        await websocket.close(code=code, reason=reason)


def _handle(text: str, client: Client, broadcaster: Broadcaster) -> ReplyMessage:
    """The reply to one client message."""
    if len(text) > MAX_MESSAGE_CHARS:
        return ErrorMessage(f"message too long ({len(text)} characters, at most {MAX_MESSAGE_CHARS})")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return ErrorMessage(f"malformed JSON: {exc.msg} at position {exc.pos}")
    except RecursionError:
        return ErrorMessage("malformed JSON: nested too deeply")
    except ValueError as exc:  # e.g. an integer of more digits than Python converts (sys.get_int_max_str_digits)
        return ErrorMessage(f"malformed JSON: {exc}")
    if not isinstance(data, dict):
        got = {list: "an array", str: "a string", bool: "true or false", type(None): "null"}.get(type(data), "a number")
        return ErrorMessage(f'a message is a JSON object such as {{"type": "ping"}}, got {got}')
    kind = data.get("type")
    schema = _MESSAGES.get(kind) if isinstance(kind, str) else None
    if schema is None:
        return ErrorMessage(f"unknown message type {kind!r}; expected one of: {', '.join(_MESSAGES)}")
    try:
        message = schema.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'message'}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        return ErrorMessage(f"invalid {kind} message: {problems}")
    if isinstance(message, SubscribeMessage):
        broadcaster.subscribe(client, Subscription.of(message.cameras, message.labels, message.tracks))
        return SubscribedMessage(client.subscription)
    return PongMessage()


async def _send_loop(websocket: WebSocket, client: Client) -> None:
    """Forward the client's queue to the socket; a slow socket only delays this client."""
    try:
        while (text := await client.get()) is not None:
            await websocket.send_text(text)
    except (WebSocketDisconnect, RuntimeError, OSError):
        return
    # The broadcaster closed the client: the service is shutting down.
    with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):
        await websocket.close(code=status.WS_1001_GOING_AWAY)


def router() -> APIRouter:
    api = APIRouter(tags=["live"])

    @api.websocket("/ws/events")
    async def events_ws(websocket: WebSocket) -> None:
        services = get_services(websocket)
        await websocket.accept()
        if not await _authenticate(websocket, services):
            return
        broadcaster = services.broadcaster
        client = broadcaster.connect(Subscription())
        client.reply(
            HelloMessage(
                version=actwatch.__version__,
                cameras=tuple(services.cameras.ids()),
                subscription=client.subscription,
                queue_size=client.maxsize,
            )
        )
        sender = asyncio.create_task(_send_loop(websocket, client))
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text")
                if text is None:
                    client.reply(ErrorMessage("binary messages are not supported; send JSON text"))
                    continue
                client.reply(_handle(text, client, broadcaster))
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            broadcaster.disconnect(client)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender

    return api
