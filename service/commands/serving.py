"""The long-running commands: ``run`` (everything locally), ``worker`` and ``api``."""

from __future__ import annotations

import argparse
import logging
from typing import Any, NoReturn

from service.commands.exit_codes import EXIT_FAILURE, EXIT_OK
from service.settings import Settings

log = logging.getLogger("energy_processing")


def run_command(
    settings: Settings, args: argparse.Namespace, parser: argparse.ArgumentParser
) -> int:
    from service.run import run

    if args.no_demo:
        settings = settings.model_copy(update={"demo": False})
    return run(settings)


def worker_command(
    settings: Settings, args: argparse.Namespace, parser: argparse.ArgumentParser
) -> int:
    run_worker(settings, with_web=not args.without_web)


def run_worker(settings: Settings, with_web: bool = True) -> NoReturn:
    """Run the Faust app ``agents.app:app`` as ``faust worker`` would, keeping our logging."""
    from agents.app import app

    # What App.main() does before handing over to the `faust worker` command.
    app.finalize()
    app.worker_init()
    if app.conf.autodiscover:  # type: ignore[misc]  # mypy misreads this setting as a method
        app.discover()
    app.worker_init_post_autodiscover()
    if not with_web:
        app.conf.web_enabled = False
    if app.conf.web_enabled:
        app.conf.web_port = settings.worker_web_port
    worker_class: Any = app.conf.Worker
    worker = worker_class(
        app,
        loglevel=settings.log_level,
        quiet=True,
        redirect_stdouts=False,
        override_logging=False,  # keep configure_logging's handler and format
    )
    worker.spinner = None  # a terminal spinner would interleave with the log lines
    started = worker.on_startup_finished

    async def on_startup_finished() -> None:
        await started()
        log.info("worker ready", extra={"app_id": app.conf.id})

    # The worker hands this to the app when it starts (faust.Worker.on_init_dependencies).
    worker.on_startup_finished = on_startup_finished
    log.info(
        "worker starting",
        extra={
            "app_id": app.conf.id,
            "broker": str(app.conf.broker[0]),
            "web": app.conf.web_enabled,
        },
    )
    worker.execute_from_commandline()
    raise SystemExit(EXIT_FAILURE)  # execute_from_commandline always raises SystemExit


def api_command(
    settings: Settings, args: argparse.Namespace, parser: argparse.ArgumentParser
) -> int:
    import uvicorn

    from api.app import create_app

    host = args.host or settings.api_host
    port = args.port or settings.api_port
    # Built here, not by uvicorn's factory call, so a configuration error (e.g. no JWT key)
    # ends with exit code 2 and the variable's name before anything listens.
    app = create_app(settings)
    log.info("API starting", extra={"url": f"http://{host}:{port}"})
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,  # keep configure_logging's handler and format
        access_log=settings.log_level == "DEBUG",
        lifespan="on",
    )
    return EXIT_OK
