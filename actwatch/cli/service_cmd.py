"""``actwatch serve``, ``actwatch demo`` and ``actwatch validate-config``."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from actwatch.errors import ActwatchError

log = logging.getLogger(__name__)


def start_up_lines(host: str, port: int, token: str | None) -> list[str]:
    """What ``serve`` (``token=None``) and ``demo`` print at start-up.

    The token appears only in the dashboard URL's fragment: browsers never send a fragment, so no
    server or proxy logs it (a ``?token=`` URL would land in access logs).

    Example:
        >>> for line in start_up_lines("127.0.0.1", 8000, "T0KEN"): print(line)
        actwatch: dashboard  http://127.0.0.1:8000/#token=T0KEN
        actwatch: API        http://127.0.0.1:8000/docs   (send 'Authorization: Bearer <token>')
        actwatch: WebSocket  ws://127.0.0.1:8000/ws/events   (first message {"type": "auth", "token": "<token>"})
    """
    base = f"http://{host}:{port}"
    if token is None:
        return [f"actwatch: serving on {base} (dashboard at {base}/, API docs at {base}/docs)"]
    return [
        f"actwatch: dashboard  {base}/#token={token}",
        f"actwatch: API        {base}/docs   (send 'Authorization: Bearer <token>')",
        f'actwatch: WebSocket  ws://{host}:{port}/ws/events   (first message {{"type": "auth", "token": "<token>"}})',
    ]


def _run_server(config: Any, *, announce: bool) -> None:
    from actwatch.config.secrets import redact_secrets_in_logs
    from actwatch.service.app import create_app
    from actwatch.service.server import listen_socket, serve
    from actwatch.service.server_logs import redact_root_handlers

    logging.getLogger().setLevel(config.log_level)
    redact_root_handlers()
    redact_secrets_in_logs(config.secret_values)  # values from ${VAR} / *_FILE never reach a log line
    listener = listen_socket(config.server)  # before the models load (minutes on a CPU): a taken port fails now
    try:
        app = create_app(config)
    except BaseException:
        listener.close()
        raise
    token = app.state.services.token.get_secret_value()
    for line in start_up_lines(config.server.host, config.server.port, token if announce else None):
        typer.echo(line)
    serve(app, config.server, log_level=config.log_level, sock=listener)


def _given(**options: Any) -> dict[str, Any]:
    """The options the user gave (not ``None``): they override the settings models' own defaults."""
    return {name: value for name, value in options.items() if value is not None}


def demo_model_dir(data_dir: Path) -> Path:
    """An untrained MobileNetV2-LSTM exported under ``data_dir`` (made once, reused while valid)."""
    from actwatch.demo_model import export_untrained_model
    from actwatch.errors import ManifestError
    from actwatch.model.manifest import load_manifest

    out = data_dir / "demo-model"
    try:
        load_manifest(out / "onnx")
        return out / "onnx"
    except ManifestError:
        pass
    typer.echo("actwatch: creating the demo model (an UNTRAINED MobileNetV2-LSTM; its labels are noise)")
    return export_untrained_model(out)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""

    @app.command("serve")
    def serve(
        config: Annotated[Path, typer.Option("--config", "-c", help="YAML configuration file.")],
        host: Annotated[str | None, typer.Option(help="Override server.host.")] = None,
        port: Annotated[int | None, typer.Option(help="Override server.port.")] = None,
    ) -> None:
        """Run the service: cameras, detection, tracking, action recognition, REST + WebSocket API."""
        from actwatch.config import load_config

        cfg = load_config(config)
        updates = _given(host=host, port=port)
        if updates:
            cfg = cfg.model_copy(update={"server": cfg.server.model_copy(update=updates)})
        _run_server(cfg, announce=False)

    @app.command("demo")
    def demo(
        port: Annotated[int | None, typer.Option(help="TCP port of the dashboard and API (default 8000).")] = None,
        host: Annotated[str | None, typer.Option(help="Address to listen on (default 127.0.0.1).")] = None,
        data_dir: Annotated[
            Path | None, typer.Option(help="Where events, snapshots and the demo model go (default: cache).")
        ] = None,
        model: Annotated[
            Path | None, typer.Option(help="An exported model folder (default: an untrained demo model).")
        ] = None,
        imgsz: Annotated[
            int | None,
            typer.Option(help="Detector input size (default: the model's; a fixed-size model takes only its own)."),
        ] = None,
        label: Annotated[str | None, typer.Option(help="Class that alerts (default: the model's first).")] = None,
    ) -> None:
        """Run the service on OpenCV's vtest.avi (looping, real time) with the offline detector."""
        from actwatch.assets import default_cache_dir, ensure_detector, ensure_sample_video
        from actwatch.config import AppConfig
        from actwatch.demo_model import low_bar_rule, offline_detector_section
        from actwatch.model.manifest import load_manifest

        cache = default_cache_dir()
        data = data_dir or cache / "demo"
        model_dir = model or demo_model_dir(data)
        classes = load_manifest(model_dir).classes
        alert_label = label or classes[0]
        if alert_label not in classes:
            raise ActwatchError(f"--label {alert_label!r} is not a class of the model ({', '.join(classes)})")
        sample = ensure_sample_video(cache)
        cfg = AppConfig.model_validate(
            {
                "data_dir": str(data),
                "server": _given(host=host, port=port),
                # The sample's folder only: files elsewhere stay closed to API clients, as in `serve`.
                "sources": {"file_dirs": [str(sample.resolve().parent)]},
                "cameras": [
                    {
                        "id": "vtest",
                        "name": "OpenCV vtest.avi",
                        "url": str(sample),
                        "loop": True,
                        "realtime": True,
                    }
                ],
                "detector": offline_detector_section(ensure_detector(cache), imgsz),
                "model": {"dir": str(model_dir)},
                "alerts": {"rules": [low_bar_rule(alert_label, cooldown_s=60, min_track_age_s=2)]},
            }
        )
        _run_server(cfg, announce=True)

    @app.command("validate-config")
    def validate_config(
        file: Annotated[Path, typer.Argument(help="YAML configuration file to check.")],
        show: Annotated[bool, typer.Option(help="Print the effective configuration (secrets masked).")] = False,
    ) -> None:
        """Check a configuration file (and ACTWATCH_* environment overrides) without starting anything."""
        from actwatch.config import load_config

        cfg = load_config(file)
        typer.echo(f"{file}: OK ({len(cfg.cameras)} cameras, {len(cfg.alerts.rules)} alert rules)")
        if show:
            typer.echo(json.dumps(cfg.public_dict(), indent=2))
