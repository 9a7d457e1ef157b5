"""Camera/video source URLs: parsing, validation and credential masking.

A source is given by the user as one string: an RTSP(S) URL, an HTTP(S) MJPEG URL, a video file path
(or ``file://`` URL), or a webcam (``"0"``, ``webcam:0``, ``/dev/video0``). :meth:`SourceSpec.parse`
turns it into a :class:`SourceSpec` or raises :class:`~actwatch.errors.SourceError` saying what was
wrong and which forms are accepted.

CCTV URLs usually carry a user name and password (``rtsp://admin:secret@10.0.0.5/stream1``) and
OpenCV/FFmpeg error messages often echo the URL, so everything that can reach a log, the API or an
event goes through :func:`mask_credentials` first.

Example:
    >>> spec = SourceSpec.parse("rtsp://admin:secret@10.0.0.5:554/stream1")
    >>> spec.kind, spec.masked, spec.is_live
    ('rtsp', 'rtsp://admin:***@10.0.0.5:554/stream1', True)
    >>> mask_credentials("could not open http://u:pw@cam/video.mjpg?token=abc&x=1")
    'could not open http://u:***@cam/video.mjpg?token=***&x=1'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from actwatch.errors import SourceError

SourceKind = Literal["rtsp", "http", "file", "webcam"]

MASK = "***"

ACCEPTED_FORMS = (
    "rtsp://[user:pass@]host[:port]/path, rtsps://..., http(s)://host/stream.mjpg (MJPEG), "
    "a video file path or file:///path/to/video.mp4, or a webcam: 0, webcam:0, /dev/video0"
)

_SCHEME_KIND: dict[str, SourceKind] = {
    "rtsp": "rtsp",
    "rtsps": "rtsp",
    "http": "http",
    "https": "http",
}

# A URL scheme as it can appear anywhere in free text (an FFmpeg message, a traceback).
_SCHEME_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
# Where a URL embedded in text ends: whitespace or the quotes/brackets messages wrap URLs in.
_URL_END = re.compile(r"[\s\"'<>]")
# Query/fragment parameters whose values are secrets (camera vendors and token-based streams).
_SECRET_PARAM = re.compile(
    r"(?i)([?&;#](?:password|passwd|pwd|pass|token|access_token|auth|authorization|key|api_key|apikey"
    r"|secret|signature|sig|credentials?)=)[^&;#\s\"'<>]*"
)
_WEBCAM_PREFIX = re.compile(r"(?i)^webcam:(\d+)$")
_WEBCAM_DEVICE = re.compile(r"^/dev/video(\d+)$")


def _mask_userinfo(rest: str) -> str:
    """Mask the ``user:password@`` part of ``rest`` (a URL without its ``scheme://``).

    An unencoded ``@`` or ``/`` inside a password is common in hand-typed camera URLs, so the
    userinfo runs to the *last* ``@`` of the authority; when a ``:`` comes before the first ``/`` the
    URL may be ``user:pa/ss@host`` and the userinfo runs to the last ``@`` of the whole URL. This can
    mask more than needed (``host:554/a@b``) but never shows a password.
    """
    if "@" not in rest:
        return rest
    authority_end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    first_at = rest.find("@")
    if first_at < authority_end:
        at = rest.rfind("@", 0, authority_end)
    elif ":" in rest[:authority_end]:
        at = rest.rfind("@")
    else:
        return rest  # an '@' in the path or query only: no credentials
    userinfo = rest[:at]
    if ":" in userinfo:
        user = userinfo.split(":", 1)[0]
        masked = f"{user}:{MASK}"
    else:
        # A lone userinfo is often an access token (``https://TOKEN@host``): hide it all.
        masked = MASK
    return masked + rest[at:]


def mask_credentials(text: str) -> str:
    """Replace every URL password (and secret query parameter) inside ``text`` with ``***``.

    Works on whole URLs and on arbitrary text that contains URLs, such as FFmpeg error messages.

    Example:
        >>> mask_credentials("open rtsp://admin:hunter2@cam:554/live failed (rtsp://x@y/z)")
        'open rtsp://admin:***@cam:554/live failed (rtsp://***@y/z)'
    """
    if not text:
        return text
    out: list[str] = []
    pos = 0
    for match in _SCHEME_IN_TEXT.finditer(text):
        if match.start() < pos:  # inside a URL already handled
            continue
        end_match = _URL_END.search(text, match.end())
        end = end_match.start() if end_match else len(text)
        out.append(text[pos : match.end()])
        out.append(_mask_userinfo(text[match.end() : end]))
        pos = end
    out.append(text[pos:])
    return _SECRET_PARAM.sub(lambda m: m.group(1) + MASK, "".join(out))


@dataclass(frozen=True, repr=False)
class SourceSpec:
    """A validated camera/video source.

    ``url`` is the real address (with credentials) and is used only to open the source; everything
    shown to people uses ``masked``. ``repr()``/``str()`` never show the secret.

    Example:
        >>> s = SourceSpec.parse("rtsp://user:pw@127.0.0.1:8554/cam1")
        >>> s
        SourceSpec(kind='rtsp', masked='rtsp://user:***@127.0.0.1:8554/cam1', is_live=True)
        >>> SourceSpec.parse("webcam:0").url
        '0'
    """

    kind: SourceKind
    url: str
    masked: str
    is_live: bool

    @classmethod
    def parse(cls, url: str) -> SourceSpec:
        """Validate ``url`` and classify it; raises :class:`SourceError` if it is not a usable source."""
        if not isinstance(url, str):
            raise SourceError(f"source must be a string, got {type(url).__name__}; accepted: {ACCEPTED_FORMS}")
        text = url.strip()
        if not text:
            raise SourceError(f"source is empty; accepted: {ACCEPTED_FORMS}")
        if text.isdigit():
            return cls._webcam(text)
        if m := _WEBCAM_PREFIX.match(text):
            return cls._webcam(str(int(m.group(1))))
        if _WEBCAM_DEVICE.match(text):
            return cls._webcam(text)
        if "://" in text:
            scheme = text.split("://", 1)[0].lower()
            if scheme == "file":
                return cls._file(unquote(urlsplit(text).path), text)
            kind = _SCHEME_KIND.get(scheme)
            if kind is None:
                raise SourceError(
                    f"unsupported source scheme {scheme + '://'!r} in {mask_credentials(text)!r}; "
                    f"accepted: {ACCEPTED_FORMS}"
                )
            return cls._network(kind, text)
        return cls._file(text, text)

    @classmethod
    def _webcam(cls, device: str) -> SourceSpec:
        return cls(kind="webcam", url=device, masked=device, is_live=True)

    @classmethod
    def _network(cls, kind: SourceKind, text: str) -> SourceSpec:
        masked = mask_credentials(text)
        try:
            parts = urlsplit(text)
            _ = parts.port  # raises ValueError on a non-numeric or out-of-range port
        except ValueError as exc:
            raise SourceError(f"malformed {kind} URL {masked!r} ({exc}); accepted: {ACCEPTED_FORMS}") from None
        if not parts.hostname:
            raise SourceError(f"{kind} URL {masked!r} has no host; accepted: {ACCEPTED_FORMS}")
        return cls(kind=kind, url=text, masked=masked, is_live=True)

    @classmethod
    def _file(cls, path_text: str, given: str) -> SourceSpec:
        path = Path(path_text).expanduser()
        if not path_text or not path.exists():
            raise SourceError(
                f"video file {mask_credentials(given)!r} does not exist (or the scheme is missing); "
                f"accepted: {ACCEPTED_FORMS}"
            )
        if not path.is_file():
            raise SourceError(f"{str(path)!r} is not a file; accepted: {ACCEPTED_FORMS}")
        resolved = str(path.resolve())
        return cls(kind="file", url=resolved, masked=resolved, is_live=False)

    def redact(self, text: str) -> str:
        """``text`` with URL credentials masked and this source's own secrets removed wherever they appear.

        Defence in depth for messages that quote the password without the URL around it.

        Example:
            >>> SourceSpec.parse("rtsp://u:hunter2@h/x").redact("auth failed for hunter2")
            'auth failed for ***'
        """
        text = mask_credentials(text)
        for secret in self._secrets():
            text = text.replace(secret, MASK)
        return text

    def _secrets(self) -> list[str]:
        if self.kind not in ("rtsp", "http"):
            return []
        parts = urlsplit(self.url)
        found = [parts.password or ""]
        found += [m.group(0).split("=", 1)[1] for m in _SECRET_PARAM.finditer(self.url)]
        # Short values would garble every message they occur in and protect nothing.
        out = {v for s in found for v in (s, unquote(s)) if len(v) >= 3}
        return sorted(out, key=len, reverse=True)

    @property
    def webcam_index(self) -> int | None:
        """The OpenCV camera index for ``webcam:N``/``"N"`` sources, else ``None``."""
        return int(self.url) if self.kind == "webcam" and self.url.isdigit() else None

    def __repr__(self) -> str:
        return f"SourceSpec(kind={self.kind!r}, masked={self.masked!r}, is_live={self.is_live!r})"

    def __str__(self) -> str:
        return self.masked
