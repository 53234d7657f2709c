"""Where the worker's core runs: a thread of the worker, or a process of its own.

In one process, aiokafka's record unpacking (the event loop) and our decoding,
windows and engine (the core) take turns on one interpreter lock, so the worker
uses about one core however many the machine has. In a process of its own the
core runs beside the event loop on a second core; a batch crosses as its raw
payloads (one pickle of a list of bytes) and comes back as its outputs. The
same :class:`StreamProcessor` runs either way: the choice is one setting.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import pickle
import threading
import time
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

from segstream.config import Settings
from segstream.gc_tuning import tune_gc

from .batch import PartitionBatch

_processor = None  # the StreamProcessor, in whichever thread or process runs the core


def _exit_with(parent: int) -> None:
    """End this process once its worker is gone: a kill -9 of the worker skips the pool's shutdown."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)  # whatever batch was running is re-read from the last checkpoint


def _start(settings: Settings, parent: int | None) -> None:
    global _processor
    from .processor import StreamProcessor  # here, so the worker's own process need not import torch

    _processor = StreamProcessor(settings)
    if parent is not None:  # a child process; the worker tunes its own collector once started
        threading.Thread(target=_exit_with, args=(parent,), name="segstream-parent-watch", daemon=True).start()
        tune_gc(settings.gc_threshold)


def _call(method: str, args: tuple) -> Any:
    try:
        return getattr(_processor, method)(*args)
    except Exception as err:
        raise _portable(err) from None


def _portable(err: Exception) -> Exception:
    """The exception as the worker can receive it from the core's process: some carry what
    cannot be pickled (redis-py's cluster errors hold a lock), and an exception that fails to
    pickle reaches the worker as a ``TypeError`` that hides the outage behind it. Its type and
    message are what the worker's handling reads."""
    try:
        pickle.loads(pickle.dumps(err))
        return err
    except Exception:
        try:
            return type(err)(str(err))
        except Exception:
            return RuntimeError(f"{type(err).__name__}: {err}")


class CoreRunner:
    """A :class:`StreamProcessor` behind one single-worker executor: calls run in order, one at a time."""

    def __init__(self, settings: Settings):
        self.in_process = settings.core_process
        self.executor: Executor
        if self.in_process:
            # spawn, not fork: the worker already runs threads (aiokafka, Faust, redis-py)
            self.executor = ProcessPoolExecutor(
                1, mp_context=multiprocessing.get_context("spawn"), initializer=_start, initargs=(settings, os.getpid())
            )
        else:
            self.executor = ThreadPoolExecutor(
                1, thread_name_prefix="segstream-core", initializer=_start, initargs=(settings, None)
            )

    def _submit(self, method: str, *args: Any) -> asyncio.Future:
        """``StreamProcessor.<method>(*args)`` where the core runs, queued now behind earlier calls.

        Await the future for the result; the core's exceptions are raised there.
        """
        return asyncio.get_running_loop().run_in_executor(self.executor, _call, method, args)

    # The processor's methods, typed: each call is queued now and runs in order.
    def process(self, batch: list[PartitionBatch], now: float | None = None) -> asyncio.Future:  # -> BatchOutput
        return self._submit("process", batch, now)

    def checkpoint(self) -> asyncio.Future:  # -> None
        return self._submit("checkpoint")

    def reset(self) -> asyncio.Future:  # -> None
        return self._submit("reset")

    def assign(self, partitions: list[int]) -> asyncio.Future:  # -> None
        return self._submit("assign", partitions)

    def revoke(self, partitions: list[int]) -> asyncio.Future:  # -> None
        return self._submit("revoke", partitions)

    def model_stats(self) -> asyncio.Future:  # -> (model version, segment sizes, centroid version)
        return self._submit("model_stats")
