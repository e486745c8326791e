"""``energy-processing replay``: dead letters back to the readings topic, by range and reason,
against the real broker."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaProducer

from service import cli
from service.commands.exit_codes import EXIT_OK
from service.replay import ReplayError, ReplayRange, replay
from tests.plugins.kafka import read_topic

REASONS = ["late", "invalid_json", "late", "out_of_range", "late", "invalid_schema"]


async def fill_dlq(bootstrap: str, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for index, reason in enumerate(REASONS):
            await producer.send_and_wait(
                topic,
                f'{{"n":{index}}}'.encode(),
                key=f"dev-{index}".encode(),
                partition=0,
                headers=[("reason", reason.encode()), ("detail", b"why")],
            )
    finally:
        await producer.stop()


async def test_a_range_filtered_by_reason_is_resent_unchanged(
    kafka_bootstrap: str, topic_name: Callable[[str], str]
) -> None:
    dlq, readings = topic_name("dlq"), topic_name("readings")
    await fill_dlq(kafka_bootstrap, dlq)
    result = await replay(kafka_bootstrap, dlq, readings, ReplayRange(0, 1, 4, frozenset({"late"})))
    assert (result.scanned, result.replayed) == (4, 2)
    assert result.skipped_by_reason == {"invalid_json": 1, "out_of_range": 1}
    assert result.partitions == {0: (1, 4)}
    records = sorted(await read_topic(kafka_bootstrap, readings, 2), key=lambda r: r.key or b"")
    assert [(r.key, r.value) for r in records] == [(b"dev-2", b'{"n":2}'), (b"dev-4", b'{"n":4}')]
    assert [dict(r.headers)["replayed.from"] for r in records] == [
        f"{dlq}:0:2".encode(),
        f"{dlq}:0:4".encode(),
    ]


async def test_dry_run_sends_nothing_and_an_unknown_partition_is_refused(
    kafka_bootstrap: str, topic_name: Callable[[str], str]
) -> None:
    dlq, readings = topic_name("dlq"), topic_name("readings")
    await fill_dlq(kafka_bootstrap, dlq)
    result = await replay(kafka_bootstrap, dlq, readings, ReplayRange(), dry_run=True)
    assert (result.scanned, result.replayed) == (6, 6)
    with pytest.raises(ReplayError, match="no partition 7"):
        await replay(kafka_bootstrap, dlq, readings, ReplayRange(partition=7))


def test_cli_replays_and_reports(
    kafka_bootstrap: str,
    topic_name: Callable[[str], str],
    clean_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import asyncio

    dlq, readings = topic_name("dlq"), topic_name("readings")
    asyncio.run(fill_dlq(kafka_bootstrap, dlq))
    clean_env.setenv("DLQ_TOPIC", dlq)
    clean_env.setenv("READINGS_TOPIC", readings)
    code = cli.main(
        ["replay", "--bootstrap", kafka_bootstrap, "--reason", "late", "--reason", "invalid_json"]
    )
    assert code == EXIT_OK
    err = capsys.readouterr().err
    assert "replayed 4 of 6 dead letters (0:0..5)" in err
    assert "skipped invalid_schema 1, out_of_range 1" in err
    assert cli.main(["replay", "--bootstrap", kafka_bootstrap, "--partition", "999"]) == 2
    assert "no partition 999" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        cli.main(["replay", "--from-offset", "5", "--to-offset", "2"])
    assert usage.value.code == 2
