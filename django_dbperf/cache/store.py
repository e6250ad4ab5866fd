"""Versions, entries and counters in the cache server, and what happens when it fails.

Every table (and tag) has a version: a random token, created on first use and replaced by every
write; entries narrowed to rows depend on versions per value and per row instead
(``narrow.py``). An entry starts with the versions it was computed under and is served only
while they are all current. One ``MGET`` (one Lua script for an entry that lists its rows)
reads the entry, the versions and the epoch together.

Never stale, even across outages:
- a missing version (flushed, evicted, restarted server) never matches: entries store tokens,
  and a new token is random;
- the epoch, checked on every read, is renewed when the server's run id changes (a restart,
  or an older snapshot restored) and after this process failed to bump a version, so entries
  from before are all misses; a pending renewal is retried by every cache operation of this
  process, writes included (a write-only process, such as a task worker, renews it too);
- after an error, reads skip the cache for ``RETRY_AFTER`` seconds and go to the database;
  invalidations never skip it: each is tried (with the client's socket timeout), and one
  that fails leaves the renewal pending.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.core.cache import BaseCache, caches

from django_dbperf.cache import payload, signing
from django_dbperf.cache.narrow import Narrowing, RowWrite, canonical
from django_dbperf.cache.observing import OBSERVERS, CacheEvent
from django_dbperf.conf import get_config

logger = logging.getLogger("django_dbperf")

EPOCH = "epoch"
SUBJECTS = "stats-subject-set"  # a Redis set on django-redis (a list elsewhere)
BYPASS_REASONS = "bypass-reasons"  # reason -> subject: a Redis hash (a dict elsewhere)
MAX_SHARED_REASONS = 200
REASON_LIMIT = 500  # characters of one reason kept
SEQ = "seq"  # the write sequence: row bumps set it, and their versions, to a growing number
RUN_ID_CHECK_INTERVAL = 1.0  # seconds between checks that the server was not restarted
STATS_FLUSH_INTERVAL = 1.0


@dataclass(frozen=True)
class Lookup:
    """What one read found: the payload on a hit; on a miss, the header to store it under."""

    hit: bool
    payload: Any
    header: bytes | None  # the epoch and the versions read, which an entry starts with
    seq: bytes | None = None  # the write sequence before the query (entries narrowed by rows)
    rows_table: str | None = None  # set when the entry depends on its rows' versions


def _header(epoch: Any, versions: list[Any]) -> bytes | None:
    """``b"epoch|version|...\\n"`` as stored; None while a value is missing.

    Entries start with it, so validating one is a bytes comparison: nothing is decoded.
    """
    parts = [epoch, *versions]
    if None in parts:
        return None
    return b"|".join(v if isinstance(v, bytes) else str(v).encode() for v in parts) + b"\n"


class _BumpWriter(threading.local):
    """Each thread's own connection for bumps: an ``MSET`` or a script, sent and its reply read.

    The reply is awaited before the write returns: once ``save()`` has returned, every reader
    in every process sees the bump (a reply read later let a reader that started after the
    save, in another thread, get the old entry: ``tests/test_cache_narrow.py`` caught it).
    A connection of its own, without the pool's checkout and health check, since a write
    waits for this round trip; a thread that ends closes it (the connection's ``__del__``).
    """

    def __init__(self) -> None:
        self.connection: Any = None
        self.pool: Any = None
        self.pid = 0

    def send(self, pool: Any, arguments: list[Any]) -> None:
        """Run ``arguments`` (a whole command, e.g. ``["MSET", key, value]``); raises the
        server's error reply, or a timeout."""
        if self.connection is None or self.pool is not pool or self.pid != os.getpid():
            self.drop()
            self.connection = pool.connection_class(**pool.connection_kwargs)
            self.pool, self.pid = pool, os.getpid()
            try:
                # Scripts are sent by their SHA-1 (EVALSHA): loaded once per connection, and a
                # restarted server drops its connections along with its scripts.
                self.connection.send_command("SCRIPT", "LOAD", _BUMP_ROW)
                self.connection.read_response()
            except BaseException:
                self.drop()
                raise
        try:
            command = self.connection.pack_command(*arguments)
            self.connection.send_packed_command(command, check_health=False)
            self.connection.read_response()
        except BaseException:
            self.drop()
            raise

    def drop(self) -> None:
        connection, self.connection = self.connection, None
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
        self._last_rejected_log = float("-inf")
        self.rejections = 0
        self._renew_epoch = False
        self._run_id: str | None = None
        self._run_id_checked = 0.0
        self._counts: Counter[tuple[str, str]] = Counter()
        self._counts_flushed = time.monotonic()
        self._bypass_reasons: set[str] = set()
        self._writer.drop()

    # --- configuration -----------------------------------------------------------------

    @property
    def config(self) -> Mapping[str, Any]:
        cache_config: Mapping[str, Any] = get_config()["CACHE"]
        return cache_config

    @property
    def cache(self) -> BaseCache:
        return caches[self.config["ALIAS"]]

    def prefix(self) -> str:
        # One hash tag for every key, so a Redis Cluster keeps them in one slot (one MGET).
        return f"{{{self.config['KEY_PREFIX']}}}:"

    def key(self, kind: str, name: str) -> str:
        return f"{self.prefix()}{kind}:{name}"

    def redis(self) -> tuple[Any, Any] | None:
        """django-redis' client and the primary's redis-py client; None for other backends
        (local memory in tests), which go through the cache API instead."""
        client = getattr(self.cache, "client", None)
        if getattr(client, "get_client", None) is None:
            return None
        return client, client.get_client(write=True)  # type: ignore[union-attr]

    @property
    def switched_on(self) -> bool:
        return bool(get_config()["ENABLED"] and self.config["ENABLED"])

    @property
    def available(self) -> bool:
        """Whether reads use the cache: switched on, and no error in the last RETRY_AFTER."""
        return self.switched_on and time.monotonic() >= self._down_until

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

    def rejected(self, key: str, reason: str) -> None:
        """Count an entry that failed verification (a miss); log at most once per
        ERROR_LOG_INTERVAL. Not a cache failure: the cache stays in use."""
        self.count("entries", "rejected")
        now = time.monotonic()
        with self._lock:
            self.rejections += 1
            log = now - self._last_rejected_log >= float(self.config["ERROR_LOG_INTERVAL"])
            if log:
                self._last_rejected_log = now
        if log:
            logger.warning(
                "django_dbperf cache: entry %s failed verification (%s); it was not decoded and "
                "is recomputed. Redis is a trust boundary: an entry is read only if signed with "
                "SECRET_KEY or SECRET_KEY_FALLBACKS for its own key. Expected for a while after "
                "upgrading to signed entries or dropping a secret from SECRET_KEY_FALLBACKS; "
                "otherwise something else writes to this cache. %d rejected so far.",
                key, reason, self.rejections,
            )  # fmt: skip

    # --- epoch -------------------------------------------------------------------------

    def _server_run_id(self) -> str | None:
        redis = self.redis()
        if redis is None:
            return None  # not django-redis (e.g. local memory): nothing survives a restart
        info = redis[1].info("server")
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
        renewed = self.renew_pending_epoch()
        if renewed is not None:
            return renewed
        if seen is not None:
            return seen
        epoch = new_token()
        if self.cache.add(key, epoch, timeout=None):
            return epoch
        found = self._get_int(key)
        return found if found is not None else epoch

    # --- reads -------------------------------------------------------------------------

    def lookup(
        self,
        entry: str,
        tables: Iterable[str],
        tags: Iterable[str],
        narrow: Narrowing | None = None,
    ) -> Lookup | None:
        """The entry if valid, else the versions to store a fresh result under. None: skip."""
        if narrow is not None and not narrow.by_pk and self.redis() is None:
            narrow = None  # rows' versions need Lua on the server: per table elsewhere
        names, expiring = self._version_names(tables, tags, narrow)
        entry_key, epoch_key = self.key("entry", entry), self.key("meta", EPOCH)
        by_rows = narrow is not None and not narrow.by_pk
        try:
            self._check_run_id()
            if by_rows:
                assert narrow is not None
                seq, stored, epoch, *rest = self._read_with_rows(
                    [self.key("meta", SEQ), entry_key, epoch_key, *names], narrow.table
                )
                versions, row_versions = rest[: len(names)], rest[len(names) :]
            else:
                epoch, stored, *versions = self._read([epoch_key, entry_key, *names])
                seq, row_versions = None, []
            if not self._renew_epoch and stored is not None and epoch is not None:
                start = stored.find(b"\n") + 1 if by_rows else 0
                header = _header(epoch, versions + row_versions)
                if header is not None and stored[start : start + len(header)] == header:
                    payload = _loads(stored[start + len(header) :], entry_key)
                    if isinstance(payload, _Rejected):
                        self.rejected(entry_key, payload.reason)  # then stored over, as a miss
                    elif payload is not _UNREADABLE:
                        return Lookup(True, payload, header)
            epoch = self._current_epoch(epoch)
            for index, value in enumerate(versions):
                if value is None:
                    # add(): if another process created it first, use theirs.
                    token, name = new_token(), names[index]
                    timeout = self._row_ttl() if name in expiring else None
                    created = self.cache.add(name, token, timeout=timeout)
                    versions[index] = token if created else self._get_int(name)
            header = _header(epoch, versions)
            if not by_rows:
                return Lookup(False, None, header)
            assert narrow is not None
            return Lookup(False, None, header, seq or b"0", narrow.table)
        except Exception as error:
            self.failed(error, "a cache read")
            return None

    def _version_names(
        self, tables: Iterable[str], tags: Iterable[str], narrow: Narrowing | None
    ) -> tuple[list[str], set[str]]:
        """The version keys an entry depends on (sorted: its header lists them in this order
        in every process), and those of them that expire (per-row versions)."""
        names = [self.key("tag", tag) for tag in tags]
        expiring: set[str] = set()
        narrowed: set[str] = set()
        if narrow is not None:
            table, values = narrow.table, narrow.values
            narrowed = {table, *narrow.joined}
            if narrow.by_pk:
                expiring |= {self.key("pk", f"{table}:{value}") for value in values}
                names.append(self.key("ins", table))
            else:
                column = narrow.column
                expiring |= {self.key("part", f"{table}:{column}:{value}") for value in values}
            for joined in narrow.joined:
                # Joined on the narrowed foreign key: exactly the rows of those primary keys.
                expiring |= {self.key("pk", f"{joined}:{value}") for value in values}
                names.append(self.key("ins", joined))
            names += [self.key("bulk", name) for name in narrowed]
        names += [self.key("table", table) for table in tables if table not in narrowed]
        names += expiring
        return sorted(names), expiring

    def _row_ttl(self) -> int:
        """How long per-row versions live: the longest TTL an entry gets from the settings.

        An entry that outlives a version it depends on is only a miss (a missing version never
        matches), never stale.
        """
        policy: Mapping[str, int] = self.config["TTL"]
        return max([300, *policy.values()])

    def _read(self, keys: list[str]) -> list[Any]:
        """The stored values as they are (bytes on django-redis), read from the primary: a
        replica that lags would return versions a write has already replaced."""
        redis = self.redis()
        if redis is None:
            found = self.cache.get_many(keys)
            return [found.get(key) for key in keys]
        client, raw = redis
        values: list[Any] = raw.mget([client.make_key(key) for key in keys])
        return values

    def _read_with_rows(self, keys: list[str], table: str) -> list[Any]:
        """``_read(keys)``, then the current versions of the rows the entry (``keys[1]``)
        lists, in one round trip (a Lua script)."""
        client, raw = self.redis()  # type: ignore[misc]  # only called on django-redis
        script = raw.register_script(_READ_WITH_ROWS)
        values: list[Any] = script(
            keys=[client.make_key(key) for key in keys],
            args=[self._made_prefix(client) + f"row:{table}:"],
        )
        return values

    def store(
        self,
        entry: str,
        lookup: Lookup,
        payload: Any,
        ttl: int,
        rows: Iterable[Any] = (),
        subject: str = "entries",
    ) -> None:
        """Store a miss's result; ``rows``: the primary keys it holds, for a lookup narrowed
        by a foreign key (it then depends on their versions too)."""
        if lookup.header is None:
            return
        key = self.key("entry", entry)
        try:
            blob = _dumps(payload, key)
        except Exception as error:
            # Not a cache failure: this result cannot be cached (e.g. it holds an object of a
            # class the entry format does not rebuild). Served uncached; the cache stays in use.
            self.bypass(subject, f"its result cannot be stored ({type(error).__name__}: {error})")
            return
        try:
            self.renew_pending_epoch()
            redis = self.redis()
            if lookup.rows_table is not None:
                self._store_with_rows(key, lookup, blob, ttl, rows)
            elif redis is None:
                self.cache.set(key, lookup.header + blob, timeout=ttl)
            else:  # raw bytes: the header is compared as stored, nothing is unpickled twice
                client, raw = redis
                raw.set(client.make_key(key), lookup.header + blob, ex=ttl)
        except Exception as error:
            self.failed(error, "a cache write")

    def _store_with_rows(
        self, key: str, lookup: Lookup, blob: bytes, ttl: int, rows: Iterable[Any]
    ) -> None:
        assert lookup.header is not None and lookup.rows_table is not None
        pks = [canonical(pk) for pk in rows]
        if None in pks:
            return  # a primary key that cannot be keyed: not stored
        client, raw = self.redis()  # type: ignore[misc]  # only called on django-redis
        script = raw.register_script(_STORE_WITH_ROWS)
        script(
            keys=[client.make_key(key)],
            args=[
                lookup.seq, ttl, self._made_prefix(client) + f"row:{lookup.rows_table}:",
                self._row_ttl(),
                ",".join(dict.fromkeys(pks)),  # type: ignore[arg-type]
                lookup.header[:-1], blob,
            ],
        )  # fmt: skip

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
        tables = list(tables)
        # bulk:<table> too: entries narrowed to some rows of a table (narrow.py) depend on it.
        new = {self.key(kind, t): new_token() for t in tables for kind in ("table", "bulk")}
        new |= {self.key("tag", t): new_token() for t in tags}
        if not new or not self.switched_on:
            return
        # Never skipped while reads are: other processes may be serving what this write
        # changed. If it fails, every entry is distrusted once the server is reachable again.
        try:
            self.renew_pending_epoch()
            self._set_forever(new)
        except Exception as error:
            self._renew_epoch = True
            self.failed(error, "invalidation")

    def bump_row(self, write: RowWrite) -> None:
        """Invalidate what one saved row changes: its table's version, its primary key's, its
        foreign keys' values' and its own, or its table's inserts (``narrow.py``).

        One script on django-redis; elsewhere, the same versions through ``set_many()``
        (without the write sequence, which only Lua needs).
        """
        if not self.switched_on:
            return
        table, pk = write.table, write.pk
        forever = [f"table:{table}"]
        if write.insert:
            forever.append(f"ins:{table}")
        expiring = [f"part:{table}:{column}:{value}" for column, value in write.parts]
        if pk is not None:
            expiring += (f"pk:{table}:{pk}", f"row:{table}:{pk}")
        try:
            self.renew_pending_epoch()
            redis = self.redis()
            if redis is None:
                prefix = self.prefix()
                self.cache.set_many({prefix + key: new_token() for key in forever}, timeout=None)
                tokens = {prefix + key: new_token() for key in expiring}
                self.cache.set_many(tokens, timeout=self._row_ttl())
                return
            client, raw = redis
            made = self._made_prefix(client)
            keys = [made + key for key in ("meta:seq", *forever, *expiring)]
            arguments = ["EVALSHA", _BUMP_ROW_SHA, len(keys), *keys, len(forever), self._row_ttl()]
            self._send(raw, arguments)
        except Exception as error:
            self._renew_epoch = True
            self.failed(error, "invalidation")

    def _made_prefix(self, client: Any) -> str:
        """django-redis' full key for ``self.key(kind, name)`` is this prefix + ``kind:name``
        (remembered per client: a write makes six keys)."""
        made: str | None = getattr(client, "_dbperf_made_prefix", None)
        if made is None:
            base = self.prefix()
            made = str(client.make_key(base))
            if str(client.make_key(base + "k:n")) != made + "k:n":
                raise ValueError("a KEY_FUNCTION that does not append the key is not supported")
            client._dbperf_made_prefix = made
        return made

    def _set_forever(self, values: dict[str, int]) -> None:
        """One ``MSET`` on django-redis (a write's whole cost here); ``set_many`` elsewhere."""
        redis = self.redis()
        if redis is None:
            self.cache.set_many(values, timeout=None)
            return
        client, raw = redis
        arguments: list[Any] = ["MSET"]
        for key, value in values.items():
            arguments += (client.make_key(key), client.encode(value))
        self._send(raw, arguments)

    def _send(self, raw: Any, arguments: list[Any]) -> None:
        """Run a bump on the thread's own connection; through the client itself when it has no
        single connection pool (a Redis Cluster client routes by the keys' shared hash tag)."""
        pool = getattr(raw, "connection_pool", None)
        if pool is not None:
            self._writer.send(pool, arguments)
        elif arguments[0] == "EVALSHA":
            raw.eval(_BUMP_ROW, *arguments[2:])
        else:
            raw.execute_command(*arguments)

    def invalidate_all(self) -> None:
        self._renew_epoch = True
        if self.switched_on:
            try:
                self.renew_pending_epoch()
            except Exception as error:
                self.failed(error, "invalidate_all()")

    def renew_pending_epoch(self) -> int | None:
        """Renew the epoch if a failed invalidation or a restart left that pending: the new
        epoch, or None if nothing was pending (raises if it cannot)."""
        if not self._renew_epoch:
            return None
        epoch = new_token()
        self.cache.set(self.key("meta", EPOCH), epoch, timeout=None)
        self._renew_epoch = False
        return epoch

    # --- statistics --------------------------------------------------------------------

    def count(self, subject: str, event: str, amount: int = 1, reason: str | None = None) -> None:
        """Add to a hit/miss/invalidation counter; flushed to the server about once a second.

        Also told to this context's observers, if any (``observing.py``)."""
        for events in OBSERVERS.get():
            events.extend([CacheEvent(subject, event, reason)] * amount)
        with self._lock:
            self._counts[(subject, event)] += amount
            due = time.monotonic() - self._counts_flushed >= STATS_FLUSH_INTERVAL
        if due:
            self.flush_counts()

    def bypass(self, subject: str, reason: str) -> None:
        """Count a read of ``subject`` served uncached for ``reason``; log each reason once."""
        self.count(subject, "bypass", reason=reason)
        with self._lock:
            new = reason not in self._bypass_reasons
            if new and len(self._bypass_reasons) < 1000:
                self._bypass_reasons.add(reason)
        if new:
            logger.warning("django_dbperf cache: a %s read is served uncached: %s", subject, reason)
            self._share_reason(subject, reason[:REASON_LIMIT])

    def _share_reason(self, subject: str, reason: str) -> None:
        """Keep a reason where every process (and the admin) can read it; at most a few."""
        if not self.switched_on:
            return
        key = self.key("meta", BYPASS_REASONS)
        try:
            redis = self.redis()
            if redis is not None:
                client, raw = redis
                name = client.make_key(key)
                if raw.hlen(name) < MAX_SHARED_REASONS:
                    raw.hsetnx(name, reason, subject)
                return
            known = self.cache.get(key)
            known = dict(known) if isinstance(known, dict) else {}
            if reason not in known and len(known) < MAX_SHARED_REASONS:
                known[reason] = subject
                self.cache.set(key, known, None)
        except Exception as error:
            self.failed(error, "sharing why a read was served uncached")

    def bypass_reasons(self) -> dict[str, str]:
        """Why cached reads were served uncached, by any process: ``{reason: model or tag}``.

        Read back from the cache server, so untrusted: only text is kept, cut to length.
        """
        key = self.key("meta", BYPASS_REASONS)
        found: dict[object, object] = {}
        try:
            redis = self.redis()
            if redis is not None:
                client, raw = redis
                found = raw.hgetall(client.make_key(key)) or {}
            else:
                stored = self.cache.get(key)
                found = stored if isinstance(stored, dict) else {}
        except Exception as error:
            self.failed(error, "reading why reads were served uncached")
        reasons = {_text(reason): _text(subject) for reason, subject in found.items()}
        return {reason: subject for reason, subject in reasons.items() if reason}

    def count_lookup(self, subject: str, tags: Iterable[str], event: str) -> None:
        """Count ``event`` (hit, miss) for ``subject`` and for each of the entry's tags."""
        self.count(subject, event)
        for tag in tags:
            self.count(f"tag:{tag}", event)

    def flush_counts(self) -> None:
        with self._lock:
            counts, self._counts = self._counts, Counter()
            self._counts_flushed = time.monotonic()
        if not counts or not self.available:
            return
        try:
            redis = self.redis()
            if redis is not None:
                # Raw commands: django-redis' incr() unpickles a value that is not a number.
                client, raw = redis
                pipeline = raw.pipeline(transaction=False)
                for (subject, event), amount in counts.items():
                    pipeline.incrby(
                        client.make_key(self.key("stats", f"{subject}:{event}")), amount
                    )
                pipeline.sadd(client.make_key(self.key("meta", SUBJECTS)), *{s for s, _ in counts})
                pipeline.execute()
                return
            for (subject, event), amount in counts.items():
                key = self.key("stats", f"{subject}:{event}")
                try:
                    self.cache.incr(key, amount)
                except ValueError:  # not there yet
                    if not self.cache.add(key, amount, timeout=None):
                        self.cache.incr(key, amount)
            known = self.cache.get(self.key("meta", SUBJECTS)) or []
            subjects = sorted(set(known) | {subject for subject, _ in counts})
            self.cache.set(self.key("meta", SUBJECTS), subjects, None)
        except Exception as error:
            self.failed(error, "saving cache statistics")

    def stats(self) -> dict[str, dict[str, int]]:
        """Counters of every instance: ``{"app.Model": {"hit": 3, "miss": 1, ...}}``."""
        self.flush_counts()
        events = ("hit", "miss", "invalidation", "bypass", "rejected")
        redis = self.redis()
        if redis is None:
            subjects = list(self.cache.get(self.key("meta", SUBJECTS)) or [])
            keys = [self.key("stats", f"{s}:{e}") for s in subjects for e in events]
            found = self.cache.get_many(keys)
            values = [found.get(key) for key in keys]
        else:
            client, raw = redis
            try:
                members = raw.smembers(client.make_key(self.key("meta", SUBJECTS)))
            except Exception as error:  # e.g. WRONGTYPE: something else wrote that key
                self.failed(error, "reading cache statistics")
                members = set()
            subjects = sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)
            keys = [self.key("stats", f"{s}:{e}") for s in subjects for e in events]
            values = [_int_or_none(v) for v in raw.mget([client.make_key(k) for k in keys])]
        result: dict[str, dict[str, int]] = {s: dict.fromkeys(events, 0) for s in subjects}
        pairs = [(s, e) for s in subjects for e in events]
        for (subject, event), value in zip(pairs, values, strict=True):
            result[subject][event] = int(value or 0)
        return result

    def _get_int(self, key: str) -> int | None:
        """A version or the epoch as stored; None if missing or not a number. Read raw on
        django-redis: its get() would unpickle whatever bytes another client wrote."""
        redis = self.redis()
        if redis is None:
            value = self.cache.get(key)
            return value if type(value) is int else None
        client, raw = redis
        return _int_or_none(raw.get(client.make_key(key)))


