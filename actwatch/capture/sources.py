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

# No at sign here: messages are masked (again) at the edges, and an at sign after a "scheme://" would
# read as the end of a password, masking the forms themselves.
ACCEPTED_FORMS = (
    "rtsp://host[:port]/path (with user:pass and an at sign before the host if the camera needs a login), "
    "rtsps://..., http(s)://host/stream.mjpg (MJPEG), a video file path or file:///path/to/video.mp4, "
    "or a webcam: 0, webcam:0, /dev/video0"
)

_SCHEME_KIND: dict[str, SourceKind] = {
    "rtsp": "rtsp",
    "rtsps": "rtsp",
    "http": "http",
    "https": "http",
}

# A URL scheme as it can appear anywhere in free text (an FFmpeg message, a traceback).
_SCHEME_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
# Where a lone userinfo (a token, no ':') ends in free text: tokens hold no whitespace or quotes.
_TOKEN_END = re.compile(r"[\s\"'<>/?#]")
# Control characters (C0, DEL, C1): never part of a usable URL, and they end a URL in free text (a
# password can hold a space or a quote, but not a line break).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Query/fragment parameters whose values are secrets (camera vendors and token-based streams).
_SECRET_PARAM = re.compile(
    r"(?i)([?&;#](?:password|passwd|pwd|pass|token|access_token|auth|authorization|key|api_key|apikey"
    r"|secret|signature|sig|credentials?)=)[^&;#\s\"'<>]*"
)
_WEBCAM_PREFIX = re.compile(r"(?i)^webcam:(\d+)$")
_WEBCAM_DEVICE = re.compile(r"^/dev/video(\d+)$")


def split_userinfo(rest: str) -> tuple[str, str | None, str] | None:
    """``(user, password, after)`` of ``rest`` (a URL without its ``scheme://``), or ``None`` when it
    has no userinfo; ``after`` starts at the ``@`` that ends the userinfo.

    Hand-typed camera URLs often hold unencoded ``@ / : # ? % "`` or spaces in the password, so the
    rule is the one that never cuts a password short: when a ``:`` comes before an ``@``, the
    userinfo is ``user:password`` and runs to the **last** ``@``; without a ``:`` it is a lone user
    (often an access token, shown as a whole secret) when an ``@`` ends the authority. This can
    treat more than the userinfo as secret (``host:554/a@b``) but never less.

    Example:
        >>> split_userinfo("admin:p@ss w/rd@10.0.0.5/live")
        ('admin', 'p@ss w/rd', '@10.0.0.5/live')
        >>> split_userinfo("TOKEN@host/x"), split_userinfo("host/a@b")
        (('TOKEN', None, '@host/x'), None)
    """
    at = rest.rfind("@")
    if at < 0:
        return None
    colon = rest.find(":")
    if 0 <= colon < at:
        return rest[:colon], rest[colon + 1 : at], rest[at:]
    token_end = _TOKEN_END.search(rest)
    at = rest.rfind("@", 0, token_end.start() if token_end else len(rest))
    if at < 0:
        return None  # an '@' in the path, the query or the text after the URL: no credentials
    return rest[:at], None, rest[at:]


def _mask_userinfo(rest: str) -> str:
    """``rest`` (a URL without its ``scheme://``) with the password (or lone token) replaced by ``***``."""
    parts = split_userinfo(rest)
    if parts is None:
        return rest
    user, password, after = parts
    return (f"{user}:{MASK}" if password is not None else MASK) + after


