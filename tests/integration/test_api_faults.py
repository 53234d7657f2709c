"""The API on an empty store, on a corrupt one and with its Redis stopped mid-run: quick, clear answers,
never a hang or a bare 500."""

from __future__ import annotations

import time

import numpy as np
import orjson
import pytest
import redis

from segstream.config import Settings
from segstream.producers.synthetic import GeneratorConfig, SyntheticBank
from segstream.stream_app.batch import PartitionBatch
from segstream.stream_app.processor import StreamProcessor

from .harness import Api, wait_until
from .servers import redis_server

pytestmark = pytest.mark.integration


def test_empty_store_then_data_then_redis_down_and_back(tmp_path):
    red = redis_server(tmp_path / "redis")
    red.start()
    env = {
        "SEGSTREAM_REDIS_URL": f"redis://127.0.0.1:{red.port}/0",
        "SEGSTREAM_NAMESPACE": "faults",
        "SEGSTREAM_KAFKA_BOOTSTRAP": "127.0.0.1:1",
    }
    api = Api(env, tmp_path / "api.log")
    try:
        # before any worker has run: clear answers, not 500s
        assert api.get("/healthz").status_code == 200
        ready = api.get("/readyz")
        assert ready.status_code == 503 and "no worker" in ready.json()["reason"]
        assert api.get("/api/segments").json() == []
        r = api.get("/api/segments/0")
        assert r.status_code == 404 and "no segments yet" in r.json()["detail"]
        r = api.customer("C0000001")
        assert r.status_code == 404 and "unknown customer" in r.json()["detail"]
        assert api.get("/api/map").json() == []

        # a worker's output appears
        proc = StreamProcessor(Settings(redis_url=env["SEGSTREAM_REDIS_URL"], namespace="faults"))
        events = [orjson.dumps(e) for e in SyntheticBank(GeneratorConfig(customers=30, months=8, seed=2)).events()]
        proc.process([PartitionBatch(0, list(range(len(events))), events)])
        proc.checkpoint()
        assert api.get("/readyz").status_code == 200
        assert len(api.get("/api/segments").json()) == 20
        assert api.customer("C0000001").status_code == 200

        # the centroids' record corrupt (NaN): 503 naming it, and back once repaired
        r = redis.Redis(port=red.port)
        (key,) = [k for k in r.scan_iter("*centroids*") if b"fence" not in k]
        good = r.hget(key, "sums")
        r.hset(key, "sums", np.full(len(good) // 8, np.nan).tobytes())
        ready = api.get("/readyz")
        assert ready.status_code == 503 and "not finite" in ready.json()["reason"]
        assert api.get("/api/segments").status_code == 503
        r.hset(key, "sums", good)
        assert api.get("/readyz").status_code == 200

        # the workers' states under another layout than the API reads (another artefact): 503 naming both
        ours = r.get("faults:layout")
        assert ours is not None  # the worker's checkpoint recorded it
        r.set("faults:layout", b"faults:other-model:r4:sb256:w1m")
        ready = api.get("/readyz")
        assert ready.status_code == 503 and "other-model" in ready.json()["reason"]
        r.set("faults:layout", ours)
        assert api.get("/readyz").status_code == 200

        # Redis stops: 503 with the reason, quickly; liveness stays up
        red.stop()
        for path in ("/api/segments", "/api/customers/C0000001", "/api/map"):
            t0 = time.monotonic()
            r = api.get(path, timeout=20)
            assert r.status_code == 503, (path, r.status_code, r.text)
            assert "Redis" in r.json()["detail"] and r.headers["Retry-After"]
            assert time.monotonic() - t0 < 8, f"{path} took {time.monotonic() - t0:.1f}s"
        assert api.get("/readyz").status_code == 503
        assert api.get("/healthz").status_code == 200

        # and comes back without restarting the API
        red.start()
        wait_until(lambda: api.get("/readyz").status_code == 200, 30, "the API to see Redis again")
        assert api.customer("C0000001").status_code == 200
    finally:
        api.stop()
        red.stop()
