"""Issue 29: go live with a bank's history in one command, and hand over to the live stream."""

from __future__ import annotations

import orjson
import pytest

from segstream.producers.kafka_producer import publish
from segstream.producers.synthetic import GeneratorConfig, SyntheticBank

from .harness import (
    Api,
    Worker,
    all_consumed,
    assert_same_states,
    embedded,
    isolated_settings,
    segstream_cli,
    settings_from,
    wait_until,
)

pytestmark = pytest.mark.integration


def test_bootstrap_then_live_equals_a_run_that_streamed_everything(bootstrap, redis_url, tmp_path):
    events = list(SyntheticBank(GeneratorConfig(customers=200, months=9, seed=12)).events())
    months = sorted({e["timestamp"][:7] for e in events})
    history = [e for e in events if e["timestamp"][:7] <= months[6]]
    live = [e for e in events if e["timestamp"][:7] > months[6]]
    env = isolated_settings(bootstrap, redis_url)
    s = settings_from(env)
    publish(history[:500], s, progress=False)  # what the bank published before it went live: also in the export
    # an export sorted by customer, not by time: bootstrap must not let one customer's clock make others late
    path = tmp_path / "history.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(e) for e in sorted(history, key=lambda e: e["customer_id"])))
    out = segstream_cli(env, "bootstrap", "--path", str(path), "-q")
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    report = orjson.loads(out.stdout)
    assert report["events"] == len(history) and report["rejected"] == 0
    assert sum(int(v) for v in report["cutoff"].values()) == 500
    assert report["customers"] == 200
    api = Api(env, tmp_path / "api.log")
    try:  # segments on day one: every customer whose first segment the history makes sure of
        sizes = [seg["size"] for seg in api.get("/api/segments").json()]
        day_one = sum(seg >= 0 for seg in embedded(s, history)[0].engine.store.segments().values())
        assert sum(sizes) == day_one >= 100, (sizes, day_one)
    finally:
        api.stop()
    publish(live, s, progress=False)
    w = Worker(env, tmp_path).start()
    try:
        wait_until(all_consumed(s), 180, "the live stream", [w])
    finally:
        w.stop()
    assert_same_states(s, embedded(s, events)[0])
    again = segstream_cli(env, "bootstrap", "--path", str(path), "-q")
    assert again.returncode != 0 and b"already holds checkpoints" in again.stderr
