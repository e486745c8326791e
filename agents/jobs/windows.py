"""Windows recomputed by a job, written over the stream's with the right revision."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from agents.jobs.context import JobContext
from models.metrics import WindowAggregate

WRITE_CHUNK = 1000


async def write_windows(
    ctx: JobContext, final: Sequence[WindowAggregate], open_: Sequence[WindowAggregate] = ()
) -> list[WindowAggregate]:
    """Upsert recomputed windows through the job's sink; returns them as written.

    A ``final`` window (the device's watermark has passed its end, so the stream will never
    emit it again) gets the stored revision + 1, or 0 when none is stored: it replaces the
    stored row. A window still ``open_`` keeps the stored revision: it replaces the row only
    if its values differ, and the stream's next emission of it (a higher revision) still wins.
    Stored anomaly scores are carried over (jobs do not score).
    """
    windows = [*final, *open_]
    stored: dict[tuple[str, str, datetime], tuple[int, float | None, bool | None]] = {}
    for chunk in _chunks(windows):
        stored.update(await ctx.store.stored_rows(chunk))
    open_keys = {_key(w) for w in open_}
    out: list[WindowAggregate] = []
    for window in windows:
        key = _key(window)
        row = stored.get(key)
        update: dict[str, object] = {}
        if row is None:
            update["revision"] = 0
        else:
            revision, score, flagged = row
            update["revision"] = revision if key in open_keys else revision + 1
            # The anomaly score is the online detector's judgement of the window, made when
            # the stream emitted it; a recompute keeps it rather than erase it.
            if window.anomaly_score is None:
                update["anomaly_score"] = score
                update["is_anomaly"] = flagged
        out.append(window.model_copy(update=update))
    for chunk in _chunks(out):
        await ctx.sink.write(chunk)
    return out


def _key(window: WindowAggregate) -> tuple[str, str, datetime]:
    return (window.device_id, window.period, window.window_start)


def _chunks(windows: Sequence[WindowAggregate]) -> list[Sequence[WindowAggregate]]:
    return [windows[i : i + WRITE_CHUNK] for i in range(0, len(windows), WRITE_CHUNK)]
