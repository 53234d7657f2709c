"""Driving real segstream workers as subprocesses, and reading what they left behind."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import orjson
from kafka import KafkaConsumer, TopicPartition

from segstream.assembly import build_pipeline, event_limits
from segstream.config import Settings
from segstream.models.artefact import ModelArtefact
from segstream.producers.kafka_producer import publish
from segstream.state.redis_client import client_for
from segstream.state.redis_store import RedisStateStore
from segstream.state.redis_windows import WindowCheckpoints
from segstream.stream_app.auth import KeyRing

from .servers import free_port

ROOT = Path(__file__).resolve().parents[2]


# Every deployment a test made (its environment), for the invariant checked after each test.
DEPLOYMENTS: list[dict[str, str]] = []


def segstream_cli(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``segstream ARGS`` as an operator runs it, with a test's environment."""
    return subprocess.run(
        [sys.executable, "-m", "segstream", *args],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        timeout=timeout,
    )


def isolated_settings(bootstrap: str, redis_url: str, **over) -> dict[str, str]:
    """Environment for one test: its own topics, consumer group and Redis namespace."""
    tag = uuid.uuid4().hex[:8]
    env = {
        "SEGSTREAM_KAFKA_BOOTSTRAP": bootstrap,
        "SEGSTREAM_REDIS_URL": redis_url,
        "SEGSTREAM_TOPIC_TRANSACTIONS": f"tx-{tag}",
        "SEGSTREAM_TOPIC_CHANGES": f"changes-{tag}",
        "SEGSTREAM_TOPIC_DLQ": f"dlq-{tag}",
        "SEGSTREAM_TOPIC_ERASURES": f"erasures-{tag}",
        "SEGSTREAM_CONSUMER_GROUP": f"segstream-{tag}",
        "SEGSTREAM_BATCH_TIMEOUT_S": "0.2",
        "SEGSTREAM_CENTROID_PRIOR_WEIGHT": "1e12",  # fixed centroids: results independent of batch order
    }
    env.update({f"SEGSTREAM_{k.upper()}": str(v) for k, v in over.items()})
    DEPLOYMENTS.append(env)
    return env


def committed_offsets(settings: Settings) -> dict[int, int | None]:
    """The consumer group's committed offset per partition of the transactions topic."""
    c = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=settings.consumer_group)
    try:
        parts = c.partitions_for_topic(settings.topic_transactions) or set()
        return {p: c.committed(TopicPartition(settings.topic_transactions, p)) for p in parts}
    finally:
        c.close()


def fail_closed_violations(settings: Settings) -> list[str]:
    """The invariant of issue 28: Kafka never holds an offset past what the checkpoint in Redis
    covers (every record below a committed offset was applied or dead-lettered for its own fault).
    Deployments whose Redis is no longer running are not checked (the test stopped it)."""
    import redis

    try:  # a cluster client connects as it is made
        client = client_for(settings, retries=0, timeout_s=2.0)
        client.ping()
    except (redis.ConnectionError, redis.TimeoutError, redis.exceptions.RedisClusterException, OSError):
        return []  # only a Redis that is gone (or the node its URL names) is skipped; anything else fails
    cp = WindowCheckpoints(client, 0, prefix=settings.redis_prefix)
    out = []
    for p, committed in committed_offsets(settings).items():
        if committed is None:
            continue
        meta = cp.meta(settings.topic_transactions, p)
        covered = -1 if meta is None else meta[0] + 1
        if committed > covered and committed > 0:
            out.append(f"{settings.topic_transactions}[{p}]: Kafka committed {committed}, Redis covers {covered}")
    return out


def system_dead_letters(settings: Settings) -> list[str]:
    """The other half of the invariant: dead letters whose reason is the system's, not the record's
    (``engine:<error>`` from a worker, or running out of memory); none may exist. A window that
    trips a bug is ``engine:`` too, and no test through a worker makes one. Read up to the
    topic's end (no idle wait); a broker that is gone is not checked."""
    from kafka.errors import KafkaError

    try:
        c = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False, group_id=None)
    except KafkaError:
        return []
    try:
        if settings.topic_dlq not in c.topics():
            return []
        tps = [TopicPartition(settings.topic_dlq, p) for p in c.partitions_for_topic(settings.topic_dlq) or ()]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        end = c.end_offsets(tps)
        reasons: list[str] = []
        deadline = time.monotonic() + 60
        while any(c.position(tp) < end[tp] for tp in tps) and time.monotonic() < deadline:
            for records in c.poll(timeout_ms=500).values():
                reasons += [orjson.loads(r.value)["reason"] for r in records if r.value is not None]
        return [r for r in reasons if r.startswith("engine:") or r == "internal:MemoryError"]
    finally:
        c.close()


def settings_from(env: dict[str, str]) -> Settings:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return Settings()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class Worker:
    def __init__(self, env: dict[str, str], workdir: Path):
        self.port = free_port()
        self.workdir = workdir
        self.env = {
            **os.environ,
            **env,
            "SEGSTREAM_WEB_PORT": str(self.port),
            "SEGSTREAM_DATA_DIR": str(workdir / f"faust-{self.port}"),
        }
        self.proc: subprocess.Popen | None = None

    def start(self) -> Worker:
        self.log = open(self.workdir / f"worker-{self.port}.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "segstream", "worker", "-l", "warn"],
            env=self.env,
            cwd=self.workdir,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def pause(self) -> None:
        """SIGSTOP the worker and its core process, as a long GC pause or a frozen VM would."""
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.kill9()

    def health(self) -> tuple[int, dict]:
        """``/healthz``: its status and body, or (-1, {}) while the worker does not answer."""
        import httpx

        try:
            r = httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=10)
            return r.status_code, r.json()
        except (httpx.HTTPError, ValueError):
            return -1, {}

    def metrics(self) -> dict[str, float]:
        import urllib.request

        from prometheus_client.parser import text_string_to_metric_families

        body = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5).read().decode()
        out: dict[str, float] = {}
        for fam in text_string_to_metric_families(body):
            for s in fam.samples:
                key = s.name + (
                    "{" + ",".join(f"{k}={v}" for k, v in sorted(s.labels.items())) + "}" if s.labels else ""
                )
                out[key] = s.value
        return out


