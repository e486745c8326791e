"""Calendar windows partition time: every instant lies in exactly one window of each period,
and consecutive windows meet, in every zone, across every clock change."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.config import ProcessingConfig
from streams.windows import DAY, HOUR, MONTH, WEEK, Calendar
from tests.oracle import OracleReading, compute, window_of
from tests.streams.harness import run_stream
from tests.streams.test_oracle_property import assert_matches

ZONES = [
    "UTC",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Asia/Beirut",
    "Pacific/Apia",  # skipped 2011-12-30 entirely
    "America/St_Johns",  # clocks back from 00:01 to 23:01 until 2011
    "America/Goose_Bay",
]
PERIODS = (HOUR, DAY, WEEK, MONTH)
NAMES = {HOUR: "hour", DAY: "day", WEEK: "week", MONTH: "month"}
S = 10**6
# 1990..2037, and dense around St John's 2009-11-01 fall back at 02:31 UTC
instants = st.integers(631_152_000 * S, 2_145_916_800 * S) | st.integers(
    1_257_030_000 * S, 1_257_050_000 * S
)
CALENDARS = {zone: Calendar(zone) for zone in ZONES}


@settings(max_examples=400, deadline=None)
@given(zone=st.sampled_from(ZONES), ts=instants, period=st.sampled_from(PERIODS))
def test_the_window_of_an_instant_holds_it_and_meets_its_neighbours(
    zone: str, ts: int, period: int
) -> None:
    calendar = CALENDARS[zone]
    start, end = calendar.window(period, ts)
    assert start <= ts < end
    assert calendar.window(period, end)[0] == end  # the next window starts where it ends
    assert calendar.window(period, start) == (start, end)
    assert calendar.window(period, start - 1)[1] == start
    assert window_of(NAMES[period], ts, calendar.zone) == (start, end)  # the oracle agrees


@settings(max_examples=200, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    lo=instants,
    span=st.integers(0, 90 * 86_400 * S),
    period=st.sampled_from(PERIODS),
)
def test_windows_overlapping_tile_the_range(zone: str, lo: int, span: int, period: int) -> None:
    windows = CALENDARS[zone].windows_overlapping(period, lo, lo + span)
    assert windows[0][0] <= lo < windows[0][1]
    assert windows[-1][0] <= lo + span < windows[-1][1]
    for (_, end), (start, _) in itertools.pairwise(windows):
        assert end == start


def test_st_johns_repeated_minutes_before_midnight_fold_like_the_oracle() -> None:
    """America/St_Johns, 2009-11-01: at 00:01 local (02:31 UTC) clocks went back to 23:01
    of October 31. The repeated minutes belong to November 1, whose day (and month) had
    begun; the fold used to loop forever there."""
    start = 1_257_012_000 * S  # 2009-10-31T18:00Z
    readings = [
        OracleReading("nl-1", start + k * 600 * S, 500.0 + k, round(k * 0.0833, 4))
        for k in range(12 * 6)
    ]
    config = ProcessingConfig(grace_s=0, timezone="America/St_Johns")
    stream, _ = run_stream(readings, config, cuts=[10, 17, 40])
    oracle = compute(readings, grace_s=0, timezone="America/St_Johns")
    assert_matches(stream, oracle.windows)
    days = sorted(k[2] for k in oracle.windows if k[1] == "day")
    assert days == [1_256_956_200 * S, 1_257_042_600 * S]  # Oct 31 and Nov 1 (02:30Z)
