"""Safe ``CREATE INDEX CONCURRENTLY`` during ``migrate``, with Django's own operation in the file.

An execute wrapper on the migrating PostgreSQL connection (added on ``pre_migrate``, removed on
``post_migrate``) takes each concurrent index build through these steps, under
``DBPERF["INDEXES"]``: remember ``lock_timeout`` and bound it -> a VALID index of that name on
that table: skip -> an INVALID leftover: drop it concurrently -> ``CREATE ... IF NOT EXISTS`` ->
on a lock timeout: drop the leftover, back off, retry -> restore ``lock_timeout``. Every other
statement passes through untouched. Steps are logged on ``django_dbperf.indexes``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from typing import Any

from django.db import DEFAULT_DB_ALIAS, DatabaseError, OperationalError, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from django_dbperf.conf import get_config

logger = logging.getLogger("django_dbperf.indexes")

_IDENTIFIER = r'(?:"(?:[^"]|"")+"|[^\s"().,;]+)'
# Only the statement's head is read: the name, and the table whose schema holds the index.
_CONCURRENT_BUILD = re.compile(
    rf"""\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+
    (?P<if_not_exists>IF\s+NOT\s+EXISTS\s+)?
    (?P<name>{_IDENTIFIER})\s+ON\s+(?:ONLY\s+)?
    (?P<table>{_IDENTIFIER}(?:\s*\.\s*{_IDENTIFIER})?)""",
    re.IGNORECASE | re.VERBOSE,
)

LOCK_NOT_AVAILABLE = "55P03"  # what lock_timeout raises
QUERY_CANCELED = "57014"
DEADLOCK_DETECTED = "40P01"  # two concurrent builds waiting for each other: one is cancelled

# The relation named like the index, in the schema of the table the index is built on.
_EXISTING_SQL = """
SELECT x.indrelid = t.oid, x.indisvalid,
       EXISTS (SELECT 1 FROM pg_stat_progress_create_index p WHERE p.index_relid = c.oid)
