"""Short-lived signed URLs for media that ``<img>`` and ``<video>`` tags load (they cannot send headers).

A signed URL is the path plus ``expires`` (Unix seconds) and ``signature``, an HMAC-SHA256 of path and
expiry with a secret only the server knows (random per process, so a restart invalidates them all). The
API token never appears in a URL. Only media paths (:data:`SIGNABLE`) can be signed; other query
parameters (``overlay``, ``width``, a cache-buster) are not covered: they change how a frame is drawn,
not which one may be seen.

Example:
    >>> signer = MediaSigner(b"k" * 32, ttl_s=60, clock=lambda: 1000.0)
    >>> url = signer.sign("/cameras/door/latest.jpg")
    >>> url  # doctest: +ELLIPSIS
    '/cameras/door/latest.jpg?expires=1060&signature=...'
    >>> from urllib.parse import urlsplit, parse_qs
    >>> q = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    >>> signer.verify("/cameras/door/latest.jpg", q), signer.verify("/cameras/hall/latest.jpg", q)
    (True, False)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import time
from collections.abc import Callable, Mapping
from urllib.parse import quote

_ID = r"[A-Za-z0-9_-]{1,64}"  # an event id (store.EVENT_ID_PATTERN)
_CAMERA_ID = r"[a-z0-9_-]{1,64}"  # a camera id (config.CAMERA_ID_PATTERN): a signable path is one the route takes
SIGNABLE_PATTERN = (
    rf"^(/cameras/{_CAMERA_ID}/(latest\.jpg|stream\.mjpeg)|/events/{_ID}/(snapshot|crops|clip)"
    r"|/predictions/[0-9a-f]{32}/video)$"
)
"""The paths a signed URL may open: live frames, an event's evidence, an upload job's annotated video."""
SIGNABLE = re.compile(SIGNABLE_PATTERN)


class MediaSigner:
    """Signs and checks media URLs; ``secret`` defaults to 32 random bytes."""

    def __init__(
        self, secret: bytes | None = None, *, ttl_s: float = 60.0, clock: Callable[[], float] = time.time
    ) -> None:
        self._secret = secret if secret is not None else os.urandom(32)
        self.ttl_s = ttl_s
        self._clock = clock

    @staticmethod
    def signable(path: str) -> bool:
        return SIGNABLE.match(path) is not None

    def _mac(self, path: str, expires: int) -> str:
        digest = hmac.new(self._secret, f"{path}\n{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def sign(self, path: str) -> str:
        """``path`` with ``expires`` and ``signature``; ``ValueError`` for a path that is not media."""
        if not self.signable(path):
            raise ValueError(f"{path!r} is not a media path that can be signed")
        expires = int(self._clock() + self.ttl_s)
        return f"{path}?expires={expires}&signature={quote(self._mac(path, expires))}"

    def expires_of(self, url: str) -> int:
        return int(url.split("expires=", 1)[1].split("&", 1)[0])

    def verify(self, path: str, query: Mapping[str, str]) -> bool:
        """Whether ``query`` holds an unexpired signature of ``path``."""
        expires, signature = query.get("expires", ""), query.get("signature", "")
        if not self.signable(path) or not expires.isdigit() or not signature or len(expires) > 12:
            return False
        if int(expires) < self._clock():
            return False
        return hmac.compare_digest(self._mac(path, int(expires)), signature)
