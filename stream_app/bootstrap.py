"""``segstream bootstrap``: go live with a bank's history in one command.

A bank does not start from an empty topic. Bootstrap reads its history (canonical events
as JSON lines, or a bank export with its column mapping) and applies it with exactly the
worker's arithmetic: the same :class:`StreamProcessor`, each customer in the partition
Kafka's default partitioner gives its key, in batches as large as a month end's. It then
**hands over** at a recorded cut-off: each partition's checkpoint is set to the topic's
end offset when bootstrap started, so the worker reads only what was published since,
nothing is applied twice (events in both are counted once: their window keeps their ids)
and nothing is dropped. Segments exist on day one; the first live window goes on from
each customer's bootstrapped state.

Run it before the deployment's first worker starts (it refuses while the consumer group
has members, or when the namespace already holds checkpoints).
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import orjson

from segstream.config import Settings
from segstream.errors import ConfigError

from .batch import PartitionBatch
from .partitioner import Partitioner

BATCH = 50_000  # events per processor call: one Redis round trip and one model call per round
SPILL_BUFFER = 4096  # lines held per spill file before they are written


@dataclass
class BootstrapReport:
    events: int = 0
    applied_windows: int = 0
    customers: int = 0
    rejected: Counter = field(default_factory=Counter)
    cutoff: dict[int, int] = field(default_factory=dict)  # partition -> first offset the worker reads
    seconds: float = 0.0

    def summary(self) -> dict:
        return {
            "events": self.events,
            "windows_applied": self.applied_windows,
            "customers": self.customers,
            "rejected": sum(self.rejected.values()),
            "reasons": dict(self.rejected),
            "cutoff": {str(p): o for p, o in sorted(self.cutoff.items())},
            "seconds": round(self.seconds, 2),
            "events_per_s": round(self.events / self.seconds, 1) if self.seconds else 0.0,
        }


def jsonl_payloads(path: Path, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """Canonical events, one JSON object per line, as bytes: the worker's fast decode path reads
    them. With ``start``/``end``, the lines that begin in that byte range (``jsonl_ranges``)."""
    with open(path, "rb") as f:
        if start:  # the line the byte before ``start`` is in belongs to the range before
            f.seek(start - 1)
            f.readline()
        while end is None or f.tell() <= end:
            line = f.readline()
            if not line:
                break
            line = line.strip()
            if line:
                yield line


def jsonl_ranges(path: Path, parts: int) -> list[tuple[int, int]]:
    """``parts`` byte ranges of a JSON-lines file; each line belongs to the range it begins in."""
    size = path.stat().st_size
    cuts = [size * i // parts for i in range(parts + 1)]
    return [(cuts[i], cuts[i + 1] - 1) for i in range(parts) if cuts[i + 1] > cuts[i]]


def export_payloads(path: Path, mapping, limits, report) -> Iterator[bytes]:
    """A bank export read through its mapping and checked by the worker's rules (producers/export.py)."""
    from segstream.producers.export import checked_events, read_export

    for event in checked_events(read_export(path, mapping), limits, report):
        yield orjson.dumps(event)


class _Keyed(msgspec.Struct):
    """The two fields the spill sorts by; msgspec skips the rest of the record unread."""

    customer_id: str
    timestamp: str = ""


def _key_and_month(payload: bytes, decode=msgspec.json.Decoder(_Keyed).decode) -> tuple[bytes, str]:
    try:
        event = decode(payload)
        return event.customer_id.encode(), event.timestamp[:7]
    except (msgspec.DecodeError, UnicodeEncodeError):
        pass
    try:  # not the canonical shape (a number for an id): as the worker will read it, or refused there
        event = orjson.loads(payload)
        return str(event["customer_id"]).encode(), str(event.get("timestamp", ""))[:7]
    except Exception:  # noqa: BLE001 - a malformed line: the decoder names its reason
        return b"", ""


