"""Webhooks: each event POSTed as JSON to an HTTP endpoint, signed with HMAC-SHA256.

Headers: ``Content-Type: application/json``, ``X-Actwatch-Event-Id`` (consumers dedupe on it: a retry
may deliver twice), ``X-Actwatch-Timestamp`` (Unix seconds) and, with a ``secret``,
``X-Actwatch-Signature: sha256=<hex>`` over ``"<timestamp>." + body``
(:func:`~actwatch.delivery.payloads.verify` checks it). Any 2xx acknowledges; anything else (or no answer
within ``timeout_s``) is a failure, retried by the outbox with backoff.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from actwatch.config import mask_url
from actwatch.delivery.outbox import DeliveryError, OutboxItem
from actwatch.delivery.payloads import EVENT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from actwatch.delivery.settings import WebhookTarget


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirected POST would become a GET without the body: a redirect is a failure to fix in the config.
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class WebhookDelivery:
    """One webhook target (``webhook:<name>`` in metrics)."""

    def __init__(self, settings: WebhookTarget, *, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.name = f"webhook:{settings.name}"
        self._clock = clock
        self._opener = urllib.request.build_opener(_NoRedirect)

    def start(self) -> None:
        """Nothing to connect: each delivery is one request."""

    def stop(self) -> None:
        """Nothing to close."""

    def request(self, item: OutboxItem) -> urllib.request.Request:
        """The signed POST of ``item`` (its body is the event JSON)."""
        body = json.dumps(item.payload, separators=(",", ":")).encode()
        timestamp = int(self._clock())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "actwatch-webhook",
            EVENT_ID_HEADER: item.event_id,
            TIMESTAMP_HEADER: str(timestamp),
        }
        if self.settings.secret is not None:
            headers[SIGNATURE_HEADER] = sign(body, self.settings.secret.get_secret_value(), timestamp=timestamp)
        return urllib.request.Request(self.settings.url, data=body, headers=headers, method="POST")

    def deliver(self, item: OutboxItem) -> None:
        shown = mask_url(self.settings.url)
        try:
            with self._opener.open(self.request(item), timeout=self.settings.timeout_s) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            raise DeliveryError(f"webhook {self.settings.name} ({shown}) answered HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeliveryError(f"webhook {self.settings.name} ({shown}) unreachable: {reason}") from None
        if not 200 <= status < 300:
            raise DeliveryError(f"webhook {self.settings.name} ({shown}) answered HTTP {status}")
