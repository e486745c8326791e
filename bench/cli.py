"""``python -m bench``: our worker and its peers on the same workload, in the same run.

Progress goes to stderr; stdout gets the table and, as its last line, one JSON object:
``{"single": {peer: readings/s}, "batched": {...}, "peak_rss_mb": M,
"state_bytes_per_device": B, "state_bytes_per_mature_device": B2, "readings": N,
"workers": W, "ours_one_worker": {"single": R, "batched": R}}`` (medians of ``--runs`` runs;
a peer not run is null; ``ours`` runs ``--workers`` worker processes, one per core by
default, and ``ours_one_worker`` one, as every peer runs one process; M: the workers' peak
resident memory, summed; B and B2: device state plus anomaly baseline as in their
changelogs, at the largest ``--memory-devices`` count and for 1,000 devices with
``--mature-readings`` readings each).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from bench.ours import run_ours
from bench.peers import aiokafka_raw, pandas_batch
from bench.process import ROOT, rate_child
from bench.progress import RunResult, note
from bench.servers import Servers, broker, load_topic, postgres
from bench.workload import Workload, generate

PEERS = ("ours", "aiokafka_raw", "faust_noop", "faust_naive", "quixstreams", "pandas_batch")
FORMS = ("single", "batched")
ONE_WORKER = "ours_one_worker"  # ours in one process; not a key of the forms' objects


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--readings", type=int, default=1_000_000, help="total (1,000,000)")
    parser.add_argument("--devices", type=int, default=10_000, help="meters (10,000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per peer and form; median")
    parser.add_argument(
        "--only",
        default=None,
        help=f"comma-separated peers ({','.join((*PEERS, ONE_WORKER))}; all by default,"
        f" {ONE_WORKER} when --workers > 1)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="worker processes for ours, on a topic of as many partitions"
        " (one per core: %(default)s)",
    )
    parser.add_argument("--forms", default=",".join(FORMS), help="single,batched")
    parser.add_argument(
        "--time-limit",
        type=float,
        default=300.0,
        help="seconds per run; a peer still busy then is rated on what it processed (300)",
    )
    parser.add_argument(
        "--memory-devices",
        default="1000,100000",
        help="device counts for the state and memory figures ('' skips them)",
    )
    parser.add_argument(
        "--memory-readings", type=int, default=4, help="readings per device there (4)"
    )
    parser.add_argument(
        "--mature-readings",
        type=int,
        default=400,
        help="readings per device (1,000 devices) for the state of a device with history"
        " (400: two weeks; 0 skips it)",
    )
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.only is None:
        args.only = [*PEERS, *([ONE_WORKER] if args.workers > 1 else [])]
    else:
        args.only = [p for p in args.only.split(",") if p]
    args.forms = [f for f in args.forms.split(",") if f]
    unknown = set(args.only) - {*PEERS, ONE_WORKER} or set(args.forms) - set(FORMS)
    if unknown:
        parser.error(f"unknown: {', '.join(sorted(unknown))}")
    return args


async def run_peer(
    peer: str,
    form: str,
    servers: Servers,
    topic: str,
    workload: Workload,
    messages: int,
    folder: Path,
    time_limit: float,
    workers: tuple[str, int],
) -> tuple[RunResult, float | None]:
    """``workers``: ours' topic and worker count."""
    app_id = f"bench-{peer}-{uuid.uuid4().hex[:8]}"
    per_message = workload.readings // messages
    env = {
        "BENCH_BOOTSTRAP": servers.bootstrap,
        "BENCH_TOPIC": topic,
        "BENCH_APP_ID": app_id,
        "BENCH_EXPECTED": str(workload.readings),
        "BENCH_PER_MESSAGE": str(per_message),
        "BENCH_BATCHED": "1" if form == "batched" else "0",
        "BENCH_DATADIR": str(folder / app_id),
    }
    if peer == "ours":
        ours_topic, count = workers
        return await run_ours(
            servers, ours_topic, workload, folder, time_limit=time_limit, workers=count
        )
    if peer == ONE_WORKER:
        return await run_ours(servers, topic, workload, folder, time_limit=time_limit)
    if peer == "aiokafka_raw":
        return await aiokafka_raw(servers.bootstrap, topic, messages, time_limit=time_limit), None
    if peer == "pandas_batch":
        return await pandas_batch(servers.bootstrap, topic, messages, time_limit=time_limit), None
    if peer in ("faust_noop", "faust_naive"):
        env["BENCH_MODE"] = peer.removeprefix("faust_")
        args = ["-m", "bench.faust_peers", "worker", "-l", "warn", "--without-web"]
        return await rate_child(peer, args, env, folder, time_limit=time_limit), None
    if peer == "quixstreams":
        return await rate_child(
            peer, ["-m", "bench.quix_peer"], env, folder, time_limit=time_limit
        ), None
    raise ValueError(peer)


