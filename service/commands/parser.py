"""The command table of ``energy-processing`` and the argparse parser built from it."""

from __future__ import annotations

import argparse

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