def spill_by_month(
    payloads: Iterable[bytes], workdir: Path, part: Partitioner, tag: str = ""
) -> dict[int, list[tuple[str, Path]]]:
    """Each partition's records, as files of one month each, in month order. An export sorted by
    customer (or by anything but time) would otherwise move the clock past months other customers
    have not reached, and their events would be late; within a month order does not matter (a
    window closes only once the clock is past its end and the lateness). Memory stays flat
    whatever the history's size: records go to files (a few thousand lines buffered per file),
    read back one batch at a time."""
    files: dict[tuple[str, int], tuple[object, list[bytes]]] = {}
    for payload in payloads:
        key, month = _key_and_month(payload)
        p = part(key) if key else 0
        slot = files.get((month, p))
        if slot is None:
            slot = files[(month, p)] = (open(workdir / f"{tag}{len(files)}.tsv", "wb"), [])
        slot[1].append(key.replace(b"\t", b" ") + b"\t" + payload.replace(b"\n", b" ") + b"\n")
        if len(slot[1]) >= SPILL_BUFFER:
            slot[0].writelines(slot[1])
            slot[1].clear()
    out: dict[int, list[tuple[str, Path]]] = {}
    for (month, p), (f, pending) in sorted(files.items(), key=lambda kv: kv[0]):
        f.writelines(pending)
        f.close()
        out.setdefault(p, []).append((month, Path(f.name)))
    return out


def _spill_range(path: Path, start: int, end: int, workdir: Path, partitions: int, tag: str):
    return spill_by_month(jsonl_payloads(path, start, end), workdir, Partitioner(partitions), tag)


def spill(
    source: Path | Iterable[bytes], workdir: Path, partitions: int, pool, processes: int
) -> dict[int, list[Path]]:
    """Every partition's spill files in month order. A JSON-lines file is spilled by every process
    of ``pool`` at once, each a byte range of it (several files per month then: the order within a
    month does not matter); any other source (an export read through its mapping) by this one."""
    if isinstance(source, Path):
        ranges = jsonl_ranges(source, processes)
        jobs = [
            pool.submit(_spill_range, source, a, b, workdir, partitions, f"{i}-") for i, (a, b) in enumerate(ranges)
        ]
        parts = [j.result() for j in jobs]
    else:
        parts = [spill_by_month(source, workdir, Partitioner(partitions))]
    merged: dict[int, list[tuple[str, Path]]] = {}
    for got in parts:
        for p, files in got.items():
            merged.setdefault(p, []).extend(files)
    return {p: [f for _, f in sorted(files, key=lambda mf: mf[0])] for p, files in merged.items()}


def _records(paths: list[Path]) -> Iterator[tuple[bytes, bytes]]:
    for path in paths:
        with open(path, "rb") as f:
            for line in f:
                key, _, payload = line.rstrip(b"\n").partition(b"\t")
                yield key, payload


def _apply_partitions(s: Settings, spilled: dict[int, list[Path]]) -> BootstrapReport:
    """One process's share: its partitions' records, month by month, through a processor of its own."""
    from .processor import StreamProcessor

    proc = StreamProcessor(s)
    report = BootstrapReport()
    for p, paths in sorted(spilled.items()):
        offset, chunk = 0, []
        for key, payload in _records(paths):
            chunk.append((key, payload))
            if len(chunk) >= BATCH:
                offset = _apply(proc, p, offset, chunk, report)
                chunk = []
        _apply(proc, p, offset, chunk, report)
    proc.checkpoint()
    return report


