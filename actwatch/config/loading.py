"""Loading the service configuration: one YAML file (optional) with ``ACTWATCH_…`` variables on top.

``${NAME}`` in the file's strings and ``ACTWATCH_…_FILE`` variables bring secrets in (see
:mod:`actwatch.config.secrets`); the values they bring are masked in every error and in
:meth:`~actwatch.config.app.AppConfig.public_dict`.

The file is read by the package's one strict YAML reader (:func:`actwatch.settings.read_yaml`) and
errors are formatted by its one formatter, so a bad service, training or model configuration reads
the same way.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from pydantic import ValidationError
from pydantic_settings import SettingsError

from actwatch.config.app import ENV_PREFIX, AppConfig
from actwatch.config.secrets import redact, resolve_file_variables, substitute_variables
from actwatch.errors import ConfigError
from actwatch.paths import PROJECT_ENV_VARS
from actwatch.settings import format_validation_error, read_yaml

log = logging.getLogger(__name__)


def unknown_env_variables() -> list[str]:
    """``ACTWATCH_…`` variables that name no configuration section (the project's own variables,
    such as ``ACTWATCH_CACHE_DIR``, are not configuration and are not listed)."""
    names = set(AppConfig.model_fields)
    unknown = []
    for var in os.environ:
        if var.upper().startswith(ENV_PREFIX) and var.upper() not in PROJECT_ENV_VARS:
            head = var[len(ENV_PREFIX) :].lower().split("__", 1)[0]
            if head not in names and head:
                unknown.append(var)
    return sorted(unknown)


def load_config(path: Path | None = None) -> AppConfig:
    """The configuration from the YAML file ``path`` (optional) with ``ACTWATCH_…`` variables on top.

    Raises:
        ConfigError: the file is missing or not valid YAML (the message has the line), a ``${NAME}`` is
            not set, a secret file cannot be read, or a value is invalid (one line per problem, each
            naming the dotted key, e.g. ``server.port``). Substituted values are masked in it.

    Example:
        >>> load_config(None).server.host
        '127.0.0.1'
    """
    data = read_yaml(Path(path)) if path is not None else {}
    source = f"{path} + environment" if path is not None else "environment"
    for key in data:
        # BaseSettings treats '_env_file' & co. as loader options: never let the file reach those.
        if not isinstance(key, str) or key.startswith("_"):
            raise ConfigError(f"invalid configuration ({source}):\n  {key}: unknown key")
    substituted = substitute_variables(data, os.environ, str(path) if path is not None else "variables")
    _, file_secrets = resolve_file_variables(os.environ, ENV_PREFIX)  # same files the settings source reads
    secrets = substituted.secrets | file_secrets
    try:
        config = AppConfig(**substituted.data)
    except ValidationError as exc:
        problems = redact(format_validation_error(exc, AppConfig), secrets)
        raise ConfigError(f"invalid configuration ({source}):\n{problems}") from None
    except SettingsError as exc:  # an ACTWATCH_ variable holding a list/dict that is not JSON
        field = re.search(r'field "(\w+)"', str(exc))
        key = field.group(1) if field else "?"
        raise ConfigError(
            f"invalid configuration (environment):\n  {key}: {ENV_PREFIX}{key.upper()} is not valid JSON"
        ) from None
    config.remember_secrets(secrets)
    unknown = unknown_env_variables()
    if unknown:
        # Other tools may use the ACTWATCH_ prefix too, so an unknown one is reported, not fatal.
        log.warning("ignoring unknown configuration variables: %s", ", ".join(unknown))
    return config
