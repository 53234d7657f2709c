"""The compose file, image and Prometheus config, checked as far as this machine can without docker:
a service that names a flag the CLI does not have, a setting Settings ignores, a file that is
not there or a scrape target no worker serves would otherwise surface only on a user's machine."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import yaml

from segstream.cli import build_parser
from segstream.config import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
OURS = {name: svc for name, svc in SERVICES.items() if svc.get("build") == "."}


def compose() -> dict:
    """The compose file, parsed (tests/integration/test_redis_acl.py starts its Redis users)."""
    return COMPOSE


def env_of(svc: dict) -> dict[str, str]:
    return {k: str(v) for k, v in (svc.get("environment") or {}).items()}


def test_our_services_commands_parse_with_the_cli():
    assert {"worker-1", "worker-2", "api", "producer"} <= set(OURS)
    parser = build_parser()
    for name, svc in OURS.items():
        args = parser.parse_args(svc["command"])  # SystemExit on an unknown flag or command
        assert args.command == svc["command"][0], name


def test_every_segstream_variable_is_a_setting():
    fields = {f"SEGSTREAM_{f.upper()}" for f in Settings.model_fields}
    for name, svc in OURS.items():
        unknown = {k for k in env_of(svc) if k.startswith("SEGSTREAM_")} - fields
        assert not unknown, f"{name}: {unknown} are ignored by Settings"


def test_every_required_variable_is_in_the_example_env():
    text = (ROOT / "docker-compose.yml").read_text()
    required = set(re.findall(r"\$\{(\w+):\?", text))
    example = {
        line.split("=", 1)[0]
        for line in (ROOT / "deploy/env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    assert required and required <= example, required - example


def test_mounted_files_and_copied_sources_exist():
    for name, svc in SERVICES.items():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("."):
                assert (ROOT / src).exists(), f"{name} mounts {src}"
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), line


def test_the_image_installs_the_cpu_torch_at_the_pinned_version_and_no_research_extra():
    assert re.search(r"^torch==\S+$", (ROOT / "constraints.txt").read_text(), re.M)
    docker = (ROOT / "Dockerfile").read_text()
    assert "download.pytorch.org/whl/cpu -c constraints.txt torch" in docker, docker
    assert '-c constraints.txt ".[api]"' in docker and "research" not in docker.split("RUN")[-1]


def test_no_default_passwords_and_least_privilege_redis_users():
    text = (ROOT / "docker-compose.yml").read_text()
    assert "admin/admin" not in text
    assert env_of(SERVICES["grafana"])["GF_SECURITY_ADMIN_PASSWORD"].startswith("${")
    assert "--user default off" in " ".join(SERVICES["redis"]["command"])
    for svc, user in (("worker-1", "worker"), ("api", "api")):  # credentials apart from the URL: any characters
        env = env_of(OURS[svc])
        assert "@" not in env["SEGSTREAM_REDIS_URL"] and env["SEGSTREAM_REDIS_USERNAME"] == user
        assert env["SEGSTREAM_REDIS_PASSWORD"].startswith("${")
    assert env_of(OURS["api"])["SEGSTREAM_API_KEYS"].startswith("${")


def test_ports_are_published_on_loopback_and_workers_restart_with_a_healthcheck():
    published = [p for svc in SERVICES.values() for p in svc.get("ports", [])]
    host_ports = [p.split(":")[1] for p in published]
    assert len(host_ports) == len(set(host_ports)), "two services publish the same host port"
    for name, svc in SERVICES.items():
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    for name, svc in OURS.items():
        if svc["command"][0] in {"worker", "api"}:
            assert svc.get("restart") == "unless-stopped", name
            probe = " ".join(svc["healthcheck"]["test"])
            port = env_of(svc).get("SEGSTREAM_WEB_PORT") or svc["command"][svc["command"].index("--port") + 1]
            assert f"127.0.0.1:{port}/healthz" in probe, name


def test_kafka_advertises_a_listener_host_clients_can_reach():
    env = env_of(SERVICES["kafka"])
    advertised = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    host_port = advertised["HOST"].rsplit(":", 1)[1]
    assert advertised["HOST"].startswith("localhost:")
    assert f"127.0.0.1:{host_port}:{host_port}" in SERVICES["kafka"]["ports"]
    assert env_of(OURS["worker-1"])["SEGSTREAM_KAFKA_BOOTSTRAP"] == advertised["PLAINTEXT"]


def test_prometheus_scrapes_every_worker_where_it_serves_metrics():
    prom = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = {t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    workers = {
        f"{name}:{env_of(svc)['SEGSTREAM_WEB_PORT']}" for name, svc in OURS.items() if svc["command"][0] == "worker"
    }
    assert workers == targets


PROMTOOL = shutil.which("promtool")


def test_promtool_accepts_the_config_and_the_alerts_fire_when_they_should():
    assert PROMTOOL, "promtool is missing: .ci/run installs Debian's prometheus package"
    for cmd in (
        f"check config {ROOT / 'deploy/prometheus/prometheus.yml'}",
        f"test rules {ROOT / 'deploy/prometheus/alerts_test.yml'}",
    ):
        out = subprocess.run([PROMTOOL, *shlex.split(cmd)], capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr


def test_every_dashboard_and_alert_query_names_a_metric_the_worker_exports():
    import json

    from prometheus_client import REGISTRY

    import segstream.stream_app.metrics  # noqa: F401 - registers the worker's metrics

    # a labelled metric has no samples before its first label value: name them by family too
    exported = {
        f"{m.name}{suffix}"
        for m in REGISTRY.collect()
        for suffix in {
            "": ("",),
            "counter": ("_total",),
            "histogram": ("_bucket", "_count", "_sum"),
            "summary": ("_count", "_sum"),
            "info": ("_info",),
        }.get(m.type, ("",))
    }
    alerts = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    for rule in alerts["groups"][0]["rules"]:
        for name in re.findall(r"\b(segstream_\w+)", rule["expr"]):
            assert name in exported, f"alert {rule['alert']} queries {name}"
    panels = json.loads((ROOT / "deploy/grafana/dashboards/segstream.json").read_text())["panels"]
    for panel in panels:
        for target in panel.get("targets", []):
            for name in re.findall(r"\b(segstream_\w+)", target["expr"]):
                assert name in exported, f"panel {panel['title']!r} queries {name}"
        if "p99" in panel["title"]:
            assert any("0.99" in t["expr"] for t in panel["targets"]), panel["title"]
