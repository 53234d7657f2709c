"""Garbage-collector settings for a process that streams batches.

A worker allocates short-lived container objects in bursts (a Kafka record and a
decoded event per message) on top of a large long-lived heap (torch, the web app,
open windows). With CPython's defaults the young generation is collected every 700
allocations, so each batch triggers dozens of collections, and objects that live
for one batch get promoted and are walked again by full collections. Measured on
aiokafka's own ``getmany`` (bench notes in BENCHMARKS.md §3), collection was a
third of its time.
"""

from __future__ import annotations

import gc


def tune_gc(threshold: int) -> None:
    """Freeze what start-up built, and collect the young generation every ``threshold`` allocations.

    Frozen objects (modules, the model, the app) are never walked again; cycles
    made later are still collected. ``threshold`` 0 leaves Python's defaults.
    """
    if threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(threshold, gen1, gen2)
