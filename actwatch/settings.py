"""The one strict settings base, YAML loader and validation-error formatter of the package.

Every stage's settings model derives from :class:`StrictModel` (unknown keys are errors, every field is
described); the service configuration (``actwatch.config``), the training configuration
(``actwatch.train.config``) and the model configuration (``actwatch.model.config``) compose them. Files
are read with :func:`read_yaml` (safe, duplicate keys refused, errors with line and column) and
validated with :func:`validate_settings`, whose :class:`~actwatch.errors.ConfigError` has one line per
problem, each naming the dotted key.

Example:
    >>> class Server(StrictModel):
    ...     port: int = Field(8000, ge=1, le=65535, description="TCP port.")
    >>> validate_settings(Server, {"port": 9000}, "demo").port
    9000
    >>> try:
    ...     validate_settings(Server, {"prot": 1}, "demo.yaml")
    ... except ConfigError as exc:
    ...     print(exc)
    invalid configuration (demo.yaml):
      prot: unknown key; did you mean 'port'? (allowed: port)
"""

from __future__ import annotations

import difflib
import types
import typing
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from actwatch.capture.sources import mask_credentials
from actwatch.errors import ConfigError

__all__ = [
    "ConfigError",
    "Field",
    "StrictModel",
    "format_validation_error",
    "parse_yaml",
    "read_yaml",
    "validate_settings",
    "validation_problems",
]

ModelT = TypeVar("ModelT", bound=BaseModel)


class StrictModel(BaseModel):
    """Base of every settings model: unknown keys are errors, values are validated on assignment too.

    A ``ValidationError``'s text never repeats the input (camera URLs and tokens are secrets).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, hide_input_in_errors=True)


class _StrictLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses duplicate keys (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults`: merged keys may be overridden; the base class merges them
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, typing.Hashable) and key in keys:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key '{key}'",
                    key_node.start_mark,
                )
            keys.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, where: str) -> Any:
    """Parse YAML ``text`` strictly; ``where`` names it in errors.

    Example:
        >>> parse_yaml("a: 1\\nb: [2, 3]", "x.yaml")
        {'a': 1, 'b': [2, 3]}
        >>> parse_yaml("a: 1\\na: 2", "x.yaml")
        Traceback (most recent call last):
        ...
        actwatch.errors.ConfigError: x.yaml, line 2, column 1: invalid YAML: found duplicate key 'a'
    """
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"{where}, line {mark.line + 1}, column {mark.column + 1}" if mark is not None else where
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{at}: invalid YAML: {problem}") from None


def read_yaml(path: Path) -> dict[str, Any]:
    """The mapping in the YAML file ``path`` (empty file: ``{}``); :class:`ConfigError` otherwise."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory; give the path of a YAML file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    data = parse_yaml(text, str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, not {type(data).__name__}")
    return data


def _unwrap(tp: Any) -> Any:
    """``X`` from ``X | None`` and ``Annotated[X, ...]``."""
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _field_annotation(model: Any, loc: tuple[Any, ...]) -> Any:
    """The type at ``loc`` inside ``model`` (a pydantic class), or None when it cannot be followed."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(part, int):
            args = typing.get_args(current)
            if typing.get_origin(current) is not list or not args:
                return None
            current = args[0]
        elif isinstance(current, type) and issubclass(current, BaseModel) and part in current.model_fields:
            current = current.model_fields[part].annotation
        else:
            return None
    return _unwrap(current)


def _describe(error: Any, model: type[BaseModel] | None) -> str:
    loc = tuple(error.get("loc", ()))
    key = ".".join(str(part) for part in loc)
    message = str(error.get("msg", "invalid value"))
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if error.get("type") == "extra_forbidden" and loc:
        parent = _field_annotation(model, loc[:-1]) if model is not None else None
        if isinstance(parent, type) and issubclass(parent, BaseModel):
            allowed = sorted(parent.model_fields)
            close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            message = f"unknown key{hint} (allowed: {', '.join(allowed)})"
        else:
            message = "unknown key"
    # Model-level validators prefix their own key ("cameras: duplicate ..."); keep it as the key.
    if not loc and ": " in message:
        key, message = message.split(": ", 1)
    return f"{key}: {mask_credentials(message)}" if key else mask_credentials(message)


def validation_problems(exc: ValidationError, model: type[BaseModel] | None = None) -> list[str]:
    """One ``dotted.key: message`` per problem; credentials in any URL of a message are masked.

    With ``model`` (the class validated), an unknown key gets the allowed keys and a suggestion.

    Example:
        >>> class Server(StrictModel):
        ...     port: int = Field(8000, ge=1, description="TCP port.")
        >>> try:
        ...     Server(port=0)
        ... except ValidationError as exc:
        ...     validation_problems(exc, Server)
        ['port: Input should be greater than or equal to 1']
    """
    return [_describe(err, model) for err in exc.errors()]


def format_validation_error(exc: ValidationError, model: type[BaseModel] | None = None) -> str:
    """One indented line per problem (see :func:`validation_problems`), for a multi-line message."""
    return "\n".join(f"  {problem}" for problem in validation_problems(exc, model))


def validate_settings(model: type[ModelT], data: dict[str, Any], source: str) -> ModelT:
    """``model`` validated from ``data``; a :class:`ConfigError` naming ``source`` and each bad key."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration ({source}):\n{format_validation_error(exc, model)}") from None
