"""The ``energy-processing`` command: run everything locally, or one process of a deployment.

Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

from service.logging import configure_logging
from service.settings import ConfigurationError, Settings, load_settings

log = logging.getLogger("energy_processing")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

DESCRIPTION = """\
Event-driven energy data processing: Kafka readings to hourly, daily, weekly and monthly
consumption, cost and anomaly scores, stored in PostgreSQL and InfluxDB and served over HTTP.

Configuration comes from environment variables (see README), e.g. KAFKA_BROKER_URL,
DATABASE_URL, INFLUXDB_URL, LOG_LEVEL, LOG_FORMAT. A bad value stops with exit code 2 and
names the variable.
"""

COMMANDS: dict[str, tuple[str, str]] = {
    "run": (
        "run everything locally (what `make run` does)",
        "Start embedded Kafka (memory only), PostgreSQL and VictoriaMetrics where "
        "KAFKA_BROKER_URL, DATABASE_URL or INFLUXDB_URL is not set, create topics, migrate, then "
        "run a worker, the API and, unless "
        "DEMO=false, a simulated meter feed. Ctrl-C stops everything.",
    ),
    "worker": (
        "run one stream-processing worker (Faust app agents.app:app)",
        "Consume the readings topic and write windows to the metrics topic and the sinks. "
        "Start as many as there are partitions to share the load; without KAFKA_BROKER_URL "
        "and DATABASE_URL it uses the embedded servers that `run` started.",
    ),
    "api": (
        "serve the HTTP API (uvicorn) on API_HOST:API_PORT",
        "Serve /api/v1/metrics, /api/v1/stats, /health, /ready, /openapi.json and /docs. "
        "Everything under /api/v1 needs a JWT bearer token checked with AUTH_JWT_SECRET "
        "(HS256) or AUTH_JWT_PUBLIC_KEY (RS256); without either the API refuses to start "
        "unless AUTH_DISABLED=true.",
    ),
    "produce": (
        "send readings from a JSONL or CSV file or simulated meters to the readings topic",
        "Each line of a JSONL FILE (one reading object or a JSON array of readings) is sent "
        "as-is, keyed by its device_id. A CSV FILE (header row with device_id, timestamp and "
        "any of power_w, energy_kwh, voltage_v, current_a) becomes one reading object per "
        "row. With --simulate, simulated meters send readings for the last --duration of "
        "time. A progress line (share of the file, count, rate) is shown on stderr.",
    ),
    "migrate": (
        "apply the PostgreSQL schema migrations to DATABASE_URL",
        "Idempotent: already applied migrations are skipped.",
    ),
    "topics": (
        "create the Kafka topics (idempotent)",
        "Create the readings, dead-letter, metrics, anomalies and jobs topics with "
        "TOPIC_PARTITIONS partitions and explicit retention; existing topics are kept.",
    ),
    "replay": (
        "re-send dead-lettered messages to the readings topic after a fix",
        "Read the dead-letter topic (DLQ_TOPIC) from --from-offset to --to-offset "
        "(inclusive; default: its end now) of one --partition or all, keep the records whose "
        "reason header is among --reason (default: all), and send each original value and "
        "key unchanged to READINGS_TOPIC with a replayed.from header. The worker judges them "
        "again: what still breaks a rule (e.g. late) is dead-lettered again. Prints the "
        "count; exit code 0 also when the range holds nothing, 1 on a broker failure, 2 on "
        "bad options or an unknown partition.",
    ),
    "score": (
        "score readings from a JSONL file for anomalies, offline (no servers)",
        "Read readings (one JSON object or array per line, in arrival order; extra fields "
        "are ignored), apply the acceptance and window rules with the current settings, "
        "score every emitted hour and day window with the online anomaly detector as the "
        "worker does, and write one JSON line per window (its final revision's score), "
        "as soon as the window can no longer change. "
        "FUTURE_TOLERANCE is not applied (historical and future data are scored alike); "
        "open windows at the end of the input are flushed and scored, not learned.",
    ),
    "report": (
        "write a consumption report (CSV, JSON, HTML) from the database into a folder",
        "Read the hour and day windows of the devices and local days from --start to --end "
        "from DATABASE_URL (else the embedded PostgreSQL that `run` started) and write "
        "report.csv, report.json and report.html into --out, as the report job does.",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="energy-processing",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    sub = {
        name: commands.add_parser(name, help=summary, description=detail)
        for name, (summary, detail) in COMMANDS.items()
    }

    sub["run"].add_argument(
        "--no-demo", action="store_true", help="do not start the simulated meter feed (DEMO)"
    )
    sub["worker"].add_argument(
        "--without-web",
        action="store_true",
        help="do not start Faust's web server (when the app enables it, it listens on "
        "WORKER_WEB_PORT)",
    )
    sub["api"].add_argument("--host", help="bind address (default: API_HOST)")
    sub["api"].add_argument("--port", type=int, help="port (default: API_PORT)")

    produce = sub["produce"]
    produce.add_argument(
        "file", nargs="?", help="JSONL or CSV file of readings, '-' for stdin (JSONL)"
    )
    produce.add_argument(
        "--format",
        choices=["jsonl", "csv"],
        help="file format (default: csv for a name ending in .csv, else jsonl)",
    )
    produce.add_argument(
        "--simulate", action="store_true", help="send simulated meter readings instead of a file"
    )
    produce.add_argument(
        "--devices", type=int, default=36, help="simulated devices (default: %(default)s)"
    )
    produce.add_argument(
        "--duration",
        default="1h",
        help="simulated time span ending now, e.g. 90s, 15m, 6h, 2d (default: %(default)s)",
    )
    produce.add_argument(
        "--step", type=float, default=60.0, help="seconds between a device's readings"
    )
    produce.add_argument("--seed", type=int, default=0, help="simulation seed (default: 0)")
    produce.add_argument(
        "--start", help="simulated start time, RFC 3339 (default: now minus --duration)"
    )
    produce.add_argument(
        "--bootstrap",
        help="Kafka bootstrap address (default: KAFKA_BROKER_URL, else the "
        "embedded broker of `run` on 127.0.0.1:KAFKA_PORT)",
    )
    produce.add_argument("--topic", help="topic (default: READINGS_TOPIC)")
    produce.add_argument(
        "--batch",
        type=int,
        default=1,
        metavar="N",
        help="send up to N readings of a device per message as a JSON array (gateway style)",
    )

    replay_args = sub["replay"]
    replay_args.add_argument("--partition", type=int, help="DLQ partition (default: all)")
    replay_args.add_argument(
        "--from-offset", type=int, default=0, metavar="N", help="first offset (default: 0)"
    )
    replay_args.add_argument(
        "--to-offset", type=int, metavar="M", help="last offset, inclusive (default: the end)"
    )
    replay_args.add_argument(
        "--reason",
        action="append",
        default=[],
        metavar="REASON",
        help="only records with this reason (repeatable): invalid_json, invalid_schema, "
        "out_of_range, future_timestamp, late",
    )
    replay_args.add_argument(
        "--dry-run", action="store_true", help="count what would be replayed, send nothing"
    )
    replay_args.add_argument("--bootstrap", help="Kafka bootstrap address")
    replay_args.add_argument("--topic", help="destination (default: READINGS_TOPIC)")

    sub["migrate"].add_argument("--dsn", help="PostgreSQL DSN (default: DATABASE_URL)")
    score = sub["score"]
    score.add_argument(
        "--input", required=True, metavar="FILE", help="JSONL readings, '-' for stdin"
    )
    score.add_argument(
        "--output", required=True, metavar="FILE", help="JSONL window scores, '-' for stdout"
    )
    score.add_argument(
        "--batch",
        type=int,
        default=1000,
        metavar="N",
        help="lines folded per batch, as a worker batch (default: %(default)s; the scores "
        "do not depend on it when each device's readings arrive in time order)",
    )
    score.add_argument(
        "--flag-quantile",
        type=float,
        metavar="Q",
        help="flag windows scoring above this running quantile of all scores so far "
        "(default: ANOMALY_FLAG_QUANTILE, 0.99)",
    )
    score.add_argument(
        "--threshold",
        type=float,
        metavar="SCORE",
        help="flag windows scoring above this fixed value instead (0..1; default: "
        "ANOMALY_THRESHOLD, unset)",
    )
    score.add_argument(
        "--warmup-days",
        type=float,
        metavar="DAYS",
        help="no flag before a device has this many days of windows (default: "
        "ANOMALY_WARMUP_DAYS, 7)",
    )
    sub["topics"].add_argument("--bootstrap", help="Kafka bootstrap address")
    report = sub["report"]
    report.add_argument("--start", required=True, help="first local day or RFC 3339 instant")
    report.add_argument("--end", required=True, help="end (exclusive): local day or instant")
    report.add_argument(
        "--device",
        action="append",
        dest="devices",
        metavar="ID",
        help="a device to include (repeatable; default: all with data)",
    )
    report.add_argument(
        "--format",
        action="append",
        dest="formats",
        choices=["csv", "json", "html"],
        help="a format to write (repeatable; default: all)",
    )
    report.add_argument("--out", required=True, help="folder to write the files into")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        print(f"energy-processing: {exc}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(settings.log_level, settings.log_format)
    handler = _HANDLERS[args.command]
    try:
        return handler(settings, args, parser)
    except ConfigurationError as exc:
        print(f"energy-processing: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:
        if _is_expected_failure(exc):
            log.error("%s", exc)
        else:
            log.exception("%s failed", args.command)
        return EXIT_FAILURE


def _is_expected_failure(exc: Exception) -> bool:
    """Failures whose message says it all (a busy port, an unreachable server)."""
    from service.embedded.kafka import EmbeddedKafkaError
    from service.ports import PortInUse
    from service.topics import BrokerUnavailable, TopicsError

    return isinstance(exc, PortInUse | BrokerUnavailable | TopicsError | EmbeddedKafkaError)


def _run(settings: Settings, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from service.run import run

    if args.no_demo:
        settings = settings.model_copy(update={"demo": False})
    return run(settings)


def _worker(settings: Settings, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
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


def _api(settings: Settings, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
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


def _produce(settings: Settings, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import os

    from service.produce import (
        Progress,
        default_bootstrap,
        messages_from_csv,
        messages_from_lines,
        messages_from_readings,
        parse_duration,
        produce,
        read_lines,
    )
    from streams.simulate import simulate

    if bool(args.file) == bool(args.simulate):
        parser.error("produce: give a FILE or --simulate (one of them)")
    if args.batch < 1:
        parser.error("produce: --batch must be at least 1")
    bootstrap = args.bootstrap or default_bootstrap(settings)
    topic = args.topic or settings.readings_topic
    if args.simulate:
        if args.devices < 1 or args.step <= 0:
            parser.error("produce: --devices must be >= 1 and --step > 0")
        try:
            duration = parse_duration(args.duration)
            end = _parse_time(args.start).timestamp() + duration if args.start else None
        except ValueError as exc:
            parser.error(f"produce: {exc}")
        if end is None:
            end = datetime.now(UTC).timestamp()
        readings = simulate(end - duration, args.step, args.devices, args.seed, end=end)
        messages = messages_from_readings(readings, args.batch)
    progress = Progress()
    if not args.simulate:
        file_format = args.format or ("csv" if args.file.lower().endswith(".csv") else "jsonl")
        if args.file != "-" and not os.path.isfile(args.file):
            raise ConfigurationError(f"produce: cannot read {args.file}: no such file")
        lines = read_lines(args.file, progress)
        if file_format == "csv":
            messages = messages_from_csv(lines, args.batch)
        else:
            messages = messages_from_lines(lines, args.batch)
    log.info("producing", extra={"bootstrap": bootstrap, "topic": topic})
    try:
        asyncio.run(produce(bootstrap, topic, messages, progress))
    except ValueError as exc:  # a CSV without the required columns
        raise ConfigurationError(f"produce: {exc}") from exc
    return EXIT_OK


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"--start {text!r} needs an explicit offset or Z")
    return moment


def _replay(settings: Settings, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from service.produce import default_bootstrap
    from service.replay import ReplayError, ReplayRange, ReplayResult, replay

    if args.from_offset < 0 or (args.to_offset is not None and args.to_offset < args.from_offset):
        parser.error("replay: need 0 <= --from-offset <= --to-offset")
    if args.partition is not None and args.partition < 0:
        parser.error("replay: --partition must not be negative")
    selection = ReplayRange(
        args.partition, args.from_offset, args.to_offset, frozenset(args.reason)
    )
    bootstrap = args.bootstrap or default_bootstrap(settings)
    tty = sys.stderr.isatty()

    def progress(result: ReplayResult) -> None:
        if tty:
            sys.stderr.write(f"\rreplay: {result.scanned:,} scanned, {result.replayed:,} sent")
            sys.stderr.flush()

    try:
        result = asyncio.run(
            replay(
                bootstrap,
                settings.dlq_topic,
                args.topic or settings.readings_topic,
                selection,
                dry_run=args.dry_run,
                progress=progress,
            )
        )
    except ReplayError as exc:
        raise ConfigurationError(f"replay: {exc}") from exc
    verb = "would replay" if args.dry_run else "replayed"
    ranges = ", ".join(f"{p}:{a}..{b}" for p, (a, b) in sorted(result.partitions.items()))
    skipped = ", ".join(f"{r} {n}" for r, n in sorted(result.skipped_by_reason.items()))
    print(
        f"{chr(13) if tty else ''}replay: {verb} {result.replayed:,} of {result.scanned:,} "
        f"dead letters ({ranges or 'none in range'})" + (f"; skipped {skipped}" if skipped else ""),
        file=sys.stderr,
    )
    return EXIT_OK


def _migrate(settings: Settings, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    dsn = args.dsn or (settings.database_url.get_secret_value() if settings.database_url else None)
    if not dsn:
        raise ConfigurationError("DATABASE_URL is not set (or pass --dsn)")
    from storage.migrations import migrate

    asyncio.run(migrate(dsn))
    log.info("migrations applied")
    return EXIT_OK


def _topics(settings: Settings, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from service.produce import default_bootstrap
    from service.topics import ensure_topics, wait_for_broker

    bootstrap = args.bootstrap or default_bootstrap(settings)

    async def create() -> None:
        await wait_for_broker(bootstrap, timeout=30.0)
        await ensure_topics(bootstrap, settings)

    asyncio.run(create())
    log.info("topics ready", extra={"bootstrap": bootstrap})
    return EXIT_OK


def _score(settings: Settings, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import dataclasses
    import os
    import time

    import orjson

    from streams.anomaly_config import anomaly_config_from_settings
    from streams.anomaly_stream import StreamScorer, score_lines, window_row
    from streams.config import config_from_settings

    if args.batch < 1:
        parser.error("score: --batch must be at least 1")
    # Offline data may lie anywhere in time: the wall clock is no judge of it here.
    processing = dataclasses.replace(config_from_settings(settings), future_tolerance_s=1e12)
    try:
        anomaly = anomaly_config_from_settings(
            settings,
            flag_quantile=args.flag_quantile,
            threshold=args.threshold,
            warmup_days=args.warmup_days,
        )
    except ValueError as exc:
        parser.error(f"score: {exc}")
    scorer = StreamScorer(processing, anomaly)
    shown = [time.monotonic()]

    def progress(messages: int, windows: int) -> None:
        now = time.monotonic()
        if now - shown[0] >= 2.0:
            shown[0] = now
            print(f"score: {messages:,} lines, {windows:,} windows", file=sys.stderr, flush=True)

    def lines() -> Iterator[bytes]:
        if args.input == "-":
            yield from sys.stdin.buffer
            return
        with open(args.input, "rb") as source:
            yield from source

    started = time.monotonic()
    if args.input != "-" and not os.path.isfile(args.input):
        raise ConfigurationError(f"score: cannot read {args.input}: no such file")
    windows = flagged = 0
    out = sys.stdout.buffer if args.output == "-" else open(args.output, "wb")  # noqa: SIM115
    try:
        for window in score_lines(lines(), scorer, batch_size=args.batch, progress=progress):
            out.write(orjson.dumps(window_row(window)) + b"\n")
            windows += 1
            flagged += window.result.is_anomaly
    finally:
        if out is not sys.stdout.buffer:
            out.close()
        else:
            out.flush()
    counters = scorer.processor.counters
    print(
        f"score: {counters.readings_received:,} readings ({counters.readings_accepted:,} "
        f"accepted, {sum(counters.rejected_by_reason.values()):,} rejected, "
        f"{counters.duplicates:,} duplicates), {windows:,} windows, {flagged:,} "
        f"flagged, in {time.monotonic() - started:.1f} s",
        file=sys.stderr,
    )
    return EXIT_OK


def _report(settings: Settings, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import json
    from pathlib import Path

    from reports import ReportParameterError
    from reports.local import report_to_folder
    from service.endpoints import database_dsn
    from storage.base import StorageError

    parameters = {
        "start": args.start,
        "end": args.end,
        "device_ids": args.devices,
        "formats": args.formats,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        result = asyncio.run(report_to_folder(database_dsn(settings), settings, parameters, out))
    except ReportParameterError as exc:
        parser.error(f"report: {exc}")
    except StorageError as exc:
        log.error("report: %s", exc)
        return EXIT_FAILURE
    print(json.dumps(result, indent=2))
    return EXIT_OK


_HANDLERS = {
    "run": _run,
    "worker": _worker,
    "api": _api,
    "produce": _produce,
    "migrate": _migrate,
    "topics": _topics,
    "score": _score,
    "replay": _replay,
    "report": _report,
}


if __name__ == "__main__":
    sys.exit(main())