def run(
    s: Settings,
    source: Path | Iterable[bytes],
    *,
    progress: Callable[[int], None] | None = None,
    processes: int | None = None,
) -> BootstrapReport:
    """Read the history (a JSON-lines file, or the payloads of an export), apply it (``processes``
    at once, one per core by default), hand over. ``progress`` is called with the number of events
    applied since its last call."""
    from .processor import StreamProcessor
    from .recovery import log_bounds

    processes = processes or os.cpu_count() or 1

    _refuse_if_live(s)
    from .kafka_config import ensure_topics

    ensure_topics(s)
    logs = log_bounds(s)
    report = BootstrapReport(cutoff={x.partition: x.end for x in logs})
    proc = StreamProcessor(s)
    if any(proc.checkpoints.meta(s.topic_transactions, p) is not None for p in report.cutoff):
        raise ConfigError(
            f"namespace {s.redis_prefix!r} already holds checkpoints: bootstrap starts a deployment; "
            "give it a new SEGSTREAM_NAMESPACE (or consumer group)"
        )
    t0 = time.perf_counter()
    spawn = multiprocessing.get_context("spawn")
    with (
        tempfile.TemporaryDirectory(prefix="segstream-bootstrap-") as workdir,
        ProcessPoolExecutor(processes, mp_context=spawn) as pool,
    ):
        spilled = spill(source, Path(workdir), len(report.cutoff), pool, processes)
        # partitions are independent: one process per core, each with its share; they count what
        # they applied in Redis, where this process reads the progress
        n = max(1, min(processes, len(spilled)))
        shares = [{p: f for p, f in spilled.items() if i == p % n} for i in range(n)]
        counter = f"{s.redis_prefix}:bootstrap:applied"
        proc.redis.delete(counter)
        futures = [pool.submit(_apply_partitions, s, share) for share in shares]
        shown = 0
        while not all(f.done() for f in futures):
            time.sleep(0.5)
            now = int(proc.redis.get(counter) or 0)
            if progress and now > shown:
                progress(now - shown)
                shown = now
        parts = [f.result() for f in futures]
    for got in parts:
        report.events += got.events
        report.applied_windows += got.applied_windows
        report.rejected.update(got.rejected)
    for p, cut in report.cutoff.items():  # the hand-over: the worker reads from the cut-off on
        proc.checkpoints.reposition(s.topic_transactions, p, cut - 1)
    proc.redis.hset(
        f"{s.redis_prefix}:bootstrap",
        mapping={
            "at": repr(time.time()),
            "events": report.events,
            **{f"cutoff:{p}": o for p, o in report.cutoff.items()},
        },
    )
    report.customers = len(proc.store.customer_ids())
    report.seconds = time.perf_counter() - t0
    return report


def _apply(proc, p: int, offset: int, chunk: list[tuple[bytes, bytes]], report: BootstrapReport) -> int:
    """One batch of partition ``p`` through the worker's processor, then a checkpoint; the next offset."""
    if not chunk:
        return offset
    keys = [k or None for k, _ in chunk]
    values = [v for _, v in chunk]
    out = proc.process([PartitionBatch(p, list(range(offset, offset + len(chunk))), values, None, keys)])
    report.events += len(chunk)
    report.applied_windows += out.engine.applied
    report.rejected.update(d.reason for d in out.dead_letters)
    proc.checkpoint()
    proc.redis.incrby(f"{proc.settings.redis_prefix}:bootstrap:applied", len(chunk))
    return offset + len(chunk)


def _refuse_if_live(s: Settings) -> None:
    from kafka.admin import KafkaAdminClient
    from kafka.errors import CoordinatorNotAvailableError

    from .kafka_config import kafka_python_options

    admin = KafkaAdminClient(**kafka_python_options(s), client_id="segstream-bootstrap")
    try:
        for _attempt in range(30):  # a new broker has no group coordinator until its offsets topic exists
            try:
                groups = admin.describe_groups([s.consumer_group])
                break
            except CoordinatorNotAvailableError:
                time.sleep(0.5)
        else:
            raise ConfigError("Kafka's group coordinator does not answer: cannot tell whether workers are running")
        members = groups.get(s.consumer_group, {}).get("members", []) if isinstance(groups, dict) else []
    finally:
        admin.close()
    if members:
        raise ConfigError(
            f"consumer group {s.consumer_group!r} has {len(members)} running worker(s): stop them, or bootstrap "
            "a new deployment (another consumer group) and switch over"
        )
