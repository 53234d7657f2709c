"""The lookup API and the explorer page against a real Redis filled by the real processor."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from urllib.parse import quote

import httpx
import orjson
import pytest

from segstream.producers.synthetic import GeneratorConfig, SyntheticBank
from segstream.stream_app.auth import SCOPES, KeyRing
from segstream.stream_app.batch import PartitionBatch
from segstream.stream_app.processor import StreamProcessor

from .harness import ROOT, isolated_settings, settings_from, wait_until
from .servers import free_port

pytestmark = pytest.mark.integration
ARTIFACTS = ROOT / "test-artifacts"


XSS = "<img src=x onerror=alert(document.domain)>"
KEYS = {scope: KeyRing.new(f"test-{scope}", scope) for scope in SCOPES}  # scope -> (key, stored)


def auth(scope: str) -> dict[str, str]:
    return {"X-API-Key": KEYS[scope][0]}


@pytest.fixture(scope="module")
def served(redis_srv, tmp_path_factory):
    """Process 300 customers x 8 months through StreamProcessor into Redis, then serve the API.

    One customer id carries markup, written straight into Redis as data from before the
    ingest alphabet existed would be: the page must show it as text."""
    env = isolated_settings(
        "127.0.0.1:1",
        f"redis://127.0.0.1:{redis_srv.port}/3",
        history_windows=6,
        api_keys=";".join(stored.line() for _, stored in KEYS.values()),
        api_request_timeout_s=2,
    )
    s = settings_from(env)
    from segstream.state.redis_client import connect

    connect(s.redis_url).flushdb()
    proc = StreamProcessor(s)
    events = [orjson.dumps(e) for e in SyntheticBank(GeneratorConfig(customers=300, months=8, seed=9)).events()]
    for i in range(0, len(events), 1024):
        chunk = events[i : i + 1024]
        proc.process([PartitionBatch(0, list(range(i, i + len(chunk))), chunk)])
        proc.checkpoint()
    plant_markup_customer(proc)
    port = free_port()
    log = open(tmp_path_factory.mktemp("api") / "api.log", "wb")
    api = subprocess.Popen(
        [sys.executable, "-m", "segstream", "api", "--port", str(port)],
        env={
            **os.environ,
            **env,
        },
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: httpx.get(base + "/openapi.json").status_code == 200, 60, "the API to start")
    assert b"development key" not in open(log.name, "rb").read()  # configured keys: no development key
    yield base, proc
    api.terminate()
    api.wait(10)


def plant_markup_customer(proc: StreamProcessor) -> None:
    from segstream.core.ports import StateBatch

    some, _ = proc.store.load(["C0000007"])
    b = StateBatch.empty(1, proc.store.hidden_size)
    for f in StateBatch.fields():
        getattr(b, f)[:] = getattr(some, f)
    b.prev_segment[:] = -1
    proc.store.commit([XSS], b)


def test_segments_sizes_add_up_and_carry_recommendations(served):
    base, proc = served
    segs = httpx.get(base + "/api/segments", headers=auth("segments")).json()
    assert len(segs) == 20
    assigned = sum(1 for c, s in proc.store.segments().items() if s >= 0 and c != XSS)
    assert sum(s["size"] for s in segs) == assigned + 1 and assigned > 0  # + the planted customer
    assert all(
        s["recommendation"] in ("savings plan", "credit/loan product", "wealth management", "budgeting help")
        for s in segs
    )
    # who is in each segment in spending terms, from the artefact's surrogate tree
    assert sum(1 for s in segs if s["rules"]) >= 19 and 0.5 < segs[0]["rules_accuracy"] < 1
    assert all("% of the segment" in r for s in segs for r in s["rules"])
    assert httpx.get(base + "/api/segments/99", headers=auth("segments")).status_code == 404


def test_a_request_not_received_whole_in_time_is_closed_and_others_are_served(served):
    """Before: uvicorn has no request deadline, so half-sent headers or a one-byte-a-second
    trickle held a connection as long as the client liked (Slowloris)."""
    import socket
    import time

    base, _ = served
    port = int(base.rsplit(":", 1)[1])

    def connect() -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.settimeout(10)
        return sock

    half = connect()
    half.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # no blank line: never complete
    t0 = time.monotonic()
    assert half.recv(1024) == b"" and 1.5 < time.monotonic() - t0 < 6  # closed at the 2 s deadline
    trickle = connect()
    t0 = time.monotonic()
    closed = False
    for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 40:
        try:
            trickle.sendall(bytes([byte]))
        except OSError:
            closed = True
            break
        time.sleep(0.1)
    assert closed or trickle.recv(1024) == b""
    assert time.monotonic() - t0 < 8
    # a whole request on a kept-alive connection, twice, is answered
    with httpx.Client() as client:
        assert client.get(base + "/healthz").status_code == 200
        time.sleep(2.5)  # longer than the deadline, shorter than uvicorn's keep-alive (5 s)
        assert client.get(base + "/healthz").status_code == 200


def test_customer_lookup_and_clear_404(served):
    base, proc = served
    cid = "C0000007"
    c = httpx.get(base + f"/api/customers/{cid}", headers=auth("customers")).json()
    state, _ = proc.store.load([cid])
    assert c["segment"] == int(state.segment[0]) and c["windows_applied"] == int(state.n_windows[0])
    assert len(c["trajectory"]) == min(6, c["windows_applied"])
    assert c["segment_history"][-1]["segment"] == c["segment"]
    # the shipped artefact carries a fitted confidence for the current segment: a probability
    assert c["segment"] < 0 or 0.0 <= c["confidence"] <= 1.0
    r = httpx.get(base + "/api/customers/nobody", headers=auth("customers"))
    assert r.status_code == 404 and "unknown customer 'nobody'" in r.json()["detail"]


def test_every_route_needs_a_key_and_each_scope_reaches_only_its_routes(served):
    base, _ = served
    routes = {
        "/": "segments",
        "/static/explorer.js": "segments",
        "/api/segments": "segments",
        "/api/segments/0": "segments",
        "/api/customers/C0000007": "customers",
        "/api/map?limit=5": "customers",
    }
    rank = list(SCOPES)
    for path, needs in routes.items():
        anon = httpx.get(base + path)
        assert anon.status_code == 401 and "X-API-Key" in anon.json()["detail"], path
        assert anon.headers["www-authenticate"].startswith("Basic")  # browsers prompt
        assert httpx.get(base + path, headers={"X-API-Key": "sk_wrong"}).status_code == 401
        for scope in SCOPES:
            r = httpx.get(base + path, headers=auth(scope))
            if rank.index(scope) >= rank.index(needs):
                assert r.status_code == 200, (path, scope)
            else:
                assert r.status_code == 403 and f"needs '{needs}'" in r.json()["detail"], (path, scope)
    # browsers: HTTP Basic with the key as password
    assert httpx.get(base + "/api/segments", auth=("anyone", KEYS["segments"][0])).status_code == 200
    assert httpx.get(base + "/api/segments", auth=("anyone", "sk_wrong")).status_code == 401


def test_openapi_shows_the_schemes_and_no_page_loads_from_a_cdn(served):
    base, _ = served
    spec = httpx.get(base + "/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert {s["type"] for s in schemes.values()} == {"apiKey", "http"}
    assert all(op.get("security") for path in spec["paths"].values() for op in path.values())
    docs = httpx.get(base + "/docs")  # Swagger UI, from the package's own files
    assert docs.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in docs.text
    assert not re.search(r"(src|href)=[\"']https?://", docs.text), "a /docs asset loads from elsewhere"
    assert "unsafe-inline" not in docs.headers["content-security-policy"].split("style-src")[0]
    assert httpx.get(base + "/docs-assets/swagger-ui-bundle.js").status_code == 200
    assert httpx.get(base + "/redoc").status_code == 404  # ReDoc would load from a CDN
    r = httpx.get(base + "/", headers=auth("segments"))
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["cache-control"] == "no-store"
    assert "<script>" not in r.text and "http" not in r.text.lower().replace("http-equiv", "")


def test_windows_give_sizes_and_flows_that_add_up_to_the_states(served):
    """Per window: customers by segment and who moved where, aggregated by the commits; the
    newest window's sizes are the segments of the customers whose last window it is."""
    base, proc = served
    wins = httpx.get(base + "/api/windows", headers=auth("segments")).json()
    assert len(wins) >= 2 and [w["window_start"] for w in wins] == sorted(w["window_start"] for w in wins)
    for w in wins:
        assert sum(w["sizes"].values()) == sum(f["customers"] for f in w["flows"])
    ids = proc.store.customer_ids()  # the planted customer too: its commit counted like any other
    state, _ = proc.store.load(ids)
    last = int(state.last_window.max())
    want: dict[str, int] = {}
    for s, lw in zip(state.segment.tolist(), state.last_window.tolist()):
        if lw == last and s >= 0:
            want[str(s)] = want.get(str(s), 0) + 1
    assert wins[-1]["sizes"] == want
    assert any(f["before"] != f["after"] for w in wins for f in w["flows"])  # changes are there to draw
    assert httpx.get(base + "/api/windows").status_code == 401


