"""The deployment files users run without us: docker-compose.yml, the Dockerfile, the
Prometheus and Grafana provisioning. No Docker engine here, so they are parsed and checked
for what `docker compose config` and a first `up` would trip over."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]


def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_services_reference_only_what_exists() -> None:
    data = compose()
    services: dict[str, Any] = data["services"]
    volumes = set(data.get("volumes") or {})
    expected = {"kafka", "postgres", "influxdb", "topics", "migrate", "worker", "api"}
    assert expected | {"prometheus", "grafana"} <= set(services)
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        depends = service.get("depends_on") or {}
        for dependency in depends:
            assert dependency in services, f"{name} depends on unknown {dependency}"
        for mount in service.get("volumes") or []:
            source = mount.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in volumes, f"{name} uses undeclared volume {source}"


def test_the_worker_scales_and_kafka_runs_kraft() -> None:
    services = compose()["services"]
    worker = services["worker"]
    # `--scale worker=3` needs no fixed name and no host ports
    assert "container_name" not in worker and "ports" not in worker
    assert worker["command"] == ["worker"]
    kafka = services["kafka"]["environment"]
    assert "broker,controller" in kafka["KAFKA_PROCESS_ROLES"]
    assert not any(key.startswith("KAFKA_ZOOKEEPER") for key in kafka)
    env = services["api"]["environment"]
    assert re.search(r"TOPIC_PARTITIONS:-(\d+)", (ROOT / "docker-compose.yml").read_text())
    assert env["API_PORT"] == 8002


def test_dockerfile_copies_every_package_and_runs_unprivileged() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    include = re.search(r"include = \[(.*?)\]", (ROOT / "pyproject.toml").read_text())
    assert include is not None
    packages = {p.strip().strip('"').rstrip("*") for p in include.group(1).split(",")}
    for package in packages - {"eval"}:
        assert re.search(rf"^COPY {package} {package}$", dockerfile, re.M), package
    assert re.search(r"^USER \w+", dockerfile, re.M)
    assert "HEALTHCHECK" in dockerfile


def test_grafana_dashboard_uses_provisioned_data_sources() -> None:
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    sources = yaml.safe_load((provisioning / "datasources" / "datasources.yml").read_text())
    uids = {source["uid"] for source in sources["datasources"]}
    dashboards = list((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
    assert dashboards
    for path in dashboards:
        dashboard = json.loads(path.read_text())
        titles = " ".join(panel["title"].lower() for panel in dashboard["panels"])
        for topic in ("energy per device", "cost", "anomal", "throughput", "lag"):
            assert topic in titles, f"{path.name} lacks a {topic} panel"
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] in uids
            for target in panel["targets"]:
                assert target["datasource"]["uid"] in uids
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    targets = prometheus["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == ["api:8002"]
