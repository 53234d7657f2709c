"""docker-compose's Redis users on Debian's redis-server: each can do what it needs and no more."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time

import httpx
import orjson
import pytest
from redis.exceptions import AuthenticationError, NoPermissionError

from segstream.config import Settings
from segstream.errors import ConfigError
from segstream.producers.synthetic import GeneratorConfig, SyntheticBank
from segstream.state.redis_client import connect
from segstream.stream_app.auth import KeyRing
from segstream.stream_app.batch import PartitionBatch
from segstream.stream_app.processor import StreamProcessor
from tests.unit.test_deploy import compose

from .harness import wait_until
from .servers import free_port, redis_server

pytestmark = pytest.mark.integration
PASSWORDS = {"ADMIN": "adm-Secret1", "WORKER": "wrk-Secret2", "API": "api-Secret3"}


def compose_users() -> list[str]:
    """The ``--user`` directives of the compose file's redis command, passwords filled in."""
    cmd = compose()["services"]["redis"]["command"][-1]
    for name, pw in PASSWORDS.items():
        cmd = cmd.replace(f"$$REDIS_{name}_PASSWORD", pw)
    args = shlex.split(cmd)
    return args[args.index("--user") :]


@pytest.fixture(scope="module")
def acl_redis(tmp_path_factory):
    srv = redis_server(tmp_path_factory.mktemp("redis-acl"), *compose_users())
    srv.start()
    yield srv.port
    srv.stop()


def test_worker_writes_its_namespace_only_and_the_api_user_only_reads(acl_redis, tmp_path):
    url = lambda user: f"redis://{user}:{PASSWORDS[user.upper()]}@127.0.0.1:{acl_redis}/0"  # noqa: E731
    s = Settings(redis_url=url("worker"), namespace="segstream", history_windows=6)
    proc = StreamProcessor(s)  # scripts, WATCH/MULTI, INCR, SCAN: all within the worker's rights
    events = [orjson.dumps(e) for e in SyntheticBank(GeneratorConfig(customers=40, months=7, seed=6)).events()]
    proc.process([PartitionBatch(0, list(range(len(events))), events)])
    proc.checkpoint()
    assert proc.store.segment_sizes()
    with pytest.raises(NoPermissionError):
        connect(url("worker")).set("elsewhere:x", 1)  # outside its namespace
    with pytest.raises(NoPermissionError):
        connect(url("worker")).flushall()  # dangerous commands are off
    api_user = connect(url("api"))
    assert api_user.hexists(proc.store.bucket_key("C0000001"), "C0000001")
    with pytest.raises(NoPermissionError):
        api_user.hset(proc.store.bucket_key("C0000001"), "C0000001", b"x")
    with pytest.raises((NoPermissionError, AuthenticationError)):
        connect(f"redis://127.0.0.1:{acl_redis}/0", retries=0).get("segstream:x")  # the default user is off

    # the API runs on the read-only user: it reads, and refuses to erase with a clear answer
    key, stored = KeyRing.new("ops", "admin")
    port = free_port()
    env = {
        **os.environ,
        "SEGSTREAM_REDIS_URL": url("api"),
        "SEGSTREAM_NAMESPACE": "segstream",
        "SEGSTREAM_API_KEYS": stored.line(),
        "SEGSTREAM_KAFKA_BOOTSTRAP": "127.0.0.1:1",
    }
    api = subprocess.Popen(
        [sys.executable, "-m", "segstream", "api", "--port", str(port)],
        env=env,
        stdout=open(tmp_path / "api.log", "wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        base, h = f"http://127.0.0.1:{port}", {"X-API-Key": key}
        wait_until(lambda: httpx.get(base + "/openapi.json").status_code == 200, 60, "the API to start")
        assert httpx.get(base + "/api/customers/C0000001", headers=h).status_code == 200
        r = httpx.delete(base + "/api/customers/C0000001", headers=h)
        assert r.status_code == 503 and "read-only" in r.json()["detail"]
    finally:
        api.terminate()
        api.wait(10)


def test_a_wrong_password_fails_fast_with_a_clear_message(acl_redis):
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match="refused the credentials of user 'worker'") as err:
        StreamProcessor(Settings(redis_url=f"redis://worker:wrong@127.0.0.1:{acl_redis}/0", namespace="segstream"))
    assert time.monotonic() - t0 < 5 and "wrong" not in str(err.value)
    # credentials apart from the URL, as compose passes them: the same answer
    with pytest.raises(ConfigError, match="refused the credentials of user 'worker'"):
        StreamProcessor(
            Settings(
                redis_url=f"redis://127.0.0.1:{acl_redis}/0",
                redis_username="worker",
                redis_password="wrong/pass+word=",
                namespace="segstream",
            )
        )
