"""The commands that send readings to the readings topic: ``produce`` and ``replay``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from datetime import UTC, datetime

from service.commands.exit_codes import EXIT_OK
from service.settings import ConfigurationError, Settings

log = logging.getLogger("energy_processing")


def produce_command(
    settings: Settings, args: argparse.Namespace, parser: argparse.ArgumentParser
) -> int:
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


def replay_command(
    settings: Settings, args: argparse.Namespace, parser: argparse.ArgumentParser
) -> int:
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
