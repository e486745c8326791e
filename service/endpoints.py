"""Where the servers are: configured URLs, or the embedded defaults that ``run`` starts."""

from __future__ import annotations

from service.settings import Settings


def bootstrap_servers(settings: Settings) -> list[str]:
    """``host:port`` of each broker: KAFKA_BROKER_URL (comma/semicolon separated, with or
    without ``kafka://``), else the embedded broker on 127.0.0.1:KAFKA_PORT."""
    if not settings.kafka_broker_url:
        return [f"127.0.0.1:{settings.kafka_port}"]
    servers = []
    for part in settings.kafka_broker_url.replace(";", ",").split(","):
        part = part.strip()
        if "://" in part:
            part = part.split("://", 1)[1]
        if part:
            servers.append(part.rstrip("/"))
    return servers


def database_dsn(settings: Settings) -> str:
    """DATABASE_URL, else the embedded PostgreSQL under DATA_DIR/postgres."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    from service.embedded.postgres import EmbeddedPostgres

    return EmbeddedPostgres(settings.data_dir / "postgres").dsn()
