"""The ``actwatch`` command line: one sub-command per job.

Each area registers its commands from its own module, so this file only assembles them and turns
user-facing errors into a one-line message and exit status 2.

Example:
    $ actwatch --help
"""

from __future__ import annotations

import logging
import sys

import typer

from actwatch.cli import assets_cmd, bench_cmd, hub_cmd, model_cmd, predict_cmd, service_cmd, train_cmd
from actwatch.errors import ActwatchError
from actwatch.ort_builds import check_one_onnxruntime_build

app = typer.Typer(
    name="actwatch",
    help="Real-time behaviour recognition for CCTV and webcams.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

SERVING_COMMANDS = frozenset({"serve", "demo", "bench", "predict"})
"""Commands that run ONNX Runtime sessions: they refuse to start with two ONNX Runtime builds installed."""


TRAIN_EXTRA_MODULES = frozenset({"torch", "torchvision", "ultralytics", "tensorboard", "matplotlib", "tqdm"})
"""Top-level modules of the ``train`` extra: a server's base install has none of them."""


def missing_train_extra(exc: ModuleNotFoundError) -> str | None:
    """The message for a module of the ``train`` extra that is not installed; ``None`` for any other.

    Example:
        >>> print(missing_train_extra(ModuleNotFoundError("No module named 'torch'", name="torch")))
        this command needs torch, which comes with the train extra: pip install 'actwatch[train]' (serving needs \
none of it: give serve, demo or predict an exported model folder)
        >>> missing_train_extra(ModuleNotFoundError("No module named 'yaml'", name="yaml")) is None
        True
    """
    top = (exc.name or "").split(".")[0]
    if top not in TRAIN_EXTRA_MODULES:
        return None
    return (
        f"this command needs {top}, which comes with the train extra: pip install 'actwatch[train]' "
        "(serving needs none of it: give serve, demo or predict an exported model folder)"
    )


@app.callback()
def _before_command(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand in SERVING_COMMANDS:
        check_one_onnxruntime_build()


for _module in (assets_cmd, model_cmd, predict_cmd, train_cmd, service_cmd, hub_cmd, bench_cmd):
    _module.register(app)


def main() -> None:
    """Entry point of the console script."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)  # library warnings as one log line each, not source excerpts
    try:
        app()
    except ActwatchError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except ModuleNotFoundError as exc:
        message = missing_train_extra(exc)
        if message is None:
            raise
        typer.echo(f"error: {message}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