async def run_form(
    form: str, args: argparse.Namespace, workload: Workload, servers: Servers, folder: Path
) -> tuple[dict[str, list[RunResult]], list[float]]:
    messages = workload.single if form == "single" else workload.batched
    topic = f"bench.{form}"
    note(f"{form}: loading {len(messages):,} messages ({workload.readings:,} readings)")
    await load_topic(servers.bootstrap, topic, messages)
    ours_topic = topic
    if args.workers > 1 and "ours" in args.only:
        # The same messages, keyed by device, over a partition per worker.
        ours_topic = f"bench.{form}.{args.workers}"
        await load_topic(servers.bootstrap, ours_topic, messages, partitions=args.workers)
    results: dict[str, list[RunResult]] = {peer: [] for peer in args.only}
    peaks: list[float] = []
    for run in range(1, args.runs + 1):
        for peer in args.only:  # interleaved: load on this machine changes between runs
            note(f"{form} run {run}/{args.runs}: {peer}")
            result, peak = await run_peer(
                peer,
                form,
                servers,
                topic,
                workload,
                len(messages),
                folder,
                args.time_limit,
                (ours_topic, args.workers),
            )
            results[peer].append(result)
            if peak is not None:
                peaks.append(peak)
            capped = " (time limit: rated on what it processed)" if result.capped else ""
            note(
                f"{form} run {run}/{args.runs}: {peer} {result.rate:,.0f} readings/s "
                f"({result.readings:,} in {result.seconds:.1f} s){capped}"
            )
    return results, peaks


def memory_figures(devices: list[int], per_device: int) -> list[dict[str, Any]]:
    figures = []
    for count in devices:
        note(f"memory: {count:,} devices x {per_device:,} readings")
        output = subprocess.run(
            [sys.executable, "-m", "bench.memory", str(count), str(per_device)],
            cwd=ROOT,
            check=True,
            capture_output=True,
        ).stdout
        figures.append(orjson.loads(output.splitlines()[-1]))
    return figures


def state_total(figure: dict[str, Any]) -> float:
    """Bytes per device in the changelogs: device state and anomaly baseline."""
    return round(float(figure["state_bytes_per_device"] + figure["baseline_bytes_per_device"]), 1)


def median_rate(results: list[RunResult]) -> float | None:
    return round(statistics.median(r.rate for r in results), 1) if results else None


def table(
    rates: dict[str, dict[str, float | None]], capped: set[tuple[str, str]], forms: list[str]
) -> str:
    lines = [
        f"{'peer':<16}" + "".join(f"{form + ' readings/s':>22}{'x ours':>9}" for form in forms)
    ]
    for peer in (*PEERS, ONE_WORKER):
        if all(rates[form].get(peer) is None for form in forms):
            continue
        row = f"{peer:<16}"
        for form in forms:
            rate = rates[form].get(peer)
            ours = rates[form].get("ours")
            mark = "*" if (form, peer) in capped else " "
            row += f"{rate:>21,.0f}{mark}" if rate is not None else f"{'-':>22}"
            row += f"{rate / ours:>9.3f}" if rate is not None and ours else f"{'-':>9}"
        lines.append(row)
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    note(f"generating {args.readings:,} readings of {args.devices:,} devices")
    workload = generate(args.readings, args.devices)
    note(
        f"workload: {workload.readings:,} readings, {workload.devices:,} devices x "
        f"{workload.per_device}, {workload.payload_bytes / workload.readings:.0f} bytes each; "
        f"{workload.final_windows:,} final hour and day windows"
    )
    rates: dict[str, dict[str, float | None]] = {
        form: dict.fromkeys((*PEERS, ONE_WORKER)) for form in FORMS
    }
    capped: set[tuple[str, str]] = set()
    peaks: list[float] = []
    with postgres() as (pg, folder):
        for form in args.forms:
            with broker(folder) as bootstrap:
                servers = Servers(bootstrap, pg, folder)
                results, form_peaks = await run_form(form, args, workload, servers, folder)
            peaks.extend(form_peaks)
            for peer, runs in results.items():
                rates[form][peer] = median_rate(runs)
                if any(r.capped for r in runs):
                    capped.add((form, peer))
    memory_devices = [int(n) for n in args.memory_devices.split(",") if n.strip()]
    memory = memory_figures(memory_devices, args.memory_readings)
    mature = memory_figures([1000], args.mature_readings) if args.mature_readings > 0 else []
    print(
        f"readings: {workload.readings:,} ({workload.devices:,} devices); median of {args.runs} run(s);"
        f" ours: {args.workers} worker process(es), {ONE_WORKER}: 1"
    )
    print(table(rates, capped, args.forms))
    if capped:
        print("* stopped at the time limit in some run; rated on the readings it processed")
    for figure in memory:
        print(
            f"{figure['devices']:>7,} devices: state {figure['state_bytes_per_device']:,.0f} B "
            f"+ anomaly baseline {figure['baseline_bytes_per_device']:,.0f} B per device "
            f"(serialized); RSS {figure['rss_before_mb']:,.0f} -> {figure['rss_after_mb']:,.0f} MB, "
            f"{figure['rss_bytes_per_device']:,.0f} B per device"
        )
    for figure in mature:
        print(
            f"{figure['devices']:>7,} devices with {args.mature_readings:,} readings each: state "
            f"{figure['state_bytes_per_device']:,.0f} B + anomaly baseline "
            f"{figure['baseline_bytes_per_device']:,.0f} B = {state_total(figure):,.0f} B per device"
        )
    one_worker = {form: rates[form].pop(ONE_WORKER) for form in FORMS}
    summary = {
        "single": rates["single"],
        "batched": rates["batched"],
        "peak_rss_mb": round(max(peaks), 1) if peaks else None,
        "state_bytes_per_device": state_total(memory[-1]) if memory else None,
        "state_bytes_per_mature_device": state_total(mature[0]) if mature else None,
        "readings": workload.readings,
        "workers": args.workers,
        ONE_WORKER: one_worker,
    }
    print(orjson.dumps(summary).decode())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(main_async(parse_args(argv)))
