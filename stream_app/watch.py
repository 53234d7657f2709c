"""A consumer of segment changes, as downstream teams would write one."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
from kafka import KafkaConsumer

from segstream.config import Settings

from .kafka_config import kafka_python_options


def changes(settings: Settings, *, from_beginning: bool = False, idle_timeout_s: float | None = None) -> Iterator[dict]:
    consumer = KafkaConsumer(
        settings.topic_changes,
        **kafka_python_options(settings),
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=int(idle_timeout_s * 1000) if idle_timeout_s else float("inf"),
    )
    try:
        for msg in consumer:
            if msg.value is None:  # an erasure marker: everything before it of this customer is void
                yield {"customer_id": (msg.key or b"").decode(errors="replace"), "erased": True}
                continue
            try:
                yield orjson.loads(msg.value)
            except orjson.JSONDecodeError:
                yield {"customer_id": (msg.key or b"").decode(errors="replace"), "unreadable": True}
    finally:
        consumer.close()


HEADER = (
    f"{'window':<10}  {'customer':<14} {'from':>8} -> {'to':<8}  {'conf':<9}  "
    f"[predicted traits O C E A N, z-scores]  model@centroids"
)


def describe(ch: dict) -> str:
    """One line per change; the window is shown by its first day ([start, end), as in the API)."""
    if ch.get("erased") or ch.get("unreadable"):
        what = "erased: drop what you hold of this customer" if ch.get("erased") else "unreadable record"
        return f"{'':<10}  {ch['customer_id']:<14} {what}"
    # events from before window_start existed: the (exclusive) end, marked as such
    window = ch["window_start"][:10] if ch.get("window_start") else "<" + ch["window_end"][:10]
    traits = " ".join(f"{k[0].upper()}{v:+.2f}" for k, v in ch["traits"].items())
    old = "new" if ch["old_segment"] is None else f"{ch['old_segment']:>2} {ch['old_segment_label'] or '':<5}"
    return (
        f"{window:<10}  {ch['customer_id']:<14} {old:>8} -> {ch['new_segment']:>2} {ch['segment_label']:<5}"
        f"  conf {ch['confidence']:.2f}  [{traits}]  {ch['model_version']}@{ch['centroid_version']}"
    )
