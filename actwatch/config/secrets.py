"""Where secrets in the configuration come from: ``${VAR}`` in the YAML and ``*_FILE`` variables.

Camera credentials, the API token and the database URL should not be written into the YAML file, nor
only into plain environment variables (``docker inspect`` shows those). Two ways in, Docker-secret
friendly:

- ``${NAME}`` anywhere in a YAML string takes the variable ``NAME``, or the content of the file named by
  ``NAME_FILE`` (one trailing newline dropped): ``url: rtsp://admin:${CAM_PASSWORD}@10.0.0.5/stream``
  with ``CAM_PASSWORD_FILE=/run/secrets/cam_password``. ``$${`` writes a literal ``${``. A variable
  that is unset is an error naming it and the key; setting both ``NAME`` and ``NAME_FILE`` is too.
- ``ACTWATCH_<KEY>_FILE`` sets the configuration key ``ACTWATCH_<KEY>`` would set, from a file:
  ``ACTWATCH_SERVER__TOKEN_FILE=/run/secrets/token``.

Every value that came in this way is a *secret*: :func:`redact` replaces it in any text shown (errors,
``validate-config --show``), whatever key it ended up in.

Example:
    >>> env = {"CAM_PASSWORD": "s3cret", "USER": "admin"}
    >>> subst = substitute_variables({"url": "rtsp://${USER}:${CAM_PASSWORD}@cam/s", "x": "$${HOME}"}, env)
    >>> subst.data
    {'url': 'rtsp://admin:s3cret@cam/s', 'x': '${HOME}'}
    >>> redact("bad url rtsp://admin:s3cret@cam/s", subst.secrets)
    'bad url rtsp://***:***@cam/s'
    >>> try:
    ...     substitute_variables({"cameras": [{"url": "rtsp://${NOPE}@cam"}]}, env)
    ... except ConfigError as exc:
    ...     print(exc)
    invalid configuration (variables):
      cameras.0.url: ${NOPE} is not set; set NOPE, or NOPE_FILE to the path of a file holding the value
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic_settings import EnvSettingsSource

from actwatch.capture.sources import MASK
from actwatch.errors import ConfigError

FILE_SUFFIX = "_FILE"
"""A variable ``NAME_FILE`` holds the path of a file whose content is the value of ``NAME``."""

_REFERENCE = re.compile(r"\$(\$?)\{([^}]*)\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class Substituted:
    """YAML data with every ``${NAME}`` replaced, and the values that were put in (the secrets)."""

    data: Any
    secrets: frozenset[str]


def read_variable(name: str, environ: Mapping[str, str]) -> str | None:
    """The value of ``name``: the variable itself or the content of the file named by ``name_FILE``.

    ``None`` when neither is set. Raises :class:`ConfigError` when both are set or the file cannot be read
    (the message names the file, never its content).
    """
    value = environ.get(name)
    path = environ.get(name + FILE_SUFFIX)
    if path is None:
        return value
    if value is not None:
        raise ConfigError(f"both {name} and {name}{FILE_SUFFIX} are set; set only one of them")
    return read_secret_file(name + FILE_SUFFIX, path)


def read_secret_file(variable: str, path: str) -> str:
    """The content of the secret file ``path`` named by ``variable``, less one trailing newline."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError(f"{variable}: cannot read the secret file {path}: {reason}") from None
    # Files written by `echo` or editors end with a newline that is not part of the secret.
    return text.removesuffix("\n").removesuffix("\r")


