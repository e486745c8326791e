"""``python -m eval`` (``make eval-anomaly``): the anomaly detection evaluation, printed as
Markdown tables. See ``eval.anomaly`` for what is compared and ``docs/anomaly.md``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from eval.anomaly import run


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m eval",
        description="Online Half-Space Trees vs batch IsolationForest on labelled synthetic "
        "meter data (ROC AUC, average precision, cost per window).",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=2,
        help="data seed (default: %(default)s; seeds 1 and 3 were used while designing "
        "the features, 2 was not)",
    )
    parser.add_argument("--devices", type=int, default=64, help="default: %(default)s")
    parser.add_argument("--weeks", type=int, default=8, help="default: %(default)s")
    parser.add_argument(
        "--keep", type=Path, metavar="DIR", help="write readings.jsonl and labels.jsonl here"
    )
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="also write the result here")
    args = parser.parse_args(argv)
    if args.devices < 1 or args.weeks < 1:
        parser.error("--devices and --weeks must be at least 1")
    report = run(seed=args.seed, devices=args.devices, weeks=args.weeks, folder=args.keep)
    text = report.markdown()
    print(text)
    if args.markdown is not None:
        args.markdown.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