def child_pids(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            pass
    return out


def running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def group_members(settings: Settings) -> int:
    """Members of the worker's consumer group once it is stable (0 while it rebalances)."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        g = admin.describe_groups([settings.consumer_group])[settings.consumer_group]
        return len(g["members"]) if g["group_state"] == "Stable" else 0
    finally:
        admin.close()


def end_offsets(settings: Settings) -> dict[int, int]:
    c = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    try:
        parts = c.partitions_for_topic(settings.topic_transactions) or set()
        ends = c.end_offsets([TopicPartition(settings.topic_transactions, p) for p in parts])
        return {tp.partition: off for tp, off in ends.items()}
    finally:
        c.close()


def consumed(settings: Settings) -> dict[int, int]:
    """Checkpointed read position per partition (offset of the next record to read)."""
    cp = WindowCheckpoints(client_for(settings), 0, prefix=settings.redis_prefix)
    return {p: cp.offset(settings.topic_transactions, p) + 1 for p in end_offsets(settings)}


def wait_until(
    cond: Callable[[], bool], timeout: float, what: str, workers: list[Worker] = (), poll_s: float = 0.5
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for w in workers:
            if w.proc.poll() is not None:
                raise AssertionError(f"worker exited with {w.proc.returncode}; log: {w.log.name}")
        try:
            if cond():
                return
        except Exception:
            pass
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def all_consumed(settings: Settings) -> Callable[[], bool]:
    ends = end_offsets(settings)
    return lambda: consumed(settings) == ends


def applied_by_worker(
    env: dict[str, str], events: list[dict], workdir: Path, what: str = "the first half to be applied", timeout=180
) -> Worker:
    """Publish ``events``, start a worker and return it, still running, once it has applied them
    all; the caller owns it from there (it is stopped here only if it never gets there)."""
    s = settings_from(env)
    publish(events, s, progress=False)
    w = Worker(env, workdir).start()
    try:
        wait_until(all_consumed(s), timeout, what, [w])
    except BaseException:
        w.stop()
        raise
    return w


def read_topic(settings: Settings, topic: str, idle_s: float = 3.0) -> list[dict]:
    c = KafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=int(idle_s * 1000),
    )
    try:
        return [orjson.loads(m.value) for m in c if m.value is not None]  # tombstones are erasure markers
    finally:
        c.close()


class Api:
    """`segstream api` as a subprocess with a key of one scope."""

    def __init__(self, env: dict[str, str], log, scope: str = "customers"):
        self.key, stored = KeyRing.new("bank", scope)
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "segstream", "api", "--port", str(self.port)],
            env={**os.environ, **env, "SEGSTREAM_API_KEYS": stored.line()},
            stdout=open(log, "wb"),
            stderr=subprocess.STDOUT,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        try:
            wait_until(lambda: httpx.get(self.base + "/openapi.json").status_code == 200, 60, "the API to start")
        except BaseException:
            self.stop()  # an API that never answered must not outlive the test
            raise

    def get(self, path: str, timeout: float = 30) -> httpx.Response:
        return httpx.get(self.base + path, headers={"X-API-Key": self.key}, timeout=timeout)

    def customer(self, cid: str) -> httpx.Response:
        return self.get(f"/api/customers/{cid}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


# --- the reference run the real workers are held to ----------------------------------


def embedded(settings, events):
    """Reference run: the same events through the in-process pipeline, drained as a stream would be.

    Returns the pipeline and the change events, as JSON, in the order they were made.
    """
    pipe = build_pipeline(settings)
    limits = event_limits(settings, now=float("inf"))
    changes = []
    stream = iter(events)  # a list, or a generator of a bank too large to hold
    while chunk := list(itertools.islice(stream, 1000)):
        pipe.ingest_payloads([orjson.dumps(e) for e in chunk], limits)
        changes += pipe.drain().changes
    return pipe, [c.model_dump(mode="json") for c in changes]


def change_keys(changes: list[dict]) -> list[tuple]:
    return sorted((c["customer_id"], c["window_end"], c["old_segment"], c["new_segment"]) for c in changes)


def assert_same_states(settings, pipe):
    art = ModelArtefact.load(settings.model_path)
    ref = pipe.engine.store
    ids = sorted(ref.segments())
    client = client_for(settings)
    got, _ = RedisStateStore.for_deployment(client, settings, art.hidden_size, art.version).load(ids)
    want_n = np.array([ref.state(c)[5] for c in ids])
    want_last = np.array([ref.state(c)[4] for c in ids])
    np.testing.assert_array_equal(got.n_windows, want_n)  # no window lost or applied twice
    np.testing.assert_array_equal(got.last_window, want_last)
    np.testing.assert_allclose(got.h, np.stack([ref.state(c)[0] for c in ids]), atol=1e-4)
    assert got.segment.tolist() == [ref.state(c)[2] for c in ids]
