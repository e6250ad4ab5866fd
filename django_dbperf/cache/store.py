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
    """What one read found: the payload on a hit, and the versions to store a miss under."""

    hit: bool
    payload: Any
    epoch: int | None
    versions: Mapping[str, int | None]


class CacheStore:
    """The django_dbperf side of one ``CACHES`` alias (a django-redis cache in production)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
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
        names = {self.key("table", t): t for t in tables} | {self.key("tag", t): t for t in tags}
        entry_key, epoch_key = self.key("entry", entry), self.key("meta", EPOCH)
        try:
            self._check_run_id()
            found = self.cache.get_many([epoch_key, entry_key, *names])
            versions = {key: found.get(key) for key in names}
            stored = found.get(entry_key)
            epoch = found.get(epoch_key)
            if not self._renew_epoch and epoch is not None and stored is not None:
                stored_epoch, stored_versions, blob = stored
                if (
                    stored_epoch == epoch
                    and None not in versions.values()
                    and (stored_versions == versions)
                ):
                    payload = _loads(blob)
                    if payload is not _UNREADABLE:
                        return Lookup(True, payload, epoch, versions)
            epoch = self._current_epoch(epoch)
            missing = {key: new_token() for key, value in versions.items() if value is None}
            for key, token in missing.items():
                # add(): if another process created it first, use theirs.
                versions[key] = token if self.cache.add(key, token, timeout=None) else None
            if None in versions.values():
                versions.update(self.cache.get_many([k for k, v in versions.items() if v is None]))
            return Lookup(False, None, epoch, versions)
        except Exception as error:
            self.failed(error, "a cache read")
            return None

    def store(self, entry: str, lookup: Lookup, payload: Any, ttl: int) -> None:
        if None in lookup.versions.values() or lookup.epoch is None:
            return
        try:
            blob = _dumps(payload)
        except Exception as error:
            # Not a cache failure: this result cannot be cached (e.g. an ORM patched by
            # another package). It is served uncached; the cache stays in use.
            logger.debug("django_dbperf cache: result not stored, it cannot be pickled: %s", error)
            return
        try:
            value = (lookup.epoch, dict(lookup.versions), blob)
            self.cache.set(self.key("entry", entry), value, timeout=ttl)
        except Exception as error:
            self.failed(error, "a cache write")

    # --- stampede protection -------------------------------------------------------------

    def acquire(self, entry: str, seconds: float) -> bool:
        """Take the recompute lock of ``entry`` (expires by itself); False if another holds it."""
        try:
            return bool(self.cache.add(self.key("lock", entry), 1, timeout=seconds))
        except Exception as error:
            self.failed(error, "taking a recompute lock")
            return True  # compute anyway: a lost lock only costs a duplicate query

    def release(self, entry: str) -> None:
        try:
            self.cache.delete(self.key("lock", entry))
        except Exception as error:
            self.failed(error, "releasing a recompute lock")

    # --- invalidation ------------------------------------------------------------------

    def bump(self, tables: Iterable[str] = (), tags: Iterable[str] = ()) -> None:
        """New versions for ``tables`` and ``tags``: O(1) per name, no key scans."""
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
        """One ``MSET`` on django-redis (a write's whole cost here); ``set_many`` elsewhere."""
        client = getattr(self.cache, "client", None)
        get_client = getattr(client, "get_client", None)
        if get_client is None:
            self.cache.set_many(values, timeout=None)
            return
        make_key, encode = client.make_key, client.encode  # type: ignore[union-attr]
        get_client(write=True).mset({make_key(key): encode(value) for key, value in values.items()})

    def invalidate_all(self) -> None:
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
