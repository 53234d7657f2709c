"""Bootstrap spills a JSON-lines history from every process at once, each a byte range: every line
must land in exactly one range whatever the cuts, and each partition's files in month order."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from segstream.stream_app.bootstrap import jsonl_payloads, jsonl_ranges, spill_by_month
from segstream.stream_app.partitioner import Partitioner


@pytest.mark.parametrize("parts", [1, 2, 3, 5, 8, 40])
def test_every_line_is_read_by_exactly_one_range(tmp_path: Path, parts: int):
    lines = [orjson.dumps({"i": i, "pad": "x" * (i % 7)}) for i in range(97)]
    path = tmp_path / "h.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n\n")  # a blank line at the end too
    got = [line for a, b in jsonl_ranges(path, parts) for line in jsonl_payloads(path, a, b)]
    assert got == lines


def test_a_range_starting_exactly_at_a_line_keeps_that_line(tmp_path: Path):
    path = tmp_path / "h.jsonl"
    path.write_bytes(b"aaaa\nbbbb\n")  # the second line begins at byte 5
    assert list(jsonl_payloads(path, 0, 4)) == [b"aaaa"] and list(jsonl_payloads(path, 5, 9)) == [b"bbbb"]


def test_spill_files_come_back_in_month_order_per_partition(tmp_path: Path):
    events = [
        {"customer_id": f"C{c}", "timestamp": f"2024-{m:02d}-03T00:00:00Z", "amount": 1.0}
        for m in (3, 1, 2)
        for c in range(5)
    ]
    out = spill_by_month((orjson.dumps(e) for e in events), tmp_path, Partitioner(2), tag="t-")
    for files in out.values():
        months = [m for m, _ in files]
        assert months == sorted(months) and all(p.name.startswith("t-") for _, p in files)
    # a line that is not JSON still goes somewhere (partition 0): the decoder names its reason there
    bad = spill_by_month([b"{not json"], tmp_path, Partitioner(2), tag="b-")
    assert list(bad) == [0]


def test_a_history_in_time_order_is_applied_in_time_order_however_many_spill_at_once(tmp_path: Path):
    """Ranges keep file order and the merge is a stable sort by month, so a time-ordered history
    reaches each partition in time order (it matters for windows shorter than a month)."""
    from concurrent.futures import ThreadPoolExecutor

    from segstream.stream_app.bootstrap import _records, spill

    events = [
        {"customer_id": f"C{i % 13}", "timestamp": f"2024-{1 + i // 60:02d}-{1 + i % 28:02d}T{i % 24:02d}:00:00Z"}
        for i in range(300)
    ]
    events.sort(key=lambda e: e["timestamp"])
    path = tmp_path / "h.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\n")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    serial = spill(iter(path.read_bytes().split(b"\n")[:-1]), tmp_path / "a", 3, None, 1)
    with ThreadPoolExecutor(4) as pool:
        parallel = spill(path, tmp_path / "b", 3, pool, 4)
    for p in serial:
        one = [orjson.loads(v)["timestamp"] for _, v in _records(serial[p])]
        assert one == sorted(one) and one == [orjson.loads(v)["timestamp"] for _, v in _records(parallel[p])]