def _int_or_none(value: object) -> int | None:
    """A number django-redis stored as its digits (it stores integers unpickled)."""
    if isinstance(value, bytes) and value[:1] != b"+" and value.lstrip(b"-").isdigit():
        return int(value)
    return None


_UNREADABLE = object()


@dataclass(frozen=True)
class _Rejected:
    reason: str


_FORGED = _Rejected("its signature is not valid for its key under SECRET_KEY or a fallback")


def _dumps(result: Any, key: str) -> bytes:
    """The payload, signed for the entry's cache key ``key`` (``signing.py``)."""
    return signing.sign(key, payload.dumps(result))


def _loads(blob: Any, key: str) -> Any:
    """The stored result; ``_Rejected`` for bytes not signed for ``key`` with this site's secret
    (never decoded), or signed but naming what no result holds; ``_UNREADABLE`` for a payload of
    an older code version or Django, or of a model changed since."""
    verified = signing.verify(key, blob)
    if verified is None:
        return _FORGED
    try:
        return payload.loads(verified)
    except payload.RefusedGlobal as error:
        return _Rejected(f"signed, but {error}")
    except Exception:
        return _UNREADABLE


def new_token() -> int:
    """A random version: never equal to one that existed before (so a reset never matches).

    An integer, which django-redis stores and reads back without pickling.
    """
    return secrets.randbits(62) + 1