def test_customer_search_by_prefix(served):
    base, _ = served
    ids = httpx.get(base + "/api/customers", params={"prefix": "C000001", "limit": 5}, headers=auth("customers")).json()
    assert ids == sorted(ids) and len(ids) == 5 and all(i.startswith("C000001") for i in ids)
    assert httpx.get(base + "/api/customers", params={"prefix": "*"}, headers=auth("customers")).json() == []
    assert httpx.get(base + "/api/customers", params={"prefix": "C"}, headers=auth("segments")).status_code == 403


def test_markup_in_a_customer_id_is_served_as_json_text(served):
    base, _ = served
    r = httpx.get(base + "/api/customers/" + quote(XSS, safe=""), headers=auth("customers"))
    assert r.status_code == 200 and r.json()["customer_id"] == XSS
    assert r.headers["content-type"] == "application/json"


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
        browser = pw.chromium.launch(
            executable_path=exe,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            page = browser.new_page(
                viewport={"width": 1400, "height": 1000},
                http_credentials={"username": "adviser", "password": KEYS["customers"][0]},
            )
            dialogs, violations, errors, elsewhere = [], [], [], []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on(
                "console",
                lambda m: (
                    ("Content Security Policy" in m.text and violations.append(m.text)),
                    (m.type == "error" and errors.append(m.text)),
                ),
            )
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: r.url.startswith(base) or elsewhere.append(r.url))
            page.goto(base + "/")
            page.wait_for_selector("#segments li[data-segment]", timeout=20000)
            assert page.locator("#segments > li").count() == 20
            assert page.locator("#segments ul.rules li").count() >= 19  # each segment's rules, as text
            assert "% of the segment" in page.locator("#segments ul.rules li").first.inner_text()
            page.wait_for_selector("#customers li", timeout=20000)

            def painted(chart: str) -> int:  # pixels an ECharts canvas has drawn
                return page.evaluate(
                    """id => { const c = document.querySelector('#' + id + ' canvas');
                    if (!c) return 0; const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                    let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }""",
                    chart,
                )

            page.wait_for_function("() => charts.map.getOption().series.length > 1", timeout=20000)
            assert painted("map") > 2000 and painted("sizes") > 2000
            sizes = page.evaluate("() => charts.sizes.getOption().series.map(s => s.data.reduce((a, b) => a + b, 0))")
            assert sum(sizes) > 0
            # the flow view: a Sankey of the newest window's changes, then another window picked
            links = page.evaluate("() => charts.flows.getOption().series[0].links.length")
            windows = page.locator("#flow-window option").count()
            assert windows >= 2
            if links == 0:  # the newest window may have no change: pick one that has
                for i in range(windows):
                    page.select_option("#flow-window", index=i)
                    if page.evaluate("() => charts.flows.getOption().series[0].links.length"):
                        break
            assert page.evaluate("() => charts.flows.getOption().series[0].links.length") > 0
            assert painted("flows") > 1000
            # search: an id's start lists the matches; the full id opens the customer
            page.fill("#search", "C000001")
            page.click("#search-form button")
            page.wait_for_function(
                "() => [...document.querySelectorAll('#customers li')].every(li => li.textContent.startsWith('C000001'))",
                timeout=20000,
            )
            page.fill("#search", "C0000012")
            page.click("#search-form button")
            page.wait_for_function(
                "() => document.getElementById('trajectory').textContent.includes('C0000012')", timeout=20000
            )
            assert page.locator(".traj-point").count() >= 1
            # the trajectory: traits over time as a chart, the path drawn on the map
            assert page.evaluate("() => charts.traits.getOption().series.length") == 5
            assert painted("traits") > 1000
            assert page.evaluate("() => charts.map.getOption().series.some(s => s.name === 'selected customer')")
            page.screenshot(path=str(ARTIFACTS / "explorer.png"), full_page=True)
            # a customer whose segment changed (here: got its first one, 8 months being short for
            # more): the change is marked on the chart and in the list, with the traits that moved
            changed = page.evaluate("""async () => { for (const id of points.map(p => p.customer_id)) {
                const c = await (await fetch('/api/customers/' + encodeURIComponent(id))).json();
                if (c.trajectory.some(t => t.change)) return id; } return null; }""")
            assert changed, "no stored trajectory shows a segment change (a first segment counts)"
            page.evaluate("id => select(id)", changed)
            page.wait_for_selector(".traj-point.changed", timeout=20000)
            assert "→" in page.locator(".traj-point.changed").last.inner_text()
            marks = page.evaluate("() => charts.traits.getOption().series[0].markLine.data.length")
            assert marks >= 1
            page.screenshot(path=str(ARTIFACTS / "explorer-change.png"), full_page=True)
            # a customer id with markup is shown as text, and no script of its runs
            page.evaluate("id => select(id)", XSS)
            page.wait_for_function(
                "id => document.getElementById('trajectory').textContent.includes(id)", arg=XSS, timeout=20000
            )
            page.wait_for_timeout(500)
            assert page.locator("img").count() == 0
            assert dialogs == [] and violations == [] and errors == [], (dialogs, violations, errors)
            assert elsewhere == [], elsewhere  # nothing from a CDN or any other host
            # Swagger UI, offline: its own assets only, within its CSP
            page.goto(base + "/docs")
            page.wait_for_selector(".swagger-ui .info .title", timeout=20000)
            assert "segstream lookup API" in page.locator(".swagger-ui .info .title").inner_text()
            page.screenshot(path=str(ARTIFACTS / "docs.png"))
            assert violations == [] and elsewhere == [], (violations, elsewhere)
        finally:
            browser.close()


def test_admin_erases_a_customer_and_the_api_then_answers_404(served):
    base, proc = served
    cid = "C0000099"
    url = base + f"/api/customers/{cid}"
    assert httpx.get(url, headers=auth("customers")).status_code == 200
    assert httpx.delete(url, headers=auth("customers")).status_code == 403
    r = httpx.delete(url, headers=auth("admin"), timeout=60)
    assert r.status_code == 200 and r.json()["state"] is True
    assert r.json()["tombstone"] is False  # this test's API has no broker: reported, not hidden
    assert httpx.get(url, headers=auth("customers")).status_code == 404
    assert cid not in [
        p["customer_id"] for p in httpx.get(base + "/api/map?limit=20000", headers=auth("customers")).json()
    ]
