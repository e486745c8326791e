"""The commands that look back at readings: ``score`` (anomaly scores of a readings file, offline)
and ``report`` (a consumption report from the database)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Iterator

from service.commands.exit_codes import EXIT_FAILURE, EXIT_OK
from service.settings import ConfigurationError, Settings

log = logging.getLogger("energy_processing")


def score_command(
    settings: Settings, args: argparse.Namespace, parser: argparse.ArgumentParser
) -> int:
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


def report_command(
    settings: Settings, args: argparse.Namespace, parser: argparse.ArgumentParser
) -> int:
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