def entry_name(*parts: object) -> str:
    return hashlib.sha1("\x1f".join(map(str, parts)).encode(), usedforsecurity=False).hexdigest()


# --- Lua, for the versions of rows (narrow.py) ----------------------------------------------

# KEYS: the write sequence, then the versions to set; ARGV: how many of them never expire,
# and the others' TTL. Every version becomes the new sequence number: the server's clock in
# microseconds, or one more than the last, so it only grows (across restarts too).
_BUMP_ROW = """
local now = redis.call('TIME')
local seq = tonumber(now[1]) * 1000000 + tonumber(now[2])
local last = tonumber(redis.call('GET', KEYS[1]))
if last and last >= seq then seq = last + 1 end
local value = string.format('%.0f', seq)
redis.call('SET', KEYS[1], value)
local forever = tonumber(ARGV[1]) + 1
for i = 2, #KEYS do
  if i <= forever then
    redis.call('SET', KEYS[i], value)
  else
    redis.call('SET', KEYS[i], value, 'EX', ARGV[2])
  end
end
return 1
"""

# KEYS: the sequence, the entry, then the versions it depends on; ARGV: the rows' key prefix.
# Returns the values of KEYS, then the versions of the rows the entry's first line lists.
_READ_WITH_ROWS = """
local found = redis.call('MGET', unpack(KEYS))
local entry = found[2]
if entry then
  local stop = string.find(entry, '\\n', 1, true)
  if stop then
    for pk in string.gmatch(string.sub(entry, 1, stop - 1), '[^,]+') do
      found[#found + 1] = redis.call('GET', ARGV[1] .. pk)
    end
  end
end
return found
"""

