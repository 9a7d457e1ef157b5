"""``actwatch hub``: one event store, API and dashboard for a fleet of boxes on an MQTT broker."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""

    @app.command("hub")
    def hub(
        config: Annotated[Path, typer.Option("--config", "-c", help="Hub YAML configuration file.")],
    ) -> None:
        """Collect the events of every box from the MQTT broker into one store; serve the API and dashboard."""
        from actwatch.config.secrets import redact_secrets_in_logs
        from actwatch.delivery.hub import create_hub_app, load_hub_config
        from actwatch.service.data_dir import hold_data_dir
        from actwatch.service.server import listen_socket, serve
        from actwatch.service.server_logs import redact_root_handlers

        cfg, secrets = load_hub_config(config)
        logging.getLogger().setLevel(cfg.log_level)
        redact_root_handlers()
        redact_secrets_in_logs(secrets)
        with hold_data_dir(cfg.data_dir):  # one hub per data_dir (its database, snapshots and token)
            listener = listen_socket(cfg.server)
            try:
                app = create_hub_app(cfg)
            except BaseException:
                listener.close()
                raise
            base = f"http://{cfg.server.host}:{cfg.server.port}"
            typer.echo(f"actwatch hub: {cfg.workers} worker(s) on {cfg.mqtt.url}, serving on {base}")
            serve(app, cfg.server, log_level=cfg.log_level, sock=listener)
