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
    from actwatch.service.data_dir import hold_data_dir
    from actwatch.service.server import listen_socket, serve
    from actwatch.service.server_logs import redact_root_handlers

    logging.getLogger().setLevel(config.log_level)
    redact_root_handlers()
    redact_secrets_in_logs(config.secret_values)  # values from ${VAR} / *_FILE never reach a log line
    with hold_data_dir(config.data_dir):  # before anything there is touched: one service per data_dir
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
    """The untrained demo model exported under ``data_dir``: made once, reused while it is valid, has the
    current :data:`~actwatch.demo_model.DEMO_CLASSES` and started from the backbone available now."""
    from actwatch.demo_model import DEMO_CLASSES, export_untrained_model
    from actwatch.errors import ManifestError
    from actwatch.model.manifest import load_manifest

    out = data_dir / "demo-model"
    try:
        manifest = load_manifest(out / "onnx")
        random_backbone = manifest.checkpoint.get("metadata", {}).get("backbone") == "random"
        if manifest.classes == list(DEMO_CLASSES) and not (random_backbone and _imagenet_weights_cached()):
            return out / "onnx"
    except ManifestError:
        pass
    typer.echo("actwatch: creating the demo model (ImageNet backbone, UNTRAINED action head: its labels are noise)")
    return export_untrained_model(out)


def _imagenet_weights_cached() -> bool:
    from actwatch.assets import ensure_backbone_weights
    from actwatch.errors import AssetMissingError

    try:
        ensure_backbone_weights(fetch=False)
    except AssetMissingError:
        return False
    return True


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""

    @app.command("serve")
    def serve(
        config: Annotated[Path, typer.Option("--config", "-c", help="YAML configuration file.")],
        host: Annotated[str | None, typer.Option(help="Override server.host.")] = None,
        port: Annotated[int | None, typer.Option(min=1, max=65535, help="Override server.port.")] = None,
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
        port: Annotated[
            int | None, typer.Option(min=1, max=65535, help="TCP port of the dashboard and API (default 8000).")
        ] = None,
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
        """Run the service on OpenCV's vtest.avi (looping, real time) with the offline detector: loitering,
        running and fallen alerts from behaviour signals, and the (untrained) action model's labels."""
        from actwatch.assets import default_cache_dir, ensure_backbone_weights, ensure_detector, ensure_sample_video
        from actwatch.demo import demo_app_config
        from actwatch.demo_model import UNTRAINED_PREFIX
        from actwatch.errors import AssetMissingError
        from actwatch.model.manifest import load_manifest

        cache = default_cache_dir()
        data = data_dir or cache / "demo"
        if model is None:
            try:
                ensure_backbone_weights(cache)  # the demo model starts from ImageNet features
            except AssetMissingError as exc:  # offline: the demo still runs, its backbone random (warned)
                typer.echo(f"warning: {exc}", err=True)
        model_dir = model or demo_model_dir(data)
        classes = load_manifest(model_dir).classes
        alert_label = label or classes[0]
        if alert_label not in classes:
            raise ActwatchError(f"--label {alert_label!r} is not a class of the model ({', '.join(classes)})")
        cfg = demo_app_config(
            data_dir=data,
            sample=ensure_sample_video(cache),
            detector=ensure_detector(cache),
            model_dir=model_dir,
            model_label=alert_label,
            server=_given(host=host, port=port),
            imgsz=imgsz,
        )
        typer.echo("actwatch: demo alerts: loitering (in the zone), running and fallen (behaviour signals)")
        if all(name.startswith(UNTRAINED_PREFIX) for name in classes):
            typer.echo(f"actwatch: the action model is UNTRAINED: its '{UNTRAINED_PREFIX}…' labels are noise")
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
