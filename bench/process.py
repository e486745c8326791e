"""Run a peer or our worker as a child process and rate it from its progress file."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.progress import RunResult, note, read_progress

ROOT = Path(__file__).resolve().parents[1]


def spawn(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident set (VmHWM) so far."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


async def rate_child(
    name: str,
    args: list[str],
    env: dict[str, str],
    folder: Path,
    *,
    time_limit: float,
    start_timeout: float = 120.0,
) -> RunResult:
    """Run a peer that writes a progress file (bench.progress) until done or the limit."""
    progress = folder / f"{name}-{time.monotonic_ns()}.progress"
    log_path = progress.with_suffix(".log")
    process = spawn(args, {**env, "BENCH_PROGRESS": str(progress)}, log_path)
    try:
        started = time.monotonic()
        first: float | None = None
        shown = 0.0
        while True:
            await asyncio.sleep(0.1)
            first, count, at, done = read_progress(progress)
            if done:
                break
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{tail(log_path)}")
            if first is None:
                if time.monotonic() - started > start_timeout:
                    raise RuntimeError(f"{name} consumed nothing in {start_timeout:.0f} s")
                continue
            elapsed = time.time() - first
            if elapsed >= time_limit:
                break
            if time.monotonic() - shown > 10:
                shown = time.monotonic()
                note(f"  {name}: {count:,} readings in {elapsed:.0f} s")
        assert first is not None
        if at is None or count == 0:
            raise RuntimeError(f"{name} processed nothing in {time_limit:.0f} s")
        return RunResult(count, at - first, capped=not done)
    finally:
        stop(process)
