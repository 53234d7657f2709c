"""Each bench script runs, tiny, so none can rot. No timing is asserted here."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def run(script: str, *args: str, timeout: int = 600) -> dict:
    out = subprocess.run(
        [sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=timeout, cwd=BENCH
    )
    assert out.returncode == 0, out.stderr[-3000:]
    last = json.loads(out.stdout.strip().splitlines()[-1])
    assert last["machine"]
    return last


def test_engine_bench_smoke():
    r = run("engine_bench.py", "--customers", "300", "--months", "2", "--per-window-limit", "50")
    assert r["windows_per_s_batch_1024"] > 0 and r["ratio_batch_1024_vs_1"] > 0


def test_decode_bench_smoke():
    r = run("decode_bench.py", "--events", "500", "--repeats", "1")
    assert r["events"] == 500 and r["batch_speedup_over_reference"] > 0


@pytest.mark.integration
def test_redis_bench_smoke():
    r = run("redis_bench.py", "--customers", "2000", "--rate-customers", "2000", "--benchmark-requests", "20000")
    assert r["store_states_per_s"] > 0 and r["redis_bytes_per_customer_2000"] > 0


@pytest.mark.integration
def test_e2e_bench_smoke():
    r = run(
        "e2e_bench.py",
        "--customers",
        "60",
        "--months",
        "2",
        "--latency-customers",
        "30",
        "--latency-seconds",
        "2",
        "--latency-rate",
        "2000",
        "--variant",
        "thread:SEGSTREAM_CORE_PROCESS=false",
        "--repeats",
        "2",
        timeout=900,
    )
    assert r["bare_consumer_events_per_s"] > 0 and r["batch_worker_events_per_s"] > 0
    assert len(r["ratio_batch_worker_to_bare_pairs"]) == 2
    assert r["variant_thread_events_per_s"] > 0


@pytest.mark.integration
def test_soak_bench_smoke():
    r = run("soak_bench.py", "--events", "3000", "--rate", "3000", "--customers", "200", timeout=900)
    assert r["events"] == 3000 and r["rss_mib_end"] > 0


@pytest.mark.integration
def test_ingest_bench_smoke():
    r = run("ingest_bench.py", "--customers", "60", "--months", "2", "--batch", "64")
    assert r["events"] > 0 and r["batch_64_events_per_s"] > 0 and r["windows_closed"] > 0


@pytest.mark.integration
def test_month_end_bench_smoke():
    r = run("month_end_bench.py", "--customers", "500")
    (run_,) = r["runs_500"]
    assert run_["windows_closed"] == run_["windows_applied"] == run_["open_windows_before"] == 500


@pytest.mark.integration
def test_bootstrap_bench_smoke():
    r = run("bootstrap_bench.py", "--customers", "60", "--months", "3", "--repeat", "1", timeout=900)
    (run_,) = r["runs"]
    assert run_["events"] > 0 and run_["bootstrap_events_per_s"] > 0 and run_["demo_events_per_s"] > 0


@pytest.mark.integration
def test_memory_bound_bench_smoke():
    r = run("memory_bound_bench.py", "--customers", "2000", "--bound-mb", "8000", "--seconds", "120", timeout=900)
    assert r["events_read"] == 2000 and not r["paused_at_bound"] and r["core_rss_peak_mb"] > 0
