"""Encrypted, authenticated transport on real servers: Kafka's SASL_SSL listener (SCRAM-SHA-512,
users made with Kafka's own ConfigCommand) and a TLS-only redis-server with docker-compose's ACL
users. The worker, ``produce``, ``watch`` and the API go through the same settings an operator
sets; a wrong password or an untrusted certificate stops them at once with a message."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import orjson
import pytest

from segstream.stream_app.auth import KeyRing

from .harness import ROOT, Worker, isolated_settings, wait_until
from .servers import Server, free_port
from .test_redis_acl import PASSWORDS, compose_users

pytestmark = pytest.mark.integration
KAFKA_USER, KAFKA_PASSWORD = "segstream-worker", "scram-Secret4"


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    base = tmp_path_factory.mktemp("secure")
    tls = base / "tls"
    subprocess.run([str(ROOT / "scripts" / "tls-local"), "make", str(tls)], check=True, timeout=60)
    sasl_port = free_port()
    kafka = Server("kafka-local", base / "kafka", free_port(pair=True), (str(sasl_port), str(tls)))
    redis_port = free_port()
    redis = Server(
        "redis-local",
        base / "redis",
        redis_port,
        (
            "--port",
            "0",
            "--tls-port",
            str(redis_port),
            "--tls-cert-file",
            str(tls / "server.pem"),
            "--tls-key-file",
            str(tls / "server.key"),
            "--tls-ca-cert-file",
            str(tls / "ca.pem"),
            "--tls-auth-clients",
            "no",
            *compose_users(),
        ),
    )
    kafka.start()
    redis.start()
    try:
        subprocess.run(
            [str(ROOT / "scripts" / "kafka-local"), "scram-user", str(kafka.workdir), KAFKA_USER, KAFKA_PASSWORD],
            check=True,
            timeout=120,
        )
        yield {"tls": tls, "kafka": f"127.0.0.1:{sasl_port}", "redis_port": redis_port}
    finally:
        kafka.stop()
        redis.stop()


def secure_env(
    secure, *, redis_user: str = "worker", kafka_password: str = KAFKA_PASSWORD, cafile=None
) -> dict[str, str]:
    ca = str(cafile or secure["tls"] / "ca.pem")
    url = f"rediss://{redis_user}:{PASSWORDS[redis_user.upper()]}@127.0.0.1:{secure['redis_port']}/0?ssl_ca_certs={ca}"
    env = isolated_settings(
        secure["kafka"],
        url,
        namespace="segstream",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username=KAFKA_USER,
        kafka_sasl_password=kafka_password,
        kafka_ssl_cafile=ca,
    )
    return {
        **os.environ,
        **env,
    }


def cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "segstream", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_worker_produce_watch_and_api_over_scram_tls_and_redis_tls(secure, tmp_path):
    env = secure_env(secure)
    produced = cli(env, "produce", "synthetic", "--customers", "40", "--months", "9", "--seed", "3")
    assert produced.returncode == 0, produced.stderr[-2000:]
    assert orjson.loads(produced.stdout.splitlines()[-1])["produced"] > 0

    worker = Worker({k: v for k, v in env.items() if k.startswith("SEGSTREAM_")}, tmp_path).start()
    seen: list[dict] = []

    def changes_arrived() -> bool:
        out = cli(env, "watch", "--from-beginning", "--idle-timeout", "3", "--json", timeout=60)
        seen[:] = [orjson.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
        return len(seen) >= 20

    try:
        wait_until(changes_arrived, 180, "segment changes read back over SCRAM/TLS", [worker], poll_s=2)
    finally:
        worker.stop()

    # the API on the read-only Redis user, over TLS, finds a customer the worker wrote
    key, stored = KeyRing.new("ops", "customers")
    port = free_port()
    api_env = {**secure_env(secure, redis_user="api"), "SEGSTREAM_API_KEYS": stored.line()}
    api = subprocess.Popen(
        [sys.executable, "-m", "segstream", "api", "--port", str(port)],
        env=api_env,
        stdout=open(tmp_path / "api.log", "wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        base, h = f"http://127.0.0.1:{port}", {"X-API-Key": key}
        wait_until(lambda: httpx.get(base + "/openapi.json").status_code == 200, 60, "the API to start")
        cid = seen[0]["customer_id"]
        r = httpx.get(f"{base}/api/customers/{cid}", headers=h)
        assert r.status_code == 200 and r.json()["customer_id"] == cid
    finally:
        api.terminate()
        api.wait(30)


@pytest.mark.parametrize(
    "job",
    [("produce", "synthetic", "--customers", "2", "--months", "1"), ("watch", "--idle-timeout", "60"), ("worker",)],
)
def test_wrong_kafka_password_stops_at_once_with_a_message(secure, job):
    t0 = time.monotonic()
    out = cli(secure_env(secure, kafka_password="not-the-password"), *job, timeout=60)
    assert out.returncode != 0
    assert f"refused user '{KAFKA_USER}'" in out.stderr, out.stderr[-2000:]
    assert time.monotonic() - t0 < 30  # kafka-python alone retries for 30 s and then says "Unable to bootstrap"


def test_untrusted_certificates_stop_kafka_and_redis_clients(secure, tmp_path):
    """A client that does not trust the server's certificate refuses to talk, and says why."""
    other = tmp_path / "other-ca"
    subprocess.run([str(ROOT / "scripts" / "tls-local"), "make", str(other)], check=True, timeout=60)
    out = cli(secure_env(secure, cafile=other / "ca.pem"), "watch", "--idle-timeout", "5", timeout=60)
    assert out.returncode != 0 and "TLS certificate is not trusted" in out.stderr, out.stderr[-2000:]

    from redis.exceptions import ConnectionError as RedisConnectionError

    from segstream.state.redis_client import connect

    port, ca = secure["redis_port"], secure["tls"] / "ca.pem"
    with pytest.raises(RedisConnectionError):  # a plain-text client on the TLS port
        connect(f"redis://worker:{PASSWORDS['WORKER']}@127.0.0.1:{port}/0", retries=0, timeout_s=2).ping()
    with pytest.raises(RedisConnectionError):  # TLS with another CA
        connect(
            f"rediss://worker:{PASSWORDS['WORKER']}@127.0.0.1:{port}/0?ssl_ca_certs={other / 'ca.pem'}",
            retries=0,
            timeout_s=2,
        ).ping()
    assert connect(f"rediss://worker:{PASSWORDS['WORKER']}@127.0.0.1:{port}/0?ssl_ca_certs={ca}").ping()