# KEYS: the entry; ARGV: the sequence read before the query, the entry's TTL, the rows' key
# prefix, their versions' TTL, the rows' primary keys, the header read before the query, the
# payload. A row written since that read (its version is a later sequence number) may have
# left the query's rows after the query ran: nothing is stored. A row without a version gets
# one now; a row written later gets a new one.
_STORE_WITH_ROWS = """
local before = tonumber(ARGV[1])
local versions = {}
for pk in string.gmatch(ARGV[5], '[^,]+') do
  local key = ARGV[3] .. pk
  local version = redis.call('GET', key)
  if not version then
    version = ARGV[1]
    redis.call('SET', key, version, 'EX', ARGV[4])
  else
    local number = tonumber(version)
    if number == nil or number > before then return 0 end
    if redis.call('TTL', key) < tonumber(ARGV[4]) then redis.call('EXPIRE', key, ARGV[4]) end
  end
  versions[#versions + 1] = version
end
local header = ARGV[6]
if #versions > 0 then header = header .. '|' .. table.concat(versions, '|') end
redis.call('SET', KEYS[1], ARGV[5] .. '\\n' .. header .. '\\n' .. ARGV[7], 'EX', ARGV[2])
return 1
"""

_BUMP_ROW_SHA = hashlib.sha1(_BUMP_ROW.encode(), usedforsecurity=False).hexdigest()

STORE = CacheStore()


def _text(value: object) -> str:
    """A stored reason or subject as text (bytes from Redis decoded), cut to length."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value[:REASON_LIMIT] if isinstance(value, str) else ""
