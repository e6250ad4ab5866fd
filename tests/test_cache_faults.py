"""The cache server failing: stopped, slow, returning garbage, restarted, restored from an older
snapshot. Requests never fail and nothing stale is ever served.

Each test runs its own redis-server (or valkey-server) process, which it really stops.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import caches
from django.test import override_settings

from django_dbperf.cache.namespace import qualified
from django_dbperf.cache.store import STORE, CacheStore
from tests.conftest import missing
from tests.helpers import make_library
from tests.servers import RedisServer, redis_binary
from tests.testapp.models import Book

pytestmark = pytest.mark.django_db(transaction=True)

ALIAS = "faulty"


@pytest.fixture
def server() -> Iterator[RedisServer]:
    binary = redis_binary()
    if binary is None:
        missing("needs redis-server or valkey-server (Debian: apt-get install redis-server)")
        raise AssertionError  # unreachable: missing() skips or fails
    with tempfile.TemporaryDirectory(prefix="dbperf-faults-") as workdir:
        redis = RedisServer(binary, Path(workdir), ("--enable-debug-command", "yes"))
        redis.start()
        try:
            yield redis
        finally:
            redis.stop()


@pytest.fixture
def cached_library(server: RedisServer) -> Iterator[RedisServer]:
    cache_settings = {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": server.url,
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
    }
    dbperf = {"CACHE": {"ALIAS": ALIAS, "RETRY_AFTER": 0.3, "ERROR_LOG_INTERVAL": 60}}
    from django.conf import settings

    with override_settings(CACHES={**settings.CACHES, ALIAS: cache_settings}, DBPERF=dbperf):
        STORE.reset()
        make_library(authors=2, books_per_author=2)
        yield server
    STORE.reset()


def pages() -> list[int]:
    return [book.pages for book in Book.cache.plain().order_by("pk").cached()]


def fresh_pages() -> list[int]:
    return [book.pages for book in Book.objects.order_by("pk")]


def wait_for_retry() -> None:
    time.sleep(0.35)  # RETRY_AFTER


def test_stopped_server_falls_back_to_the_database(
    cached_library: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    assert pages() == fresh_pages()
    cached_library.stop()
    with caplog.at_level(logging.WARNING, logger="django_dbperf"):
        Book.objects.update(pages=11)  # the write succeeds with the cache down
        for _ in range(5):
            assert pages() == [11, 11, 11, 11]
            wait_for_retry()
    assert STORE.errors >= 2
    warnings = [r for r in caplog.records if "django_dbperf cache" in r.getMessage()]
    assert len(warnings) == 1  # logged once per interval, not per request
    assert "using the database for" in warnings[0].getMessage()


def test_nothing_stale_when_the_server_comes_back(cached_library: RedisServer) -> None:
    assert pages() == fresh_pages()
    pages()  # now cached
    cached_library.stop()
    Book.objects.update(pages=12)  # its invalidation cannot reach the server
    cached_library.start()  # empty again: no persistence
    wait_for_retry()
    assert pages() == [12, 12, 12, 12]


def test_a_write_whose_invalidation_failed_renews_the_epoch(cached_library: RedisServer) -> None:
    # The server keeps its data (it only could not be reached): the failed bump must still
    # make every old entry a miss once it is back.
    assert pages() == fresh_pages()
    client = caches[ALIAS].client.get_client()  # type: ignore[attr-defined]
    client.execute_command("CLIENT", "PAUSE", "700", "ALL")  # unreachable for 0.7 s
    Book.objects.update(pages=13)
    time.sleep(0.8)
    wait_for_retry()
    assert pages() == [13, 13, 13, 13]


def test_an_older_snapshot_restored_is_never_served(cached_library: RedisServer) -> None:
    assert pages() == fresh_pages()
    pages()
    client = caches[ALIAS].client.get_client()  # type: ignore[attr-defined]
    client.execute_command("SAVE")  # the snapshot holds the entry and its versions
    Book.objects.update(pages=14)  # bumped on the live server, not in the snapshot
    assert pages() == [14, 14, 14, 14]
    cached_library.stop()
    cached_library.extra_args = (*cached_library.extra_args, "--dbfilename", "dump.rdb")
    cached_library.start()  # loads dump.rdb: the old entry is valid for the old versions
    restored = caches[ALIAS].client.get_client()  # type: ignore[attr-defined]
    assert restored.dbsize() > 0
    time.sleep(1.1)  # RUN_ID_CHECK_INTERVAL, or the first connection error, notices
    wait_for_retry()
    assert pages() == [14, 14, 14, 14]


def test_a_slow_server_times_out_to_the_database(cached_library: RedisServer) -> None:
    assert pages() == fresh_pages()
    import redis

    blocker = redis.Redis.from_url(cached_library.url)  # its own client, without a timeout
    sleeping = threading.Thread(target=blocker.execute_command, args=("DEBUG", "SLEEP", "3"))
    sleeping.start()
    time.sleep(0.05)
    started = time.monotonic()
    assert pages() == fresh_pages()
    elapsed = time.monotonic() - started
    sleeping.join()
    # The 0.2 s socket timeout, not the server's 3 s pause (a wide margin for loaded machines).
    assert elapsed < 2.5


def test_garbage_from_the_server_is_a_miss_not_an_error(cached_library: RedisServer) -> None:
    assert pages() == fresh_pages()
    raw = caches[ALIAS].client.get_client()  # type: ignore[attr-defined]
    for key in raw.keys("*"):
        raw.set(key, b"\x80garbage")
    assert pages() == fresh_pages()
    wait_for_retry()
    Book.objects.update(pages=15)
    assert pages() == [15, 15, 15, 15]


# --- bumps: awaited by the write, on a connection of the thread's own ------------------------


def table_version() -> object:
    raw = caches[ALIAS].client.get_client()  # type: ignore[attr-defined]
    (name,) = qualified("default", [Book._meta.db_table])
    return raw.get(caches[ALIAS].make_key(STORE.key("table", name)))


def test_other_clients_see_a_bump_once_the_write_returns(cached_library: RedisServer) -> None:
    pages()  # creates the table's version
    before = table_version()
    Book.objects.update(pages=16)
    assert table_version() != before  # read through another connection, at once
    assert pages() == [16, 16, 16, 16]


def test_a_write_waits_at_most_the_socket_timeout(cached_library: RedisServer) -> None:
    pages()
    client = caches[ALIAS].client.get_client()  # type: ignore[attr-defined]
    client.execute_command("CLIENT", "PAUSE", "2500", "ALL")
    started = time.monotonic()
    Book.objects.update(pages=17)  # succeeds; its bump times out
    # The 0.2 s socket timeout, not the 2.5 s pause (a wide margin for loaded machines).
    assert time.monotonic() - started < 2.0
    assert pages() == [17, 17, 17, 17]
    assert STORE.errors >= 1
    time.sleep(2.6)
    wait_for_retry()
    assert pages() == [17, 17, 17, 17]  # the failed bump renewed the epoch: no stale read


def test_threads_that_end_close_their_bump_connection(
    cached_library: RedisServer,
) -> None:
    pages()
    client = caches[ALIAS].client.get_client()  # type: ignore[attr-defined]

    def write(number: int) -> None:
        Book.objects.filter(pk=Book.objects.order_by("pk")[0].pk).update(pages=number)

    before = len(client.client_list())
    for number in range(20):
        thread = threading.Thread(target=write, args=(number,))
        thread.start()
        thread.join()
    import gc

    gc.collect()
    time.sleep(0.1)
    assert len(client.client_list()) <= before + 1
    assert pages()[0] == 19


def test_narrowed_entries_survive_garbage_and_a_stopped_server(
    cached_library: RedisServer,
) -> None:
    # Entries narrowed by a foreign key go through Lua scripts (their rows' versions).
    author_id = Book.objects.order_by("pk")[0].author_id

    def narrowed() -> list[int]:
        qs = Book.cache.plain().filter(author_id=author_id).order_by("pk").cached()
        return [book.pages for book in qs]

    def fresh() -> list[int]:
        return [b.pages for b in Book.objects.filter(author_id=author_id).order_by("pk")]

    assert narrowed() == fresh()
    raw = caches[ALIAS].client.get_client()  # type: ignore[attr-defined]
    for key in raw.keys("*"):
        raw.set(key, b"\x80garbage")
    assert narrowed() == fresh()
    wait_for_retry()
    Book.objects.filter(author_id=author_id).update(pages=18)
    assert narrowed() == [18, 18]
    cached_library.stop()
    book = Book.objects.filter(author_id=author_id).order_by("pk")[0]
    book.pages = 19
    book.save()  # succeeds with the cache down
    assert narrowed() == [19, 18]
    cached_library.start()
    wait_for_retry()
    assert narrowed() == [19, 18]


# --- two processes, one store each: the writer's failures must not silence its writes --------


class Link:
    """A TCP forwarder to the server that a test can cut and restore: a network fault between
    one process and the cache while the others still reach it."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            server = socket.create_connection(("127.0.0.1", self.target))
            self.sockets += (client, server)
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.up = False
        for end in self.sockets:
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
        self.sockets.clear()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