FROM pg_class t
JOIN pg_class c ON c.relnamespace = t.relnamespace AND c.relname = %s
LEFT JOIN pg_index x ON x.indexrelid = c.oid
WHERE t.oid = to_regclass(%s)
"""


class IndexBuildError(OperationalError):
    """A concurrent index build ``migrate`` could not finish; the message says what to do."""


@dataclass(frozen=True)
class Build:
    """One ``CREATE [UNIQUE] INDEX CONCURRENTLY`` statement, as read from its SQL."""

    sql: str  # as Django wrote it
    name: str  # unquoted, as PostgreSQL stores it
    table: str  # as written (quoted, maybe schema-qualified): to_regclass() reads it
    name_start: int
    if_not_exists: bool

    @property
    def idempotent_sql(self) -> str:
        if self.if_not_exists:
            return self.sql
        start = self.name_start
        return f"{self.sql[:start]}IF NOT EXISTS {self.sql[start:]}"

    @property
    def quoted_name(self) -> str:
        return '"{}"'.format(self.name.replace('"', '""'))


class Existing(Enum):
    """What already carries the index's name in the table's schema."""

    NOTHING = "nothing"
    VALID = "valid"  # built before (a migration applied twice, a --fake rollback)
    INVALID = "invalid"  # the leftover of an interrupted build
    BUILDING = "building"  # another session is building it right now
    OTHER = "other"  # another relation, or an index of another table: not ours to touch


@dataclass(frozen=True)
class Policy:
    """``DBPERF["INDEXES"]``, read when a build starts (never at import time)."""

    lock_timeout_ms: int
    retries: int
    backoff_s: float
    max_backoff_s: float

    @classmethod
    def from_settings(cls) -> Policy:
        options = get_config()["INDEXES"]
        return cls(
            int(options["LOCK_TIMEOUT_MS"]),
            int(options["BUILD_RETRIES"]),
            float(options["RETRY_BACKOFF_S"]),
            float(options["MAX_BACKOFF_S"]),
        )

    @property
    def attempts(self) -> int:
        return self.retries + 1

    def delay(self, retry: int) -> float:
        """Seconds before retry number ``retry`` (1-based): doubling, capped."""
        return float(min(self.backoff_s * 2 ** (retry - 1), self.max_backoff_s))


def parse(sql: object) -> Build | None:
    """The build ``sql`` runs, or None for any other statement (and for unnamed indexes)."""
    if not isinstance(sql, str):
        return None
    match = _CONCURRENT_BUILD.match(sql)
    if match is None:
        return None
    return Build(
        sql=sql,
        name=_unquote(match["name"]),
        table=match["table"],
        name_start=match.start("name"),
        if_not_exists=match["if_not_exists"] is not None,
    )


def _unquote(identifier: str) -> str:
    if identifier.startswith('"'):
        return identifier[1:-1].replace('""', '"')
    return identifier.lower()  # PostgreSQL folds unquoted names


def execute_wrapper(
    execute: Callable[..., Any],
    sql: str,
    params: Any,
    many: bool,
    context: dict[str, Any],
) -> Any:
    """The wrapper ``install()`` adds; every statement but a concurrent build passes through."""
    build = None if many else parse(sql)
    if build is None:
        return execute(sql, params, many, context)
    connection: BaseDatabaseWrapper = context["connection"]
    if connection.in_atomic_block or not connection.get_autocommit():
        # PostgreSQL refuses the build inside a transaction, and its error says so.
        return execute(sql, params, many, context)
    return run_safely(build, connection, lambda text: execute(text, params, many, context))


def run_safely(build: Build, connection: BaseDatabaseWrapper, run: Callable[[str], Any]) -> Any:
    """Run ``build`` (``run`` executes a variant of its SQL) with the steps the module names."""
    policy = Policy.from_settings()
    previous = _fetch_one(connection, "SELECT current_setting('lock_timeout')")
    _set_lock_timeout(connection, f"{policy.lock_timeout_ms}ms")
    try:
        return _attempts(build, connection, run, policy)
    finally:
        _restore_lock_timeout(connection, str(previous))


def _attempts(
    build: Build, connection: BaseDatabaseWrapper, run: Callable[[str], Any], policy: Policy
) -> Any:
    for attempt in range(1, policy.attempts + 1):
        try:
            return _attempt(build, connection, run, policy)
        except DatabaseError as error:
            if not is_lock_timeout(error):
                raise
            if attempt == policy.attempts:
                raise IndexBuildError(_exhausted_message(build, policy)) from error
            delay = policy.delay(attempt)
            logger.warning(
                "Index %s: attempt %d of %d gave up waiting for a lock (lock_timeout %d ms); "
                "retrying in %.1f s.",
                build.name,
                attempt,
                policy.attempts,
                policy.lock_timeout_ms,
                delay,
            )
            time.sleep(delay)
    raise AssertionError("unreachable: the last attempt returns or raises")


def _attempt(
    build: Build, connection: BaseDatabaseWrapper, run: Callable[[str], Any], policy: Policy
) -> Any:
    existing = existing_index(build, connection)
    if existing is Existing.OTHER:
        # Django's own statement, so PostgreSQL reports the clash ("already exists").
        return run(build.sql)
    if existing is Existing.VALID:
        logger.info("Index %s already exists and is valid: not built again.", build.name)
        return None
    if existing is Existing.BUILDING:
        raise IndexBuildError(
            f"Index {build.name!r} on {build.table} is being built by another session right now "
            "(pg_stat_progress_create_index). Wait for that build to end, then run migrate again."
        )
    if existing is Existing.INVALID:
        _drop(build, connection)
    logger.info(
        "Index %s: building concurrently (lock_timeout %d ms).", build.name, policy.lock_timeout_ms
    )
    try:
        result = run(build.idempotent_sql)
    except DatabaseError as error:
        if is_lock_timeout(error):
            _drop_leftover(build, connection)
        raise
    logger.info("Index %s: built.", build.name)
    return result


def existing_index(build: Build, connection: BaseDatabaseWrapper) -> Existing:
    with connection.cursor() as cursor:
        cursor.execute(_EXISTING_SQL, [build.name, build.table])
        row = cursor.fetchone()
    if row is None:
        return Existing.NOTHING
    same_table, valid, in_progress = row
    if not same_table:  # NULL when the relation is not an index at all
        return Existing.OTHER
    if valid:
        return Existing.VALID
    return Existing.BUILDING if in_progress else Existing.INVALID


def _drop(build: Build, connection: BaseDatabaseWrapper) -> None:
    logger.info("Index %s: dropping the INVALID index an interrupted build left.", build.name)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {build.quoted_name}")


def _drop_leftover(build: Build, connection: BaseDatabaseWrapper) -> None:
    """Drop what the interrupted build left; a lock timeout here is left to the next attempt."""
    try:
        if existing_index(build, connection) is Existing.INVALID:
            _drop(build, connection)
    except DatabaseError as error:
        if not is_lock_timeout(error):
            raise
        logger.warning(
            "Index %s: the INVALID leftover could not be dropped yet (lock timeout); the next "
            "attempt, or the next migrate, drops it.",
            build.name,
        )


def _exhausted_message(build: Build, policy: Policy) -> str:
    return (
        f"Could not build the index {build.name!r} on {build.table}: {policy.attempts} tries "
        f"each gave up after waiting {policy.lock_timeout_ms} ms for a lock (lock_timeout). "
        "A concurrent build waits for every transaction that writes the table or started "
        "before it; one of them stays open. Find it with: SELECT pid, xact_start, state, query "
        "FROM pg_stat_activity WHERE xact_start IS NOT NULL ORDER BY xact_start; let it finish "
        "(or end it with SELECT pg_cancel_backend(pid)), then run migrate again: it drops the "
        "INVALID index an interrupted build left. Or raise "
        'DBPERF["INDEXES"]["LOCK_TIMEOUT_MS"] or ["BUILD_RETRIES"].'
    )


def is_lock_timeout(error: BaseException) -> bool:
    """Whether ``error`` (Django's, or the driver's behind it) is a lock wait that gave up."""
    for candidate in (error, error.__cause__):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if code in (LOCK_NOT_AVAILABLE, DEADLOCK_DETECTED):
            return True
        if code == QUERY_CANCELED and "lock timeout" in str(candidate):
            return True
    return False


def _fetch_one(connection: BaseDatabaseWrapper, sql: str) -> Any:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        row = cursor.fetchone()
    return row[0] if row else None


def _set_lock_timeout(connection: BaseDatabaseWrapper, value: str) -> None:
    # set_config() rather than SET: it takes a parameter, with client- and server-side binding.
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('lock_timeout', %s, false)", [value])


def _restore_lock_timeout(connection: BaseDatabaseWrapper, previous: str) -> None:
    try:
        _set_lock_timeout(connection, previous)
    except DatabaseError:
        # Never hide the build's own error; the session's setting ends with the connection.
        logger.exception("Could not restore lock_timeout to %r.", previous)


def install(alias: str = DEFAULT_DB_ALIAS) -> bool:
    """Add the wrapper to the PostgreSQL connection ``alias`` once; True when added now."""
    connection = connections[alias]
    if connection.vendor != "postgresql" or execute_wrapper in connection.execute_wrappers:
        return False
    # First: a connection.execute_wrapper() block open now pops the last wrapper when it ends.
    connection.execute_wrappers.insert(0, execute_wrapper)
    return True


def uninstall(alias: str = DEFAULT_DB_ALIAS) -> None:
    wrappers = connections[alias].execute_wrappers
    while execute_wrapper in wrappers:
        wrappers.remove(execute_wrapper)


@contextmanager
def safe_builds(alias: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """Concurrent index builds on ``alias`` are safe inside the block (no-op off PostgreSQL)."""
    installed = install(alias)
    try:
        yield
    finally:
        if installed:
            uninstall(alias)


def on_pre_migrate(sender: object, using: str = DEFAULT_DB_ALIAS, **kwargs: object) -> None:
    """``pre_migrate`` receiver (sent once per app, hence ``install()``'s once-only)."""
    if get_config()["ENABLED"]:
        install(using)


def on_post_migrate(sender: object, using: str = DEFAULT_DB_ALIAS, **kwargs: object) -> None:
    uninstall(using)
