"""One typed settings object, read from the environment once at the edge and passed down."""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.tariff import Tariff


class ConfigurationError(Exception):
    """A setting has a bad value; the message names the environment variable."""


class Settings(BaseSettings):
    """Every knob of the service. Field ``foo_bar`` is read from env var ``FOO_BAR``."""

    model_config = SettingsConfigDict(
        case_sensitive=False, extra="ignore", frozen=True, populate_by_name=True
    )

    # Connections. Empty means "start the embedded default" (see README).
    kafka_broker_url: str | None = None
    kafka_port: int = Field(default=9092, ge=1, le=65535)
    database_url: SecretStr | None = None
    influxdb_url: str | None = None
    influxdb_token: SecretStr = SecretStr("")
    influxdb_org: str = "energy"
    influxdb_bucket: str = "energy"
    influxdb_raw_readings: bool = False
    influxdb_embedded_port: int = Field(default=8428, ge=1, le=65535)
    data_dir: Path = Path(".data")

    # Topics.
    readings_topic: str = "energy.readings"
    dlq_topic: str = "energy.readings.dlq"
    metrics_topic: str = "energy.metrics"
    anomalies_topic: str = "energy.anomalies"
    jobs_topic: str = "energy.jobs"
    # 1 keeps total arrival order even for producers that do not key by device_id;
    # raise it (and key by device_id) to spread devices over several workers.
    topic_partitions: int = Field(default=1, ge=1, le=1024)

    # Processes.
    app_id: str = "energy-processing"
    # Worker processes that `energy-processing run` starts (one per core for throughput);
    # they split the readings partitions, so at most TOPIC_PARTITIONS of them.
    workers: int = Field(default=1, ge=1, le=1024)
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8002, ge=1, le=65535)
    worker_web_port: int = Field(default=6066, ge=1, le=65535)
    # Worker tuning: messages folded per batch, and how long to wait to fill one.
    batch_max: int = Field(default=2000, ge=1, le=100_000)
    batch_within: float = Field(default=0.05, gt=0, le=10)
    # ... and at most this many bytes of message values (gateway arrays are large)
    batch_max_bytes: int = Field(default=1 << 20, ge=1024, le=1 << 30)
    # Device states and baselines go to their changelogs at most every this many seconds
    # (0: after every batch); offsets are committed only up to the last such checkpoint.
    state_interval: float = Field(default=10.0, ge=0, le=300)
    # 1 works around the embedded broker's ListOffsets bug after batched produce (see
    # README); raise it (e.g. 65536) against Apache Kafka for throughput.
    producer_max_batch_size: int = Field(default=1, ge=1)
    stats_interval: float = Field(default=5.0, gt=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    demo: bool = True
    demo_devices: int = Field(default=36, ge=1, le=100_000)
    demo_speed: float = Field(default=240.0, gt=0)

    # Jobs (README "Jobs"); durations in seconds.
    job_heartbeat_interval: float = Field(default=5.0, gt=0)
    # A running job whose heartbeat is older than this is failed: its worker died.
    job_heartbeat_timeout: float = Field(default=60.0, gt=0)
    # How often a worker looks for stale running jobs and for lost pending ones.
    job_reconcile_interval: float = Field(default=10.0, gt=0)
    # A job still pending after this long (its energy.jobs message lost) is run by an idle worker.
    job_pending_timeout: float = Field(default=30.0, ge=0)
    job_retention_days: float = Field(default=30.0, gt=0)
    # How far before the first window of an aggregate job its re-read of the readings topic
    # starts, by Kafka message time (see README "aggregate").
    aggregate_lookback: float = Field(default=21600.0, ge=0)
    # Retention of stored windows per period, in days (cleanup jobs); 0 keeps them forever.
    retention_hour_days: float = Field(default=400.0, ge=0)
    retention_day_days: float = Field(default=1830.0, ge=0)
    retention_week_days: float = Field(default=0.0, ge=0)
    retention_month_days: float = Field(default=0.0, ge=0)
    # Timers (README "Timers"): cron expressions in TIMEZONE, run by the group leader only;
    # each run is recorded as a job. Empty disables one.
    schedule_rollup: str = "10 * * * *"
    schedule_anomaly_review: str = "30 0 * * *"
    schedule_cleanup: str = "0 3 * * sun"

    # Semantics (SEMANTICS.md section 7); durations in seconds.
    grace: float = Field(default=300.0, ge=0)
    max_gap: float = Field(default=3600.0, gt=0)
    max_power_w: float = Field(default=1_000_000.0, gt=0, allow_inf_nan=False)
    future_tolerance: float = Field(default=300.0, ge=0)
    idle_flush: float = Field(default=60.0, gt=0)
    timezone: str = "UTC"
    tariff: Tariff | None = None
    tariff_file: Path | None = None

    # Anomaly detection (docs/anomaly.md).
    anomaly_enabled: bool = True
    anomaly_flag_quantile: float = Field(default=0.99, gt=0, lt=1)
    anomaly_threshold: float | None = Field(default=None, ge=0, le=1)
    anomaly_warmup_days: float = Field(default=7.0, ge=0, allow_inf_nan=False)
    anomaly_checkpoint_interval: float = Field(default=60.0, gt=0)

    # API authentication (README "Authentication"): JWT bearer tokens checked with exactly
    # one key, an HS256 secret or an RS256 public key. No key refuses to start unless
    # AUTH_DISABLED is set explicitly (local use only).
    auth_jwt_secret: SecretStr | None = None
    auth_jwt_public_key: str | None = None
    """PEM text of an RSA public key, or the path of a file holding it."""
    auth_jwt_issuer: str | None = None
    auth_jwt_audience: str | None = None
    auth_jwt_leeway: float = Field(default=30.0, ge=0, le=300)
    auth_disabled: bool = False

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator(
        "kafka_broker_url", "influxdb_url", "tariff_file", "anomaly_threshold", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator(
        "database_url",
        "auth_jwt_secret",
        "auth_jwt_public_key",
        "auth_jwt_issuer",
        "auth_jwt_audience",
        mode="before",
    )
    @classmethod
    def _empty_secret_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("auth_disabled", mode="before")
    @classmethod
    def _empty_is_false(cls, value: object) -> object:
        return False if value == "" else value

    @field_validator("tariff", mode="before")
    @classmethod
    def _tariff_json(cls, value: object) -> object:
        if value == "":
            return None
        if isinstance(value, str):
            return json.loads(value)
        return value

    @field_validator("schedule_rollup", "schedule_anomaly_review", "schedule_cleanup")
    @classmethod
    def _cron(cls, value: str) -> str:
        from croniter import croniter

        value = value.strip()
        if value and not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a cron expression like '30 0 * * *'")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _one_tariff_source(self) -> Settings:
        if self.tariff is not None and self.tariff_file is not None:
            raise ValueError("set TARIFF or TARIFF_FILE, not both")
        return self

    @model_validator(mode="after")
    def _workers_have_partitions(self) -> Settings:
        if self.workers > self.topic_partitions:
            raise ValueError(
                f"WORKERS={self.workers} needs TOPIC_PARTITIONS of at least {self.workers}"
                f" (it is {self.topic_partitions}): a worker without a partition idles"
            )
        return self

    @model_validator(mode="after")
    def _one_auth_key(self) -> Settings:
        # Two keys would mean accepting two algorithms; an RS256 deployment must never take
        # an HS256 token signed with a shared secret.
        if self.auth_jwt_secret is not None and self.auth_jwt_public_key is not None:
            raise ValueError("set AUTH_JWT_SECRET or AUTH_JWT_PUBLIC_KEY, not both")
        return self

    @cached_property
    def effective_tariff(self) -> Tariff:
        """The tariff from TARIFF, else TARIFF_FILE, else 0.30 EUR/kWh flat."""
        if self.tariff is not None:
            return self.tariff
        if self.tariff_file is not None:
            try:
                return Tariff.model_validate_json(self.tariff_file.read_bytes())
            except OSError as exc:
                raise ConfigurationError(
                    f"TARIFF_FILE: cannot read {self.tariff_file}: {exc}"
                ) from exc
            except ValidationError as exc:
                raise ConfigurationError(
                    f"TARIFF_FILE {self.tariff_file}: {_describe(exc)}"
                ) from exc
        return Tariff()


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        parts.append(f"{where}: {error['msg']}" if where else error["msg"])
    return "; ".join(parts)


def load_settings(**overrides: object) -> Settings:
    """Read the environment once; raise ConfigurationError naming the bad variable."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = error["loc"]
            var = str(loc[0]).upper() if loc else "settings"
            detail = ".".join(str(p) for p in loc[1:])
            msg = error["msg"]
            problems.append(f"{var}{'.' + detail if detail else ''}: {msg}")
        raise ConfigurationError("invalid configuration: " + "; ".join(problems)) from exc
    except json.JSONDecodeError as exc:  # pragma: no cover - pydantic wraps this normally
        raise ConfigurationError(f"TARIFF: not valid JSON: {exc}") from exc
    settings.effective_tariff  # noqa: B018 - validates TARIFF_FILE eagerly
    return settings
