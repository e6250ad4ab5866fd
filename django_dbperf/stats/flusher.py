"""When and where the buffer is written: a background thread per process, off every request.

The thread starts with the first recorded request, wakes every ``FLUSH_INTERVAL_S`` and writes
the buffer through a database connection of its own (Django's connections are per thread), so
a flush never runs inside a request or a user's transaction, and closes that connection after
each flush. A process exit flushes once more. A failed flush (database down, lock timeout)
puts the batch back for the next try and is logged at most once per interval. After a fork
the child starts with an empty buffer and its own thread (the parent keeps its data).

Under Django's test runner (``setup_test_environment()``) no thread is started: tests call
``django_dbperf.stats.flush()`` when they want the tables written.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.db import connections

from django_dbperf.stats.buffer import Batch, Buffer

logger = logging.getLogger("django_dbperf")

PRUNE_EVERY_S = 3600.0


@dataclass
class FlushResult:
    written: bool  # False: nothing to write, or the write failed (the batch was kept)
    shapes: int = 0
    error: str | None = None


class Flusher:
    def __init__(self) -> None:
        self.buffer = Buffer()
        self._lock = threading.Lock()  # one flush at a time in this process
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._stopping = False
        self._last_error_log = -float("inf")
        self._last_prune = -float("inf")
        self.failures = 0

    # --- the background thread ----------------------------------------------------------

    def ensure_running(self) -> None:
        """Start the background thread once (cheap when it runs: one attribute test)."""
        if self._thread is not None or _under_test_runner():
            return
        with self._lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="django_dbperf flusher")
                thread.daemon = True
                self._thread = thread
                thread.start()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(_config()["FLUSH_INTERVAL_S"])
            self._wake.clear()
            self.flush_here()

    def stop(self) -> None:
        """End the background thread after one last flush (for tests and embedding)."""
        thread = self._thread
        if thread is None:
            return
        self._stopping = True
        self._wake.set()
        thread.join()
        self._thread, self._stopping = None, False

    # --- flushing ------------------------------------------------------------------------

    def flush(self) -> FlushResult:
        """Write the buffer now, from a thread of its own (so on a connection of its own)."""
        results: list[FlushResult] = []
        worker = threading.Thread(target=lambda: results.append(self.flush_here()))
        worker.start()
        worker.join()
        return results[0] if results else FlushResult(False, error="the flush thread failed")

    def flush_here(self) -> FlushResult:
        """Write the buffer on this thread's connection; never raises."""
        config = _config()
        using = config["DATABASE"]
        with self._lock:
            batch = self.buffer.take(config["MAX_FINGERPRINTS"])
            if not batch:
                return FlushResult(False)
            try:
                from django_dbperf.stats import writer

                writer.write(batch, using)
            except Exception as error:
                self.failures += 1
                self.buffer.give_back(batch, config["MAX_FINGERPRINTS"])
                self._log_failure(error, config["FLUSH_INTERVAL_S"])
                connections.close_all()
                return FlushResult(False, len(batch.shapes), f"{type(error).__name__}: {error}")
            try:  # written: what follows is extra, and its failure loses nothing
                self._prune_now_and_then(config, using)
                self._watch_pg_statements(batch, config, using)
            except Exception as error:
                self._log_failure(error, config["FLUSH_INTERVAL_S"])
            finally:
                connections.close_all()  # this thread's: a flush holds no idle connection
        return FlushResult(True, len(batch.shapes))

    def _watch_pg_statements(self, batch: Batch, config: Any, using: str) -> None:
        """Learn the new shapes' queryids; read pg_stat_statements (once per interval)."""
        from django_dbperf.stats import pg_statements

        pg_statements.learn_queryids(batch, using)
        for alias in sorted({alias for alias, _ in batch.shapes} | {using}):
            pg_statements.snapshot(alias, using, min_interval_s=config["FLUSH_INTERVAL_S"] / 2)

    def _prune_now_and_then(self, config: Any, using: str) -> None:
        now = time.monotonic()
        if now - self._last_prune >= PRUNE_EVERY_S:
            from django_dbperf.stats import pruning

            pruning.prune(config["RETENTION_DAYS"], using)
            self._last_prune = now

    def _log_failure(self, error: Exception, interval: float) -> None:
        now = time.monotonic()
        if now - self._last_error_log >= interval:
            self._last_error_log = now
            logger.warning(
                "django_dbperf could not write query statistics (%s: %s); what was not "
                "written is kept in memory for the next flush",
                type(error).__name__,
                error,
            )

    def after_fork(self) -> None:
        """In a forked child: the parent's buffer and thread are the parent's."""
        self.buffer = Buffer()
        self._lock = threading.Lock()
        self._thread = None
        self._wake = threading.Event()


def _config() -> Any:
    from django_dbperf.conf import get_config

    return get_config()["STATS"]


def _under_test_runner() -> bool:
    from django.test.utils import _TestState

    return hasattr(_TestState, "saved_data")


FLUSHER = Flusher()
os.register_at_fork(after_in_child=FLUSHER.after_fork)


@atexit.register
def _flush_at_exit() -> None:
    if FLUSHER.buffer and not _under_test_runner():
        FLUSHER.flush_here()


__all__ = ["FLUSHER", "Batch", "FlushResult", "Flusher"]
