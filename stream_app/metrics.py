"""Prometheus metrics of the worker. Label sets are bounded: no customer ids."""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge, Histogram, Info, Summary

from segstream.core.personality import TRAIT_ABBR
from segstream.core.windows import OUTCOMES

from .batch import BatchOutput, PartitionBatch

EVENTS = Counter("segstream_events_total", "Transactions consumed, by outcome", ["outcome"])
DEAD_LETTERS = Counter("segstream_dead_letters_total", "Events sent to the dead-letter topic, by reason", ["reason"])
WINDOWS_CLOSED = Counter("segstream_windows_closed_total", "Customer windows closed by the watermark")
STATE_UPDATES = Counter("segstream_state_updates_total", "Windows applied to a customer's LSTM state")
STALE_WINDOWS = Counter("segstream_stale_windows_total", "Closed windows already applied before (replays)")
CHANGES = Counter(
    "segstream_segment_changes_total",
    "Segment-change events, by dominant trait before and after",
    ["from_trait", "to_trait"],
)
BATCH_EVENTS = Histogram(
    "segstream_batch_events", "Events per consumed batch", buckets=(1, 8, 32, 128, 512, 1024, 2048, 4096, 8192)
)
STAGE_SECONDS = Histogram(
    "segstream_engine_stage_seconds",
    "Engine time per batch, by stage",
    ["stage"],
    buckets=(1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5, 1, 5),
)
WORKER_SECONDS = Summary(
    "segstream_worker_stage_seconds",
    "Worker wall-clock per batch, by stage (fetch, process, ack_wait, checkpoint, commit): "
    "what the worker waits on; fetch and ack_wait count only waits not overlapped with processing",
    ["stage"],
)
E2E_SECONDS = Histogram(
    "segstream_end_to_end_seconds",
    "From broker ingest of a batch's oldest event to its segment changes being published "
    "(the record's timestamp: the broker's append time on a topic segstream created)",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
LAG = Gauge("segstream_consumer_lag_messages", "Messages behind the partition's high-water mark", ["partition"])
OPEN_WINDOWS = Gauge("segstream_open_windows", "Customer windows open in this worker")
SEGMENT_SIZE = Gauge("segstream_segment_customers", "Customers currently in each micro-segment", ["segment"])
CENTROID_VERSION = Gauge("segstream_centroid_version", "Folds applied to the shared k-means model")
CHECKPOINT_LAG = Gauge(
    "segstream_checkpoint_lag_messages",
    "Messages behind the partition's high-water mark that no window checkpoint covers yet (what a crash would re-read)",
    ["partition"],
)
PUBLISH_ERRORS = Counter(
    "segstream_publish_errors_total", "Output batches the broker refused; the worker re-reads from its last checkpoint"
)
DETECTED_CHANGES = Counter(
    "segstream_detected_changes_total",
    "Windows whose change statistic passed the threshold (the customer's state restarted)",
)
FENCED = Counter(
    "segstream_fenced_partitions_total",
    "Writes for a partition refused because a newer owner claimed it (this worker was a zombie: "
    "paused past its session); the partition is let go",
    ["where"],
)
STORE_ROLLBACKS = Counter(
    "segstream_store_rollbacks_total",
    "Times Redis held older data than the worker had written or read (a restored snapshot): it re-read "
    "every partition from the checkpoints Redis held then",
)
CORE_FAILURES = Counter(
    "segstream_core_failures_total",
    "Batches the core could not apply for the system's fault (engine_failing, store_corrupt): nothing "
    "of them is dead-lettered or committed; the worker backs off and reads them again",
    ["reason"],
)
REDIS_ERRORS = Counter("segstream_redis_errors_total", "Redis operations that failed after retries", ["op"])
MODEL = Info("segstream_model", "The model artefact this worker serves")
DEAD_LETTERED = Counter(
    "segstream_dead_lettered_events_total",
    "Events sent to the dead-letter topic, all reasons (there from start-up, so rate() sees a burst)",
)

# Every label value a panel or an alert reads exists at 0 from start-up: a series that appears
# at its first error already at its full value is a step rate() never sees.
OUTCOME_LABELS = (*OUTCOMES, "invalid", "forgotten", "other_category", "fenced", "replayed")
COMMON_DLQ_REASONS = (
    "malformed_json",
    "not_utf8",
    "oversized",
    "tombstone",
    "key:missing",
    "key:mismatch",
    "late:window_closed",
    "category:unknown_category",
    "category:missing",
    "mcc:unknown",
    "customer_id:string_pattern_mismatch",
    "amount:out_of_range",
    "timestamp:in_future",
)
for _o in OUTCOME_LABELS:
    EVENTS.labels(_o)
for _r in COMMON_DLQ_REASONS:
    DEAD_LETTERS.labels(_r)
for _r in ("engine_failing", "store_corrupt"):
    CORE_FAILURES.labels(_r)
for _op in ("batch", "claim", "gauges"):
    REDIS_ERRORS.labels(_op)
for _w in ("checkpoint", "state"):
    FENCED.labels(_w)


def _trait(label: str | None) -> str:
    return label.split(">")[0] if label else "none"


def observe_batch(batch: list[PartitionBatch], out: BatchOutput) -> None:
    if batch:  # not the timer's closing of quiet partitions
        BATCH_EVENTS.observe(sum(map(len, batch)))
    for outcome, n in out.outcomes.items():
        EVENTS.labels(outcome).inc(n)
    for d in out.dead_letters:
        DEAD_LETTERS.labels(d.reason).inc()
    DEAD_LETTERED.inc(len(out.dead_letters))
    WINDOWS_CLOSED.inc(out.windows_closed)
    STATE_UPDATES.inc(out.engine.applied)
    STALE_WINDOWS.inc(out.engine.stale)
    DETECTED_CHANGES.inc(out.engine.detected)
    if out.windows_closed:
        for stage, sec in out.engine.seconds.items():
            STAGE_SECONDS.labels(stage).observe(sec)
    for ch in out.changes:
        CHANGES.labels(_trait(ch.old_segment_label), _trait(ch.segment_label)).inc()


def observe_published(batch: list[PartitionBatch], out: BatchOutput) -> None:
    """When the broker has acknowledged a batch's segment changes: their end-to-end latency."""
    stamps = [pb.timestamp for pb in batch if pb.timestamp]
    if out.changes and stamps:
        E2E_SECONDS.observe(time.time() - min(stamps))


def observe_model(sizes: dict[int, int], centroid_version: int) -> None:
    for seg, n in sizes.items():
        SEGMENT_SIZE.labels(str(seg)).set(n)
    CENTROID_VERSION.set(centroid_version)


for _t in TRAIT_ABBR:  # pre-create the bounded label set so dashboards show zeros, not gaps
    CHANGES.labels("none", _t)
HALTED = Gauge(
    "segstream_halted_partitions",
    "Partitions this worker holds but will not process until repaired, by reason "
    "(store_lost, log_mismatch, namespace_shared, repartitioned, erasures_restored, store_may_evict, store_evicted, "
    "layout_changed)",
    ["reason"],
)
LOG_SUPPRESSED = Counter("segstream_log_lines_suppressed_total", "Repeated warning and error lines held back")
CORE_MEMORY = Gauge(
    "segstream_core_resident_bytes", "Resident memory of the core's process (0: a thread of the worker)"
)
MEMORY_BOUND = Gauge(
    "segstream_memory_bound",
    "1 while the core is at its memory bound (open windows or resident memory) and fetching is paused",
)
