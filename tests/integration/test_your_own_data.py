"""A bank's own data on the real servers: its export through `produce file`, the worker and the API;
and a new model rolled out blue/green beside the old one on one broker and one Redis."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import orjson
import pytest

from segstream.models.artefact import ModelArtefact
from segstream.models.training.lstm import TrainConfig, train
from segstream.producers.bank_export import write_sample_export
from segstream.producers.kafka_producer import publish
from segstream.producers.synthetic import GeneratorConfig, SyntheticBank
from segstream.state.redis_client import connect
from segstream.state.redis_store import RedisStateStore

from .harness import Api, Worker, all_consumed, isolated_settings, read_topic, settings_from, wait_until

pytestmark = pytest.mark.integration


def test_a_bank_export_flows_from_produce_file_to_the_api(bootstrap, redis_url, tmp_path):
    data, mapping = write_sample_export(tmp_path / "bank", GeneratorConfig(customers=40, months=9, seed=12))
    env = isolated_settings(bootstrap, redis_url)
    s = settings_from(env)
    run = subprocess.run(
        [sys.executable, "-m", "segstream", "produce", "file", "--path", str(data), "--mapping", str(mapping)],
        env={
            **os.environ,
            **env,
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    report = orjson.loads(run.stdout.strip().splitlines()[-1])
    assert report["rejected"] == 0 and report["produced"] == report["events"] > 0 and report["other_category"] > 0

    w = Worker(env, tmp_path).start()
    try:
        wait_until(all_consumed(s), 180, "the worker to consume the export", [w])
        m = w.metrics()
    finally:
        w.stop()
    # cash withdrawals (MCC 6011) are counted, not scored and not dead-lettered
    assert m["segstream_events_total{outcome=other_category}"] == report["other_category"]
    assert m["segstream_events_total{outcome=ok}"] == report["events"] - report["other_category"]
    assert m.get("segstream_events_total{outcome=invalid}", 0) == 0
    changes = read_topic(s, s.topic_changes)
    assert changes and all(c["customer_id"].startswith("DE") for c in changes)

    api = Api(env, tmp_path / "api.log")
    try:
        r = api.customer(changes[0]["customer_id"])
    finally:
        api.stop()
    assert r.status_code == 200 and r.json()["segment"] >= 0 and r.json()["windows_applied"] >= 6


def test_blue_green_two_model_versions_side_by_side_on_one_broker_and_one_redis(bootstrap, redis_url, tmp_path):
    gen = GeneratorConfig(customers=120, months=8, seed=21)
    spend, active = SyntheticBank(GeneratorConfig(customers=400, months=8, seed=22)).monthly_spend()
    green_model = tmp_path / "green.pt"
    train(spend, active, TrainConfig(hidden_size=8, n_segments=10, epochs=6), log=lambda *_: None).save(green_model)

    blue = isolated_settings(bootstrap, redis_url)
    green = {
        **blue,
        "SEGSTREAM_CONSUMER_GROUP": blue["SEGSTREAM_CONSUMER_GROUP"] + "-green",
        "SEGSTREAM_TOPIC_CHANGES": blue["SEGSTREAM_TOPIC_CHANGES"] + "-green",
        "SEGSTREAM_MODEL_PATH": str(green_model),
    }
    sb, sg = settings_from(blue), settings_from(green)
    events = list(SyntheticBank(gen).events())
    publish(events, sb, progress=False)

    wb = Worker(blue, tmp_path).start()
    wg = None
    try:
        wait_until(all_consumed(sb), 180, "blue to consume the topic", [wb])
        # green starts later, beside blue, and rebuilds its state by replaying the retained topic
        wg = Worker(green, tmp_path).start()
        wait_until(all_consumed(sg), 180, "green to replay the topic", [wb, wg])
    finally:
        wb.stop()
        if wg:
            wg.stop()

    blue_art, green_art = ModelArtefact.load(None), ModelArtefact.load(green_model)
    assert blue_art.version != green_art.version
    r = connect(redis_url)
    ids = sorted({e["customer_id"] for e in events})
    b_state, _ = RedisStateStore.for_deployment(r, sb, blue_art.hidden_size, blue_art.version).load(ids)
    g_state, _ = RedisStateStore.for_deployment(r, sg, green_art.hidden_size, green_art.version).load(ids)
    assert b_state.h.shape[1] == 12 and g_state.h.shape[1] == 8  # two hidden spaces, one Redis
    # both saw every customer's windows to the last (n_windows restarts at each model's own detected changes)
    np.testing.assert_array_equal(b_state.last_window, g_state.last_window)
    assert (g_state.n_windows > 0).all()
    assert {c["model_version"] for c in read_topic(sb, sb.topic_changes)} == {blue_art.version}
    assert {c["model_version"] for c in read_topic(sg, sg.topic_changes)} == {green_art.version}

    # the switch: the API is pointed at green's namespace and model; blue's keeps answering until then
    apis = [Api(blue, tmp_path / "api-blue.log"), Api(green, tmp_path / "api-green.log")]
    try:
        served = [api.customer(ids[0]).json()["model_version"] for api in apis]
    finally:
        for api in apis:
            api.stop()
    assert served == [blue_art.version, green_art.version]