def substitute_variables(data: Any, environ: Mapping[str, str], source: str = "variables") -> Substituted:
    """``data`` (parsed YAML) with ``${NAME}`` in its strings replaced by :func:`read_variable`.

    Raises :class:`ConfigError` with one line per problem (``key: ${NAME} is not set; ...``).
    """
    secrets: set[str] = set()
    problems: list[str] = []

    def replace_in(text: str, key: str) -> str:
        def one(match: re.Match[str]) -> str:
            escaped, name = match.group(1), match.group(2)
            if escaped:
                return "${" + name + "}"
            if not _NAME.fullmatch(name):
                problems.append(f"{key}: '${{{name}}}' is not a variable name (use letters, digits and _)")
                return ""
            try:
                value = read_variable(name, environ)
            except ConfigError as exc:
                problems.append(f"{key}: {exc}")
                return ""
            if value is None:
                problems.append(
                    f"{key}: ${{{name}}} is not set; set {name}, or {name}{FILE_SUFFIX} to the path of a file "
                    "holding the value"
                )
                return ""
            if value:
                secrets.add(value)
            return value

        return _REFERENCE.sub(one, text)

    def walk(node: Any, key: str) -> Any:
        if isinstance(node, str):
            return replace_in(node, key or "(top level)")
        if isinstance(node, dict):
            return {k: walk(v, f"{key}.{k}" if key else str(k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, f"{key}.{i}" if key else str(i)) for i, v in enumerate(node)]
        return node

    result = walk(data, "")
    if problems:
        raise ConfigError(f"invalid configuration ({source}):\n" + "\n".join(f"  {p}" for p in problems))
    return Substituted(result, frozenset(secrets))


def resolve_file_variables(environ: Mapping[str, str], prefix: str) -> tuple[dict[str, str], frozenset[str]]:
    """``environ`` with each ``<prefix>…_FILE`` variable replaced by ``<prefix>…`` holding the file's content.

    Returns the new mapping and the values read (secrets). Variables without ``prefix`` are unchanged.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "token")
        >>> _ = open(path, "w").write("t" * 32 + "\\n")
        >>> env, secrets = resolve_file_variables({"ACTWATCH_SERVER__TOKEN_FILE": path}, "ACTWATCH_")
        >>> env == {"ACTWATCH_SERVER__TOKEN": "t" * 32}, len(secrets)
        (True, 1)
    """
    resolved: dict[str, str] = {}
    secrets: set[str] = set()
    for name, value in environ.items():
        upper = name.upper()
        if upper.startswith(prefix) and upper.endswith(FILE_SUFFIX) and len(upper) > len(prefix + FILE_SUFFIX):
            target = name[: -len(FILE_SUFFIX)]
            if target in environ:
                raise ConfigError(f"both {target} and {name} are set; set only one of them")
            content = read_secret_file(name, value)
            resolved[target] = content
            if content:
                secrets.add(content)
        else:
            resolved[name] = value
    return resolved, frozenset(secrets)


class FileAwareEnvSource(EnvSettingsSource):
    """The settings' environment source, with ``<prefix>…_FILE`` variables read from their files."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        loaded = super()._load_env_vars()  # names lower-cased unless case-sensitive
        present = {name: value for name, value in loaded.items() if value is not None}
        resolved, _ = resolve_file_variables(present, (self.env_prefix or "").upper())
        return {**{name: None for name, value in loaded.items() if value is None}, **resolved}


MIN_REDACTED_LENGTH = 4
"""Shorter values are masked only where they are a whole string: ``"1"`` must not mask every digit 1."""


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value replaced by ``***`` (longest first, so none is half shown)."""
    if text in secrets:
        return MASK
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= MIN_REDACTED_LENGTH:
            text = text.replace(secret, MASK)
    return text


def redact_tree(node: Any, secrets: Iterable[str]) -> Any:
    """A JSON-like tree (dicts, lists, strings) with :func:`redact` applied to every string."""
    values = frozenset(secrets)
    if not values:
        return node
    if isinstance(node, str):
        return redact(node, values)
    if isinstance(node, dict):
        return {k: redact_tree(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [redact_tree(v, values) for v in node]
    return node


def redact_secrets_in_logs(secrets: Iterable[str]) -> Callable[[], None]:
    """Mask ``secrets`` in every log record this process creates from now on; returns the undo.

    Installed by ``actwatch serve``/``demo`` once the configuration is loaded: a log line that quotes a
    camera's error or URL (ours, a library's, uvicorn's) never shows a value that came from ``${VAR}``
    or a ``*_FILE`` secret. A record is rewritten only when its message holds one.

    Example:
        >>> undo = redact_secrets_in_logs({"hunter2-pw"})
        >>> logging.getLogger("demo").makeRecord("demo", 20, "f", 1, "bad %s", ("hunter2-pw",), None).getMessage()
        'bad ***'
        >>> undo()
    """
    values = frozenset(secrets)
    previous = logging.getLogRecordFactory()
    if not values:
        return lambda: None

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it itself later
            return record
        masked = redact(message, values)
        if masked != message:
            record.msg, record.args = masked, None
        return record

    logging.setLogRecordFactory(factory)

    def undo() -> None:
        if logging.getLogRecordFactory() is factory:
            logging.setLogRecordFactory(previous)

    return undo
