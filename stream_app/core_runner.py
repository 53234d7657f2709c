"""Where the worker's core runs: a thread of the worker, or a process of its own.

In one process, aiokafka's record unpacking (the event loop) and our decoding,
windows and engine (the core) take turns on one interpreter lock, so the worker
uses about one core however many the machine has. In a process of its own the
core runs beside the event loop on a second core; a batch crosses as its raw
payloads and comes back as its outputs. The same :class:`StreamProcessor` runs either
way: the choice is one setting.

A call is a method of :class:`StreamProcessor` (``StreamProcessor.process``), pickled by
name, and its arguments; the processor itself lives only where the core runs, held by
the loop that serves it. Calls run one at a time in the order they were made.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import pickle
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from segstream.config import Settings
from segstream.errors import SystemFailure
from segstream.gc_tuning import tune_gc

from .batch import PartitionBatch
from .positions import LogBounds


class CoreDown(SystemFailure):
    """The core's process is gone (killed, out of memory): a restart of the worker is the repair."""

    reason = "core_down"


def _processor(settings: Settings):
    from .processor import StreamProcessor  # here, so the worker's own process need not import torch

    return StreamProcessor(settings)


def _portable(err: BaseException) -> BaseException:
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


def _exit_with(parent: int) -> None:
    """End this process once its worker is gone: a kill -9 of the worker skips any shutdown."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)  # whatever batch was running is re-read from the last checkpoint


def _serve(settings: Settings, conn, parent: int) -> None:
    """The core's process: build the processor, then run each call it receives, in order."""
    threading.Thread(target=_exit_with, args=(parent,), name="segstream-parent-watch", daemon=True).start()
    try:
        processor = _processor(settings)
    except BaseException as err:  # noqa: BLE001 - reported to the worker, which fails its start
        conn.send((False, _portable(err)))
        return
    conn.send((True, None))
    tune_gc(settings.gc_threshold)
    while True:
        try:
            method, args = conn.recv()
        except EOFError:
            return
        try:
            conn.send((True, method(processor, *args)))
        except BaseException as err:  # noqa: BLE001 - every failure goes back to the worker
            conn.send((False, _portable(err)))


class CoreRunner:
    """A :class:`StreamProcessor` in a process (or thread) of its own; each call returns a future."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.in_process = settings.core_process
        # one thread orders the calls and waits on the core: the event loop never blocks
        self._caller = ThreadPoolExecutor(1, thread_name_prefix="segstream-core")
        self._conn = None
        self._proc = None
        self._local = None

    def _start(self) -> None:
        if self.in_process:
            # spawn, not fork: the worker already runs threads (aiokafka, Faust, redis-py)
            ctx = multiprocessing.get_context("spawn")
            self._conn, child = ctx.Pipe()
            self._proc = ctx.Process(
                target=_serve, args=(self.settings, child, os.getpid()), name="segstream-core", daemon=True
            )
            self._proc.start()
            ok, err = self._receive()
            if not ok:
                raise err
        else:
            self._local = _processor(self.settings)

    def _receive(self) -> tuple[bool, Any]:
        try:
            return self._conn.recv()
        except (EOFError, OSError):
            code = self._proc.exitcode if self._proc is not None else None
            raise CoreDown(f"the core process ended (exit code {code})") from None

    def _run(self, method: Callable, args: tuple) -> Any:
        if self._conn is None and self._local is None:
            self._start()
        if self._local is not None:
            return method(self._local, *args)
        try:
            self._conn.send((method, args))
        except (BrokenPipeError, OSError):
            raise CoreDown(f"the core process ended (exit code {self._proc.exitcode})") from None
        ok, value = self._receive()
        if not ok:
            raise value
        return value

    def call(self, method: Callable, *args: Any) -> asyncio.Future:
        """``method(processor, *args)`` where the core runs, queued behind earlier calls."""
        return asyncio.get_running_loop().run_in_executor(self._caller, self._run, method, args)

    # The processor's methods, typed: each call is queued now and runs in order.
    def process(self, batch: list[PartitionBatch], now: float | None = None) -> asyncio.Future:  # -> BatchOutput
        from .processor import StreamProcessor

        return self.call(StreamProcessor.process, batch, now)

    def checkpoint(self, kafka_committed: dict[int, int]) -> asyncio.Future:  # -> None
        from .processor import StreamProcessor

        return self.call(StreamProcessor.checkpoint, kafka_committed)

    def reset(self) -> asyncio.Future:  # -> None
        from .processor import StreamProcessor

        return self.call(StreamProcessor.reset)

    def assign(self, logs: list[LogBounds]) -> asyncio.Future:  # -> list[Position]
        from .processor import StreamProcessor

        return self.call(StreamProcessor.assign, logs)

    def verify_store(self) -> asyncio.Future:  # -> None
        from .processor import StreamProcessor

        return self.call(StreamProcessor.verify_store)

    def revoke(self, partitions: list[int]) -> asyncio.Future:  # -> None
        from .processor import StreamProcessor

        return self.call(StreamProcessor.revoke, partitions)

    def model_stats(self) -> asyncio.Future:  # -> (model version, segment sizes, centroid version)
        from .processor import StreamProcessor

        return self.call(StreamProcessor.model_stats)

    def memory_bytes(self) -> int:
        """Resident memory of the core's process (of the worker's, when the core runs in a thread)."""
        pid = os.getpid() if self._proc is None else self._proc.pid
        try:
            with open(f"/proc/{pid}/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            return 0
