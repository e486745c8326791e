"""The ``energy-processing`` command: run everything locally, or one process of a deployment.

Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from service.commands.analysis import report_command, score_command
from service.commands.exit_codes import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE
from service.commands.parser import build_parser
from service.commands.provisioning import migrate_command, topics_command
from service.commands.readings_feed import produce_command, replay_command
from service.commands.serving import api_command, run_command, worker_command
from service.logging import configure_logging
from service.settings import ConfigurationError, load_settings

log = logging.getLogger("energy_processing")


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


_HANDLERS = {
    "run": run_command,
    "worker": worker_command,
    "api": api_command,
    "produce": produce_command,
    "migrate": migrate_command,
    "topics": topics_command,
    "score": score_command,
    "replay": replay_command,
    "report": report_command,
}


if __name__ == "__main__":
    sys.exit(main())
