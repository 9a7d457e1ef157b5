"""``WS /ws/events``: live alerts (and, on request, live track boxes).

Authentication, in this order: ``?token=`` in the URL, an ``Authorization: Bearer`` header, or — when
neither came with the handshake — a first message ``{"type": "auth", "token": "..."}`` within
``AUTH_TIMEOUT_S`` (browsers cannot set headers, and a token in the URL ends up in access logs, so the
dashboard uses the first message). The connection is accepted first and then closed with code 1008
(policy violation) if the token is missing or wrong, so every client sees the same close code.

Server → client: ``hello`` (after auth), ``event``, ``tracks`` (only with ``"tracks": true``),
``dropped`` (``count`` messages were dropped because the client read too slowly), ``subscribed``,
``pong``, ``error``. Client → server: ``subscribe`` (``cameras``/``labels``: lists or null for all,
``tracks``: bool) and ``ping``. A malformed or unknown message is answered with ``error``; the
connection stays open.

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
from actwatch.service.broadcast import Client
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

log = logging.getLogger(__name__)

AUTH_TIMEOUT_S = 10.0
MAX_MESSAGE_CHARS = 65_536
_MESSAGES: dict[str, type[BaseModel]] = {"subscribe": SubscribeMessage, "ping": PingMessage}


async def _authenticate(websocket: WebSocket, services: ServiceState) -> bool:
    expected = services.token.get_secret_value()
    given = websocket.query_params.get("token") or bearer_from_header(websocket.headers.get("authorization"))
    if given is None:
        try:
            first = await asyncio.wait_for(websocket.receive_text(), timeout=AUTH_TIMEOUT_S)
            given = AuthMessage.model_validate_json(first[:MAX_MESSAGE_CHARS]).token
        except (TimeoutError, ValidationError, KeyError, RuntimeError):
            given = None
        except WebSocketDisconnect:
            return False
    if token_matches(expected, given):
        return True
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason="missing or invalid token")
    return False


def _handle(text: str, client: Client) -> ReplyMessage:
    """The reply to one client message."""
    if len(text) > MAX_MESSAGE_CHARS:
        return ErrorMessage(f"message too long ({len(text)} characters, at most {MAX_MESSAGE_CHARS})")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return ErrorMessage(f"malformed JSON: {exc.msg} at position {exc.pos}")
    kind = data.get("type") if isinstance(data, dict) else None
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
        client.subscription = Subscription.of(message.cameras, message.labels, message.tracks)
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
                client.reply(_handle(text, client))
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            broadcaster.disconnect(client)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender

    return api
