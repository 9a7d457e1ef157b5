"""Loading the service configuration: one YAML file (optional) with ``ACTWATCH_…`` variables on top.

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
        ConfigError: the file is missing or not valid YAML (the message has the line), or a value is
            invalid (one line per problem, each naming the dotted key, e.g. ``server.port``).

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
    try:
        config = AppConfig(**data)
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration ({source}):\n{format_validation_error(exc, AppConfig)}") from None
    except SettingsError as exc:  # an ACTWATCH_ variable holding a list/dict that is not JSON
        field = re.search(r'field "(\w+)"', str(exc))
        key = field.group(1) if field else "?"
        raise ConfigError(
            f"invalid configuration (environment):\n  {key}: {ENV_PREFIX}{key.upper()} is not valid JSON"
        ) from None
    unknown = unknown_env_variables()
    if unknown:
        # Other tools may use the ACTWATCH_ prefix too, so an unknown one is reported, not fatal.
        log.warning("ignoring unknown configuration variables: %s", ", ".join(unknown))
    return config
