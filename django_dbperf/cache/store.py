"""Versions, entries and counters in the cache server, and what happens when it fails.

Every table (and tag) has a version: a random token, created on first use and replaced by every
write. An entry stores the versions it was computed under and is served only while they are
all current. One ``get_many`` reads the entry, the versions and the epoch together.

Never stale, even across outages:
- a missing version (flushed, evicted, restarted server) never matches: entries store tokens,
  and a new token is random;
- the epoch, checked on every read, is renewed when the server's run id changes (a restart,
  or an older snapshot restored) and after this process failed to bump a version, so entries
  from before are all misses;
- after an error the cache is skipped for ``RETRY_AFTER`` seconds: reads go to the database,
  writes still succeed (their bumps are replaced by the epoch renewal).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.core.cache import BaseCache, caches
from django.db import DJANGO_VERSION_PICKLE_KEY
from django.db.models import QuerySet

from django_dbperf.conf import get_config

logger = logging.getLogger("django_dbperf")

EPOCH = "epoch"
RUN_ID_CHECK_INTERVAL = 1.0  # seconds between checks that the server was not restarted
STATS_FLUSH_INTERVAL = 1.0


@dataclass(frozen=True)
class Lookup:
    """What one read found: the payload on a hit; on a miss, the header to store it under."""

    hit: bool
    payload: Any
    header: bytes | None  # the epoch and the versions read, which an entry starts with


def _header(epoch: Any, versions: list[Any]) -> bytes | None:
    """``b"epoch|version|...\\n"`` as stored; None while a value is missing.

    Entries start with it, so validating one is a bytes comparison: nothing is decoded.
    """
    parts = [epoch, *versions]
    if None in parts:
        return None
    return b"|".join(v if isinstance(v, bytes) else str(v).encode() for v in parts) + b"\n"


MAX_UNREAD_REPLIES = 64  # a thread that only writes reads its replies in batches of this size


class _BumpWriter(threading.local):
    """Each thread's own connection for bumps: ``MSET``s are sent, their replies read later.

    Its own connection, not one of the pool's, so an unread reply never reaches another
    command; a thread that ends closes it (the connection's ``__del__``).
    """

    def __init__(self) -> None:
        self.connection: Any = None
        self.pool: Any = None
        self.pid = 0
        self.pending = 0

    def send(self, pool: Any, arguments: list[Any]) -> None:
        if self.pending >= MAX_UNREAD_REPLIES:
            self.confirm()
        if self.connection is None or self.pool is not pool or self.pid != os.getpid():
            self.confirm()
            self.drop()
            self.connection = pool.connection_class(**pool.connection_kwargs)
            self.pool, self.pid = pool, os.getpid()
        try:
            # Packed and sent without the health check's PING: this connection is only used
            # for MSETs, whose replies confirm() reads.
            command = self.connection.pack_command("MSET", *arguments)
            self.connection.send_packed_command(command, check_health=False)
        except BaseException:
            self.drop()
            raise
        self.pending += 1

    def confirm(self) -> None:
        """Read every outstanding reply; raises if one is an error or does not come."""
        if not self.pending:
            return
        if self.pid != os.getpid():
            self.drop()  # a forked child: the replies are its parent's to read
            return
        try:
            while self.pending:
                self.pending -= 1
                self.connection.read_response()  # raises the server's error reply, if any
        except BaseException:
            self.drop()
            raise

    def drop(self) -> None:
        connection, self.connection, self.pending = self.connection, None, 0
        if connection is not None and self.pid == os.getpid():
            connection.disconnect()


class CacheStore:
    """The django_dbperf side of one ``CACHES`` alias (a django-redis cache in production)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._writer = _BumpWriter()
        self.reset()

    def reset(self) -> None:
        """Forget failures and the server seen so far (for tests, and a changed ALIAS)."""
        self._down_until = 0.0
        self._last_error_log = 0.0
        self.errors = 0
        self._renew_epoch = False
        self._run_id: str | None = None
        self._run_id_checked = 0.0
        self._counts: Counter[tuple[str, str]] = Counter()
        self._counts_flushed = time.monotonic()
        self._writer.drop()

    # --- configuration -----------------------------------------------------------------

    @property
    def config(self) -> Mapping[str, Any]:
        cache_config: Mapping[str, Any] = get_config()["CACHE"]
        return cache_config

    @property
    def cache(self) -> BaseCache:
        return caches[self.config["ALIAS"]]

    def key(self, kind: str, name: str) -> str:
        # One hash tag for every key, so a Redis Cluster keeps them in one slot (one MGET).
        return f"{{{self.config['KEY_PREFIX']}}}:{kind}:{name}"

    @property
    def available(self) -> bool:
        return bool(get_config()["ENABLED"] and self.config["ENABLED"]) and (
            time.monotonic() >= self._down_until
        )

    # --- failure handling --------------------------------------------------------------

    def failed(self, error: BaseException, doing: str) -> None:
        """Count, maybe log, and stop using the cache for RETRY_AFTER seconds."""
        now = time.monotonic()
        with self._lock:
            self.errors += 1
            self._down_until = now + float(self.config["RETRY_AFTER"])
            self._run_id_checked = 0.0  # a restart shows first as an error: check at once
            log = now - self._last_error_log >= float(self.config["ERROR_LOG_INTERVAL"])
            if log:
                self._last_error_log = now
        if log:
            logger.warning(
                "django_dbperf cache: %s failed (%s: %s); using the database for %.0fs. "
                "%d cache errors so far.",
                doing, type(error).__name__, error, self.config["RETRY_AFTER"], self.errors,
            )  # fmt: skip

    # --- epoch -------------------------------------------------------------------------

    def _server_run_id(self) -> str | None:
        client = getattr(self.cache, "client", None)
        get_client = getattr(client, "get_client", None)
        if get_client is None:
            return None  # not django-redis (e.g. local memory): nothing survives a restart
        info = get_client(write=False).info("server")
        return str(info.get("run_id")) if info else None

    def _check_run_id(self) -> None:
        now = time.monotonic()
        if now - self._run_id_checked < RUN_ID_CHECK_INTERVAL:
            return
        run_id = self._server_run_id()
        self._run_id_checked = now
        if run_id != self._run_id:
            if self._run_id is not None:
                self._renew_epoch = True  # restarted (maybe from an older snapshot)
            self._run_id = run_id

    def _current_epoch(self, seen: int | None) -> int:
        """The epoch to use: renewed when needed, created when missing."""
        key = self.key("meta", EPOCH)
        if self._renew_epoch:
            epoch = new_token()
            self.cache.set(key, epoch, timeout=None)
            self._renew_epoch = False
            return epoch
        if seen is not None:
            return seen
        epoch = new_token()
        if self.cache.add(key, epoch, timeout=None):
            return epoch
        found = self.cache.get(key)
        return int(found) if found is not None else epoch

    # --- reads -------------------------------------------------------------------------

    def lookup(self, entry: str, tables: Iterable[str], tags: Iterable[str]) -> Lookup | None:
        """The entry if valid, else the versions to store a fresh result under. None: skip."""
        if not self.confirm_bumps():
            return None
        # Sorted: the entry's header lists the versions in this order in every process.
        names = sorted([self.key("table", t) for t in tables] + [self.key("tag", t) for t in tags])
        entry_key, epoch_key = self.key("entry", entry), self.key("meta", EPOCH)
        try:
            self._check_run_id()
            epoch, stored, *versions = self._read([epoch_key, entry_key, *names])
            if not self._renew_epoch and stored is not None and epoch is not None:
                header = _header(epoch, versions)
                if header is not None and stored[: len(header)] == header:
                    payload = _loads(memoryview(stored)[len(header) :])
                    if payload is not _UNREADABLE:
                        return Lookup(True, payload, header)
            epoch = self._current_epoch(epoch)
            for index, value in enumerate(versions):
                if value is None:
                    # add(): if another process created it first, use theirs.
                    token = new_token()
                    created = self.cache.add(names[index], token, timeout=None)
                    versions[index] = token if created else self.cache.get(names[index])
            return Lookup(False, None, _header(epoch, versions))
        except Exception as error:
            self.failed(error, "a cache read")
            return None

    def _read(self, keys: list[str]) -> list[Any]:
        """The stored values as they are (bytes on django-redis), read from the primary: a
        replica that lags would return versions a write has already replaced."""
        client = getattr(self.cache, "client", None)
        get_client = getattr(client, "get_client", None)
        if get_client is None:
            found = self.cache.get_many(keys)
            return [found.get(key) for key in keys]
        make_key = client.make_key  # type: ignore[union-attr]
        values: list[Any] = get_client(write=True).mget([make_key(key) for key in keys])
        return values

    def store(self, entry: str, lookup: Lookup, payload: Any, ttl: int) -> None:
        if not self.confirm_bumps() or lookup.header is None:
            return
        try:
            blob = _dumps(payload)
        except Exception as error:
            # Not a cache failure: this result cannot be cached (e.g. an ORM patched by
            # another package). It is served uncached; the cache stays in use.
            logger.debug("django_dbperf cache: result not stored, it cannot be pickled: %s", error)
            return
        key, value = self.key("entry", entry), lookup.header + blob
        try:
            client = getattr(self.cache, "client", None)
            if getattr(client, "get_client", None) is None:
                self.cache.set(key, value, timeout=ttl)
            else:  # raw bytes: the header is compared as stored, nothing is unpickled twice
                raw = client.get_client(write=True)  # type: ignore[union-attr]
                raw.set(client.make_key(key), value, ex=ttl)  # type: ignore[union-attr]
        except Exception as error:
            self.failed(error, "a cache write")

    # --- stampede protection -------------------------------------------------------------

    def acquire(self, entry: str, seconds: float) -> bool:
        """Take the recompute lock of ``entry`` (expires by itself); False if another holds it."""
        self.confirm_bumps()
        try:
            return bool(self.cache.add(self.key("lock", entry), 1, timeout=seconds))
        except Exception as error:
            self.failed(error, "taking a recompute lock")
            return True  # compute anyway: a lost lock only costs a duplicate query

    def release(self, entry: str) -> None:
        self.confirm_bumps()
        try:
            self.cache.delete(self.key("lock", entry))
        except Exception as error:
            self.failed(error, "releasing a recompute lock")

    # --- invalidation ------------------------------------------------------------------

    def bump(self, tables: Iterable[str] = (), tags: Iterable[str] = ()) -> None:
        """New versions for ``tables`` and ``tags``: O(1) per name, no key scans.

        On django-redis the ``MSET`` is sent at once and its reply read by this thread's next
        cache operation (see ``confirm_bumps()``), so a write does not wait a round trip.
        """
        new = {self.key("table", t): new_token() for t in tables}
        new |= {self.key("tag", t): new_token() for t in tags}
        if not new:
            return
        if not self.available:
            # Cannot bump now: every entry must be distrusted when the cache is back.
            self._renew_epoch = True
            return
        try:
            self._set_forever(new)
        except Exception as error:
            self._renew_epoch = True
            self.failed(error, "invalidation")

    def _set_forever(self, values: dict[str, int]) -> None:
        """One ``MSET``, sent without waiting on django-redis; ``set_many`` elsewhere."""
        client = getattr(self.cache, "client", None)
        get_client = getattr(client, "get_client", None)
        if get_client is None:
            self.cache.set_many(values, timeout=None)
            return
        make_key, encode = client.make_key, client.encode  # type: ignore[union-attr]
        arguments: list[Any] = []
        for key, value in values.items():
            arguments += (make_key(key), encode(value))
        self._writer.send(get_client(write=True).connection_pool, arguments)

    def confirm_bumps(self) -> bool:
        """Wait for the replies of this thread's bumps.

        Every read calls this first, so a thread always reads its own writes: Redis has
        applied the ``MSET`` before the ``GET`` that follows is sent. Other processes see a
        bump as soon as Redis applies it, whether or not its reply was read.
        """
        if self._writer.pending:
            try:
                self._writer.confirm()
            except Exception as error:
                self._renew_epoch = True
                self.failed(error, "invalidation")
                return False
        return True

    def invalidate_all(self) -> None:
        self.confirm_bumps()
        self._renew_epoch = True
        if self.available:
            try:
                self._current_epoch(None)
            except Exception as error:
                self.failed(error, "invalidate_all()")

    # --- statistics --------------------------------------------------------------------

    def count(self, subject: str, event: str, amount: int = 1) -> None:
        """Add to a hit/miss/invalidation counter; flushed to the server about once a second."""
        with self._lock:
            self._counts[(subject, event)] += amount
            due = time.monotonic() - self._counts_flushed >= STATS_FLUSH_INTERVAL
        if due:
            self.flush_counts()

    def flush_counts(self) -> None:
        self.confirm_bumps()
        with self._lock:
            counts, self._counts = self._counts, Counter()
            self._counts_flushed = time.monotonic()
        if not counts or not self.available:
            return
        try:
            for (subject, event), amount in counts.items():
                key = self.key("stats", f"{subject}:{event}")
                try:
                    self.cache.incr(key, amount)
                except ValueError:  # not there yet
                    if not self.cache.add(key, amount, timeout=None):
                        self.cache.incr(key, amount)
            self.cache.set(self.key("meta", "stats-subjects"), self._subjects(counts), None)
        except Exception as error:
            self.failed(error, "saving cache statistics")

    def _subjects(self, counts: Counter[tuple[str, str]]) -> list[str]:
        known = self.cache.get(self.key("meta", "stats-subjects")) or []
        return sorted(set(known) | {subject for subject, _ in counts})

    def stats(self) -> dict[str, dict[str, int]]:
        """Counters of every instance: ``{"app.Model": {"hit": 3, "miss": 1, ...}}``."""
        self.confirm_bumps()
        self.flush_counts()
        subjects = self.cache.get(self.key("meta", "stats-subjects")) or []
        events = ("hit", "miss", "invalidation", "bypass")
        keys = {self.key("stats", f"{s}:{e}"): (s, e) for s in subjects for e in events}
        found = self.cache.get_many(list(keys))
        result: dict[str, dict[str, int]] = {s: dict.fromkeys(events, 0) for s in subjects}
        for key, value in found.items():
            subject, event = keys[key]
            result[subject][event] = int(value)
        return result


_UNREADABLE = object()


def _rebuild_queryset(cls: type[QuerySet[Any]], state: dict[str, Any]) -> QuerySet[Any]:
    queryset = cls.__new__(cls)
    queryset.__setstate__(state)  # type: ignore[attr-defined]
    return queryset


_queryset_keys: dict[type[Any], frozenset[str]] = {}


def _own_state(queryset: QuerySet[Any]) -> dict[str, Any]:
    """The state Django's own QuerySet keeps, without attributes other tools set on it."""
    cls = type(queryset)
    keys = _queryset_keys.get(cls)
    if keys is None:
        keys = _queryset_keys[cls] = frozenset(vars(QuerySet(model=queryset.model))) | {
            DJANGO_VERSION_PICKLE_KEY
        }
    return {key: value for key, value in queryset.__getstate__().items() if key in keys}


class _ResultPickler(pickle.Pickler):
    """Pickles the querysets that prefetch caches hold with Django's own state only: tools
    such as nplusone set functions and context on them, which pickle refuses."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, QuerySet):
            return _rebuild_queryset, (type(obj), _own_state(obj))
        return NotImplemented


def _dumps(payload: Any) -> bytes:
    buffer = io.BytesIO()
    _ResultPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(payload)
    return buffer.getvalue()


def _loads(blob: object) -> Any:
    """The stored result, or ``_UNREADABLE`` for garbage or a payload of an older code version."""
    try:
        return pickle.loads(blob)  # type: ignore[arg-type]
    except Exception:
        return _UNREADABLE


def new_token() -> int:
    """A random version: never equal to one that existed before (so a reset never matches).

    An integer, which django-redis stores and reads back without pickling.
    """
    return secrets.randbits(62) + 1


def entry_name(*parts: object) -> str:
    return hashlib.sha1("\x1f".join(map(str, parts)).encode(), usedforsecurity=False).hexdigest()


STORE = CacheStore()
