"""The lookup API and the explorer page against a real Redis filled by the real processor."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import httpx
import orjson
import pytest

from producers.synthetic import GeneratorConfig, SyntheticBank
from stream_app.batch import PartitionBatch
from stream_app.processor import StreamProcessor

from .harness import ROOT, isolated_settings, settings_from, wait_until
from .servers import free_port

pytestmark = pytest.mark.integration
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def served(redis_srv, tmp_path_factory):
    """Process 300 customers x 8 months through StreamProcessor into Redis, then serve the API."""
    env = isolated_settings("127.0.0.1:1", f"redis://127.0.0.1:{redis_srv.port}/3", history_windows=6)
    s = settings_from(env)
    from state.redis_client import connect

    connect(s.redis_url).flushdb()
    proc = StreamProcessor(s)
    events = [orjson.dumps(e) for e in SyntheticBank(GeneratorConfig(customers=300, months=8, seed=9)).events()]
    for i in range(0, len(events), 1024):
        chunk = events[i : i + 1024]
        proc.process([PartitionBatch(0, list(range(i, i + len(chunk))), chunk)])
        proc.checkpoint()
    port = free_port()
    log = open(tmp_path_factory.mktemp("api") / "api.log", "wb")
    api = subprocess.Popen([sys.executable, "-m", "segstream", "api", "--port", str(port)], env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
                           stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: httpx.get(base + "/openapi.json").status_code == 200, 60, "the API to start")
    yield base, proc
    api.terminate()
    api.wait(10)


def test_segments_sizes_add_up_and_carry_recommendations(served):
    base, proc = served
    segs = httpx.get(base + "/api/segments").json()
    assert len(segs) == 20
    assigned = sum(1 for s in proc.store.scan_segments().values() if s >= 0)
    assert sum(s["size"] for s in segs) == assigned > 0
    assert all(s["recommendation"] in ("savings plan", "credit/loan product", "wealth management", "budgeting help") for s in segs)
    assert httpx.get(base + "/api/segments/99").status_code == 404


def test_customer_lookup_and_clear_404(served):
    base, proc = served
    cid = "C0000007"
    c = httpx.get(base + f"/api/customers/{cid}").json()
    state, _ = proc.store.load([cid])
    assert c["segment"] == int(state.segment[0]) and c["windows_applied"] == int(state.n_windows[0])
    assert len(c["trajectory"]) == min(6, c["windows_applied"])
    assert c["segment_history"][-1]["segment"] == c["segment"]
    r = httpx.get(base + "/api/customers/nobody")
    assert r.status_code == 404 and "unknown customer 'nobody'" in r.json()["detail"]


def test_api_is_read_only(served):
    base, _ = served
    spec = httpx.get(base + "/openapi.json").json()
    methods = {m for path in spec["paths"].values() for m in path}
    assert methods == {"get"}
    assert httpx.post(base + "/api/customers/C0000007").status_code == 405


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_explorer_page_in_headless_chromium(served):
    exe = chromium()
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have Debian's chromium (.ci/run installs it)")
        pytest.skip("chromium not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    base, _ = served
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(base + "/")
            page.wait_for_selector("#segments li[data-segment]", timeout=20000)
            assert page.locator("#segments li").count() == 20
            page.wait_for_selector("#customers li", timeout=20000)
            first = page.locator("#customers li").first
            cid = first.inner_text()
            first.click()
            page.wait_for_selector(".traj-point", timeout=20000)
            assert cid in page.locator("#trajectory").inner_text()
            assert page.locator(".traj-point").count() >= 1
            # the map was drawn: some pixels are not white
            painted = page.evaluate("""() => { const c = document.getElementById('map').getContext('2d');
                const d = c.getImageData(0, 0, 640, 480).data; let n = 0;
                for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0) n++; return n; }""")
            assert painted > 500
            page.screenshot(path=str(ARTIFACTS / "explorer.png"), full_page=True)
        finally:
            browser.close()