class WriterStore(CacheStore):
    """The cache store of another process (a task worker): its own breaker and pending epoch
    renewal, reaching the server through its own link."""

    @property
    def config(self) -> Mapping[str, Any]:
        return {**super().config, "ALIAS": "writer"}


@pytest.fixture
def writer(cached_library: RedisServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Link]:
    from django.conf import settings

    from django_dbperf.cache import invalidation

    link = Link(int(cached_library.url.rsplit(":", 1)[1].split("/")[0]))
    writer_cache = {**settings.CACHES[ALIAS], "LOCATION": f"redis://127.0.0.1:{link.port}/0"}
    with override_settings(CACHES={**settings.CACHES, "writer": writer_cache}):
        # This process's writes go through the writer's store; its reads through STORE.
        monkeypatch.setattr(invalidation, "STORE", WriterStore())
        try:
            yield link
        finally:
            link.close()


def test_a_writer_whose_reads_failed_still_invalidates(writer: Link) -> None:
    from django_dbperf.cache import invalidation

    assert pages() == fresh_pages()
    pages()  # cached by the reader
    # The writer's last cache read timed out: its reads skip the cache for RETRY_AFTER.
    invalidation.STORE.failed(TimeoutError("read timed out"), "a cache read")
    Book.objects.update(pages=21)
    book = Book.objects.order_by("pk")[0]
    book.pages = 22
    book.save()
    assert pages() == fresh_pages() == [22, 21, 21, 21]


def test_a_write_only_process_renews_the_epoch_with_its_next_write(writer: Link) -> None:
    from django_dbperf.cache import invalidation
    from tests.testapp.models import Tag

    assert pages() == fresh_pages()
    pages()  # cached by the reader
    writer.cut()
    Book.objects.update(pages=23)  # its bump cannot reach the server: renewal pending
    assert invalidation.STORE.errors >= 1
    writer.restore()
    Tag.objects.create(name="unrelated")  # the worker's next write, to another table
    assert pages() == fresh_pages() == [23, 23, 23, 23]
