"""docker-compose cannot run here; its structure is checked against the code instead."""

import json
import re
from pathlib import Path

import yaml

from segstream.config import Settings
from stream_app import metrics

ROOT = Path(__file__).resolve().parents[2]


def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_and_ports():
    svc = compose()["services"]
    assert {"kafka", "redis", "prometheus", "grafana", "producer", "worker-1", "worker-2"} <= set(svc)
    published = [p for s in svc.values() for p in s.get("ports", [])]
    assert all(p.startswith("127.0.0.1:") for p in published), "a port is published on every host interface"
    host_ports = [p.split(":")[1] for p in published]
    assert len(host_ports) == len(set(host_ports)), "two services publish the same host port"
    for w in ("worker-1", "worker-2"):
        env = svc[w]["environment"]
        assert svc[w]["ports"] == [f"127.0.0.1:{env['SEGSTREAM_WEB_PORT']}:{env['SEGSTREAM_WEB_PORT']}"]


def test_no_default_passwords_and_least_privilege_redis_users():
    text = (ROOT / "docker-compose.yml").read_text()
    svc = compose()["services"]
    assert "admin/admin" not in text and svc["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"].startswith("${")
    redis_cmd = " ".join(svc["redis"]["command"])
    assert "--user default off" in redis_cmd
    assert svc["worker-1"]["environment"]["SEGSTREAM_REDIS_URL"].startswith("redis://worker:${")
    assert svc["api"]["environment"]["SEGSTREAM_REDIS_URL"].startswith("redis://api:${")
    assert svc["api"]["environment"]["SEGSTREAM_API_KEYS"].startswith("${")


def test_env_names_are_settings():
    fields = {f"SEGSTREAM_{name.upper()}" for name in Settings.model_fields}
    for name, s in compose()["services"].items():
        for key in s.get("environment", {}):
            if key.startswith("SEGSTREAM_"):
                assert key in fields, f"{name}: {key} is not a setting"
    env = compose()["services"]["worker-1"]["environment"]
    host, port = env["SEGSTREAM_KAFKA_BOOTSTRAP"].split(":")
    assert host == "kafka" and f"PLAINTEXT://kafka:{port}" in compose()["services"]["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert "@redis:6379/" in env["SEGSTREAM_REDIS_URL"]


def test_prometheus_scrapes_the_workers():
    prom = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = {t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    svc = compose()["services"]
    assert targets == {f"{w}:{svc[w]['environment']['SEGSTREAM_WEB_PORT']}" for w in ("worker-1", "worker-2")}


def _exported_names() -> set[str]:
    names = set()
    for obj in vars(metrics).values():
        if hasattr(obj, "_name") and hasattr(obj, "_type"):
            base = obj._name
            names |= {base, base + "_total", base + "_bucket", base + "_count", base + "_sum", base + "_info"}
    return names


def test_dashboard_and_alerts_use_real_metric_names():
    exported = _exported_names()
    dash = json.loads((ROOT / "deploy/grafana/dashboards/segstream.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    alerts = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    exprs += [r["expr"] for g in alerts["groups"] for r in g["rules"]]
    used = {m for e in exprs for m in re.findall(r"\b(segstream_[a-z_]+)", e)}
    assert used and used <= exported, used - exported
