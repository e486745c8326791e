"""Settings: a bad value names its variable; booleans and tariffs parse exactly."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from service.settings import ConfigurationError, load_settings

TARIFF = {
    "currency": "EUR",
    "price_per_kwh": 0.30,
    "periods": [
        {"days": ["mon", "tue"], "start": "17:00", "end": "21:00", "price_per_kwh": 0.45},
        {"days": "all", "start": "22:00", "end": "06:00", "price_per_kwh": 0.18},
    ],
}


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("KAFKA_PORT", "abc"),
        ("KAFKA_PORT", "70000"),
        ("API_PORT", "0"),
        ("LOG_LEVEL", "verbose"),
        ("LOG_FORMAT", "xml"),
        ("TIMEZONE", "Mars/Olympus_Mons"),
        ("GRACE", "-1"),
        ("MAX_POWER_W", "inf"),
        ("DEMO", "maybe"),
        ("TOPIC_PARTITIONS", "0"),
        ("WORKERS", "0"),
    ],
)
def test_bad_value_names_the_variable(
    clean_env: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    clean_env.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=variable):
        load_settings()


def test_defaults(clean_env: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.kafka_broker_url is None
    assert settings.database_url is None
    assert settings.grace == 300
    assert settings.effective_tariff.price_per_kwh == Decimal("0.30")
    assert settings.effective_tariff.currency == "EUR"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", False), ("false", False), ("no", False), ("off", False), ("1", True), ("true", True)],
)
def test_demo_boolean_is_explicit(
    clean_env: pytest.MonkeyPatch, value: str, expected: bool
) -> None:
    clean_env.setenv("DEMO", value)
    assert load_settings().demo is expected


def test_empty_url_means_unset(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("KAFKA_BROKER_URL", "")
    clean_env.setenv("DATABASE_URL", "")
    settings = load_settings()
    assert settings.kafka_broker_url is None
    assert settings.database_url is None


def test_tariff_from_json(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("TARIFF", json.dumps(TARIFF))
    tariff = load_settings().effective_tariff
    assert tariff.price_per_kwh == Decimal("0.3")
    assert [p.price_per_kwh for p in tariff.periods] == [Decimal("0.45"), Decimal("0.18")]
    assert tariff.periods[1].days == "all"


def test_tariff_from_file(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "tariff.json"
    path.write_text(json.dumps({**TARIFF, "currency": "CHF"}))
    clean_env.setenv("TARIFF_FILE", str(path))
    assert load_settings().effective_tariff.currency == "CHF"


@pytest.mark.parametrize(
    "tariff",
    [
        "{not json",
        json.dumps({"price_per_kwh": -0.1}),
        json.dumps({"price_per_kwh": 0.3, "surcharge": 1}),
        json.dumps(
            {"periods": [{"days": "all", "start": "25:00", "end": "06:00", "price_per_kwh": 0.1}]}
        ),
        json.dumps(
            {
                "periods": [
                    {"days": ["funday"], "start": "01:00", "end": "06:00", "price_per_kwh": 0.1}
                ]
            }
        ),
    ],
)
def test_bad_tariff_names_tariff(clean_env: pytest.MonkeyPatch, tariff: str) -> None:
    clean_env.setenv("TARIFF", tariff)
    with pytest.raises(ConfigurationError, match="TARIFF"):
        load_settings()


def test_bad_tariff_file_names_tariff_file(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "tariff.json"
    path.write_text(json.dumps({"price_per_kwh": "cheap"}))
    clean_env.setenv("TARIFF_FILE", str(path))
    with pytest.raises(ConfigurationError, match="TARIFF_FILE"):
        load_settings()


def test_missing_tariff_file_names_tariff_file(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv("TARIFF_FILE", str(tmp_path / "absent.json"))
    with pytest.raises(ConfigurationError, match="TARIFF_FILE"):
        load_settings()


def test_tariff_and_tariff_file_together_is_an_error(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "tariff.json"
    path.write_text(json.dumps(TARIFF))
    clean_env.setenv("TARIFF_FILE", str(path))
    clean_env.setenv("TARIFF", json.dumps(TARIFF))
    with pytest.raises(ConfigurationError, match="TARIFF"):
        load_settings()


def test_workers_need_as_many_partitions(clean_env: pytest.MonkeyPatch) -> None:
    assert load_settings().workers == 1
    clean_env.setenv("WORKERS", "3")
    with pytest.raises(ConfigurationError, match="WORKERS=3 needs TOPIC_PARTITIONS of at least 3"):
        load_settings()
    clean_env.setenv("TOPIC_PARTITIONS", "3")
    assert load_settings().workers == 3