def _url_regions(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of the text after each ``scheme://`` in ``text`` that may hold its userinfo.

    A region ends at a control character (a line break), at the end of the text, or where the next
    URL starts; a ``scheme://`` inside a password (``pw a://b@host``) does not start a new URL while
    the current one has a ``:`` but no ``@`` yet, so the password is not cut in two.
    """
    regions: list[tuple[int, int]] = []
    matches = list(_SCHEME_IN_TEXT.finditer(text))
    i = 0
    while i < len(matches):
        start = matches[i].end()
        control = _CONTROL.search(text, start)
        limit = control.start() if control else len(text)
        end = limit
        j = i + 1
        while j < len(matches) and matches[j].start() < limit:
            before = text[start : matches[j].start()]
            if "@" in before or ":" not in before:
                end = matches[j].start()
                break
            j += 1
        regions.append((start, end))
        while j < len(matches) and matches[j].start() < end:
            j += 1
        i = j
    return regions


def mask_credentials(text: str) -> str:
    """Replace every URL password (and secret query parameter) inside ``text`` with ``***``.

    Works on whole URLs and on arbitrary text that contains URLs, such as FFmpeg error messages; a
    password may hold any character but a control character (see :func:`split_userinfo`).

    Example:
        >>> mask_credentials("open rtsp://admin:hunter2@cam:554/live failed (rtsp://x@y/z)")
        'open rtsp://admin:***@cam:554/live failed (rtsp://***@y/z)'
        >>> mask_credentials('rtsp://admin:my "pass" <1>@cam/live')
        'rtsp://admin:***@cam/live'
    """
    if not text:
        return text
    out: list[str] = []
    pos = 0
    for start, end in _url_regions(text):
        out.append(text[pos:start])
        out.append(_mask_userinfo(text[start:end]))
        pos = end
    out.append(text[pos:])
    return _SECRET_PARAM.sub(lambda m: m.group(1) + MASK, "".join(out))


def control_character(text: str) -> str | None:
    """The first control character (C0, DEL or C1) in ``text`` as ``U+XXXX``, else ``None``.

    Example:
        >>> control_character("rtsp://h/x\\r\\nX-Injected: yes"), control_character("rtsp://h/x")
        ('U+000D', None)
    """
    found = _CONTROL.search(text)
    return f"U+{ord(found.group(0)):04X}" if found else None


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
    def parse(cls, url: str, *, locate_files: bool = True) -> SourceSpec:
        """Validate ``url`` and classify it; raises :class:`SourceError` if it is not a usable source.

        Surrounding whitespace is ignored; a control character anywhere else (CR/LF would add
        headers to an RTSP or HTTP request) is refused. ``locate_files=False`` checks the form only:
        a file path is neither resolved nor looked up (the
        :class:`~actwatch.capture.source_policy.SourcePolicy` does that, so that a missing file and a
        forbidden one read the same).

        Example:
            >>> SourceSpec.parse("/no/such/clip.mp4", locate_files=False).url
            '/no/such/clip.mp4'
        """
        if not isinstance(url, str):
            raise SourceError(f"source must be a string, got {type(url).__name__}; accepted: {ACCEPTED_FORMS}")
        text = url.strip()
        if not text:
            raise SourceError(f"source is empty; accepted: {ACCEPTED_FORMS}")
        if (control := control_character(text)) is not None:
            # The URL is not quoted: a line break ends a URL in free text, so masking could miss a password.
            raise SourceError(f"source contains the control character {control}; a URL cannot hold control characters")
        if text.isdigit():
            return cls._webcam(text)
        if m := _WEBCAM_PREFIX.match(text):
            return cls._webcam(str(int(m.group(1))))
        if _WEBCAM_DEVICE.match(text):
            return cls._webcam(text)
        if text.lower().startswith("webcam:"):
            raise SourceError(
                f"a webcam is webcam:N with N its index (webcam:0), got {text!r}; accepted: {ACCEPTED_FORMS}"
            )
        if "://" in text:
            scheme = text.split("://", 1)[0].lower()
            if scheme == "file":
                return cls._file(unquote(urlsplit(text).path), text, locate_files)
            kind = _SCHEME_KIND.get(scheme)
            if kind is None:
                raise SourceError(
                    f"unsupported source scheme {scheme + '://'!r} in {mask_credentials(text)!r}; "
                    f"accepted: {ACCEPTED_FORMS}"
                )
            return cls._network(kind, text)
        return cls._file(text, text, locate_files)

    @classmethod
    def _webcam(cls, device: str) -> SourceSpec:
        return cls(kind="webcam", url=device, masked=device, is_live=True)

    @classmethod
    def _network(cls, kind: SourceKind, text: str) -> SourceSpec:
        masked = mask_credentials(text)
        try:
            parts = urlsplit(text)
            _ = parts.port  # raises ValueError on a non-numeric or out-of-range port
        except ValueError:
            # Not urlsplit's message: it quotes the raw host part, which may hold part of the password.
            raise SourceError(
                f"malformed {kind} URL {masked!r}: its host and port cannot be parsed (the port must be a number "
                "from 0 to 65535; a '/', '?', '#', '[' or ']' in a user name or password must be percent-encoded, "
                f"e.g. %2F); accepted: {ACCEPTED_FORMS}"
            ) from None
        if not parts.hostname:
            raise SourceError(f"{kind} URL {masked!r} has no host; accepted: {ACCEPTED_FORMS}")
        return cls(kind=kind, url=text, masked=masked, is_live=True)

    @classmethod
    def _file(cls, path_text: str, given: str, locate: bool) -> SourceSpec:
        if not locate:
            if not path_text:
                raise SourceError(f"source {mask_credentials(given)!r} names no file; accepted: {ACCEPTED_FORMS}")
            return cls(kind="file", url=path_text, masked=path_text, is_live=False)
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
        # The exact secrets first: masking alone may guess a password's end wrong in free text.
        for secret in self._secrets():
            text = text.replace(secret, MASK)
        return mask_credentials(text)

    def _secrets(self) -> list[str]:
        if self.kind not in ("rtsp", "http"):
            return []
        userinfo = split_userinfo(self.url.split("://", 1)[1])
        found = [userinfo[1] or "" if userinfo else ""]
        if userinfo is not None and userinfo[1] is None:
            found.append(userinfo[0])  # a lone userinfo is a token
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
