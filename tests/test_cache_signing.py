"""The cache server is a trust boundary: entries are signed for their own key with SECRET_KEY,
verified before anything is decoded, and decoded by an unpickler that only rebuilds results.

Bytes planted in the cache (by anyone who can write to it) are a miss, counted and logged, and
never run code. On the server pass the bytes are planted in real Valkey/Redis; on the SQLite
pass in the local-memory cache.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import logging
import pickle
import sys
import uuid
import zoneinfo
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import models
from django.db.models import Avg, Count, F, Max, Prefetch, Value
from django.test import override_settings

from django_dbperf import cache as dbperf_cache
from django_dbperf.cache import cached_as, payload, signing
from django_dbperf.cache.store import STORE
from tests.helpers import assert_served_from_the_cache, make_library, queries
from tests.testapp.models import Author, Book, Review

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("cache_alias")]

RAN: list[str] = []  # what planted code appends to, if it ever runs


@pytest.fixture(autouse=True)
def nothing_ran() -> Iterator[None]:
    RAN.clear()
    yield
    assert RAN == [], "a planted pickle ran code"


@pytest.fixture
def library() -> list[Book]:
    return make_library(authors=3, books_per_author=2)


@pytest.fixture
def signed(monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """The cache key and signed blob of every entry stored (the blob ends the stored value)."""
    blobs: dict[str, bytes] = {}
    sign = signing.sign

    def recording(key: str, data: bytes) -> bytes:
        blobs[key] = sign(key, data)
        return blobs[key]

    monkeypatch.setattr(signing, "sign", recording)
    return blobs


# --- reading and writing the cache server's bytes, as someone with access to it would -------


def read_raw(key: str) -> bytes:
    redis = STORE.redis()
    if redis is None:
        value: bytes = STORE.cache.get(key)
        return value
    client, raw = redis
    stored: bytes = raw.get(client.make_key(key))
    return stored


def write_raw(key: str, value: bytes) -> None:
    redis = STORE.redis()
    if redis is None:
        STORE.cache.set(key, value, timeout=300)
    else:
        client, raw = redis
        raw.set(client.make_key(key), value, ex=300)


def replace_blob(key: str, blob: bytes, new_blob: bytes) -> None:
    """Keep the stored value's valid header (and, narrowed by rows, its rows), swap the blob."""
    stored = read_raw(key)
    assert stored.endswith(blob)
    write_raw(key, stored[: -len(blob)] + new_blob)


def rejected() -> int:
    return dbperf_cache.stats().get("entries", {}).get("rejected", 0)


def verification_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "django_dbperf" and "failed verification" in record.getMessage()
    ]


# --- what an attacker plants ----------------------------------------------------------------


class Planted:
    """Pickles as a call to exec(): whoever unpickles it runs the code."""

    def __reduce__(self) -> tuple[Any, ...]:
        return exec, (f"__import__({__name__!r}, fromlist=['RAN']).RAN.append('ran')",)


def calling(module: str, name: str, *args: object) -> bytes:
    """A pickle that calls ``module.name(*args)`` (the names need not exist here)."""
    return (
        pickle.GLOBAL + f"{module}\n{name}\n".encode() + pickle.MARK
        + b"".join(pickle.dumps(arg, protocol=2)[2:-1] for arg in args)  # each without PROTO
        + pickle.TUPLE + pickle.REDUCE + pickle.STOP
    )  # fmt: skip


def getattr_call(module: str, name: str, attribute: str) -> bytes:
    """A pickle that evaluates ``getattr(module.name, attribute)``."""
    return (
        pickle.GLOBAL + b"builtins\ngetattr\n" + pickle.MARK
        + pickle.GLOBAL + f"{module}\n{name}\n".encode()
        + pickle.dumps(attribute, protocol=2)[2:-1]
        + pickle.TUPLE + pickle.REDUCE + pickle.STOP
    )  # fmt: skip


def test_the_planted_pickle_runs_code_under_plain_pickle() -> None:
    """The control: what the tests below plant really is an exploit for pickle.loads()."""
    pickle.loads(pickle.dumps(Planted()))
    assert RAN == ["ran"]
    RAN.clear()


# --- (a) bytes planted under an entry's key --------------------------------------------------


def titles() -> list[str]:
    return [book.title for book in Book.cache.plain().order_by("pk").cached()]


@pytest.mark.parametrize(
    "planted",
    [
        pickle.dumps(Planted()),
        # Shaped like a signed payload: 32 bytes where the signature goes, then the format.
        bytes(32) + payload._PREFIX + b"P" + pickle.dumps(Planted()),
    ],
    ids=["raw pickle", "payload-shaped"],
)
def test_planted_bytes_are_a_logged_miss_and_never_run(
    library: list[Book],
    signed: dict[str, bytes],
    planted: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fresh = [book.title for book in Book.objects.order_by("pk")]
    assert titles() == fresh
    ((key, blob),) = signed.items()
    with caplog.at_level(logging.WARNING, logger="django_dbperf"):
        replace_blob(key, blob, planted)
        assert queries(titles) == (fresh, 1)  # a miss: the database answered
        assert rejected() == 1
        assert queries(titles) == (fresh, 0)  # the fresh result was stored over it
        replace_blob(key, signed[key], planted)
        assert queries(titles) == (fresh, 1)
        assert rejected() == 2
    # Logged once per ERROR_LOG_INTERVAL (60 s by default), counted every time.
    (warning,) = verification_warnings(caplog)
    assert key in warning and "Redis is a trust boundary" in warning
    assert "signature is not valid for its key under SECRET_KEY" in warning


# --- (b) an entry copied from another query's key -------------------------------------------


def books_of(name: str) -> list[str]:
    return [b.title for b in Book.cache.plain().filter(author__name=name).order_by("pk").cached()]


def test_an_entry_copied_from_another_key_is_rejected(
    library: list[Book], signed: dict[str, bytes]
) -> None:
    assert books_of("Author 0") == ["Book 0.0", "Book 0.1"]
    assert books_of("Author 1") == ["Book 1.0", "Book 1.1"]
    (first, first_blob), (_, second_blob) = signed.items()
    # A genuine entry, signed with this site's secret, but for the other query's key.
    replace_blob(first, first_blob, second_blob)
    assert queries(lambda: books_of("Author 0")) == (["Book 0.0", "Book 0.1"], 1)
    assert rejected() == 1


def test_an_entry_narrowed_by_rows_is_verified_too(
    library: list[Book], signed: dict[str, bytes]
) -> None:
    """``filter(author=...)`` lists its rows before the header on Valkey/Redis (a Lua script
    writes it): the blob after them is what is signed."""
    first, second = Author.objects.order_by("pk")[:2]

    def of(author: Author) -> list[str]:
        return [b.title for b in Book.cache.plain().filter(author=author).order_by("pk").cached()]

    assert of(first) == ["Book 0.0", "Book 0.1"] and of(second) == ["Book 1.0", "Book 1.1"]
    (first_key, first_blob), (_, second_blob) = signed.items()
    replace_blob(first_key, first_blob, second_blob)
    if STORE.redis() is not None:  # the rows' line, then the header: both kept, valid
        assert read_raw(first_key)[: -len(second_blob)].count(b"\n") == 2
    assert queries(lambda: of(first)) == (["Book 0.0", "Book 0.1"], 1)
    assert rejected() == 1
    assert queries(lambda: of(first)) == (["Book 0.0", "Book 0.1"], 0)


# --- (c) damaged bytes ------------------------------------------------------------------------


def flip(position: int) -> Callable[[bytes], bytes]:
    def damage(blob: bytes) -> bytes:
        return blob[:position] + bytes([blob[position] ^ 0x01]) + blob[position + 1 :]

    return damage


@pytest.mark.parametrize(
    "damage",
    [
        lambda blob: blob[:-10],
        lambda blob: blob[: signing.SIGNATURE_SIZE],  # the signature alone
        lambda blob: blob[:5],  # not even a signature
        lambda blob: b"",
        flip(0),  # in the signature
        flip(signing.SIGNATURE_SIZE + 3),  # in the payload's prefix
        flip(-1),  # the last byte
        lambda blob: blob + b"\x00",
    ],
    ids=[
        "truncated",
        "signature only",
        "short",
        "empty",
        "signature bit",
        "prefix bit",
        "last bit",
        "appended",
    ],
)
def test_damaged_entries_are_a_miss(
    library: list[Book], signed: dict[str, bytes], damage: Callable[[bytes], bytes]
) -> None:
    fresh = titles()
    ((key, blob),) = signed.items()
    replace_blob(key, blob, damage(blob))
    assert queries(titles) == (fresh, 1)
    assert rejected() == 1


# --- (d) rotating SECRET_KEY ------------------------------------------------------------------


def test_entries_signed_with_a_fallback_key_still_hit_after_rotation(
    library: list[Book], signed: dict[str, bytes]
) -> None:
    with override_settings(SECRET_KEY="old secret"):
        fresh = titles()
    ((key, old_blob),) = signed.items()
    with override_settings(SECRET_KEY="new secret", SECRET_KEY_FALLBACKS=["old secret"]):
        assert queries(titles) == (fresh, 0)
        assert rejected() == 0
        assert signing.verify(key, old_blob) == old_blob[signing.SIGNATURE_SIZE :]
        # New entries are signed with SECRET_KEY only.
        new_blob = signing.sign(key, b"payload")
    with override_settings(SECRET_KEY="new secret"):
        assert signing.verify(key, new_blob) == b"payload"
        assert signing.verify(key, old_blob) is None  # the old key was dropped
    with override_settings(SECRET_KEY="old secret"):
        assert signing.verify(key, new_blob) is None


def test_entries_signed_with_an_unknown_key_are_rejected(
    library: list[Book], signed: dict[str, bytes]
) -> None:
    with override_settings(SECRET_KEY="somebody else's secret"):
        fresh = titles()
    with override_settings(SECRET_KEY="new secret", SECRET_KEY_FALLBACKS=["old secret"]):
        assert queries(titles) == (fresh, 1)
        assert rejected() == 1
        assert queries(titles) == (fresh, 0)  # stored again, signed with "new secret"


def test_the_signature_is_djangos_salted_hmac_over_the_key_and_payload() -> None:
    from django.utils.crypto import salted_hmac

    key = "{dbperf}:entry:0123"
    blob = signing.sign(key, b"payload")
    framed = len(key).to_bytes(4, "big") + key.encode()
    expected = salted_hmac(signing.SALT, framed + b"payload", algorithm="sha256").digest()
    assert blob == expected + b"payload"
    assert signing.verify(key + "4", blob) is None
    assert signing.verify(key, blob) == b"payload"


# --- (e) signed, but naming what no result holds: the restricted unpickler ------------------


# Each makes a pickle from the path of a file it would create if it ran.
DISALLOWED: dict[str, Callable[[str], bytes]] = {
    "exec": lambda marker: pickle.dumps(Planted()),
    "os.system": lambda marker: calling("os", "system", f"touch {marker}"),
    "posix.system": lambda marker: calling("posix", "system", f"touch {marker}"),
    "subprocess.Popen": lambda marker: calling("subprocess", "Popen", ["touch", marker]),
    "builtins.eval": lambda marker: calling("builtins", "eval", f"open({marker!r}, 'w')"),
    "getattr gadget": lambda marker: getattr_call("datetime", "datetime", "now"),
    "importlib": lambda marker: calling("importlib", "import_module", "tabnanny"),
    "a module not imported": lambda marker: calling("tabnanny", "check", marker),
    "a function of an allowed module": lambda marker: calling(
        "django.db.models.query", "get_related_populators", None, None
    ),
    "a metaclass": lambda marker: calling("django.db.models.base", "ModelBase", "X", (), {}),
    "a model that is not registered": lambda marker: calling(__name__, "AbstractRecord"),
    "a dotted name": lambda marker: calling("django.db.models.query", "QuerySet.delete"),
    "a class of the project": lambda marker: calling(__name__, "Planted"),
}


class AbstractRecord(models.Model):
    class Meta:
        abstract = True
        app_label = "testapp"


@pytest.mark.parametrize("evil", DISALLOWED.values(), ids=DISALLOWED.keys())
def test_a_signed_payload_naming_a_disallowed_global_is_refused(
    evil: Callable[[str], bytes], tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    body = evil(str(marker))
    key = "{dbperf}:entry:signed-by-us"
    assert "tabnanny" not in sys.modules
    for kind in (b"P", b"L"):
        blob = signing.sign(key, payload._PREFIX + kind + body)
        verified = signing.verify(key, blob)
        assert verified is not None  # correctly signed: the allowlist alone must refuse it
        with pytest.raises(pickle.UnpicklingError):
            payload.loads(verified)
    assert not marker.exists()
    assert "tabnanny" not in sys.modules  # a name in a payload never imports a module


def test_a_signed_disallowed_payload_read_from_the_cache_is_a_rejected_miss(
    library: list[Book], signed: dict[str, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    fresh = titles()
    ((key, blob),) = signed.items()
    evil = signing.sign(key, payload._PREFIX + b"P" + pickle.dumps(Planted()))
    with caplog.at_level(logging.WARNING, logger="django_dbperf"):
        replace_blob(key, blob, evil)
        assert queries(titles) == (fresh, 1)
    assert rejected() == 1
    (warning,) = verification_warnings(caplog)
    assert "signed, but builtins.exec is not something a cached result holds" in warning


def test_results_holding_other_classes_are_served_uncached(library: list[Book]) -> None:
    """Refused when pickled, so never stored (rather than stored, then refused on every read)."""

    @cached_as(Book)
    def shelf() -> dict[str, Any]:
        return {"count": Book.objects.count(), "label": Shelf("main")}

    assert queries(shelf)[1] == 1
    assert queries(shelf)[1] == 1
    assert rejected() == 0
    with pytest.raises(pickle.PicklingError, match=r"test_cache_signing\.Shelf is not something"):
        payload.dumps([Book.objects.first(), Shelf("main")])


class Shelf:
    def __init__(self, label: str) -> None:
        self.label = label


# --- (f) every kind of result still round trips through the signed cache -------------------


@pytest.mark.parametrize(
    "evaluate",
    [
        lambda qs: [(b.title, b.author.name) for b in qs.select_related("author")],
        lambda qs: [
            (b.title, sorted(t.name for t in b.tags.all()), [r.rating for r in b.reviews.all()])
            for b in qs.prefetch_related("tags", "reviews")
        ],
        lambda qs: [
            (b.title, [r.rating for r in b.good], b.review_count, b.doubled)
            for b in qs.annotate(
                review_count=Count("reviews"), doubled=F("pages") * 2
            ).prefetch_related(
                Prefetch(
                    "reviews",
                    Review.objects.filter(rating__gte=2, text__icontains="").order_by("-rating"),
                    to_attr="good",
                )
            )
        ],
        lambda qs: list(qs.values("title", "published", "author__name")),
        lambda qs: list(qs.values_list("title", "pages", named=True)),
        lambda qs: list(qs.values_list("pk", flat=True)),
        lambda qs: qs.aggregate(Avg("pages"), Max("published"), n=Count("id")),
        lambda qs: (qs.count(), qs.exists()),
        lambda qs: list(
            qs.annotate(price=Value(decimal.Decimal("9.99")), ref=Value(uuid.UUID(int=7))).values(
                "price", "ref"
            )
        ),
    ],
    ids=[
        "select_related",
        "prefetch_related",
        "Prefetch objects",
        "values",
        "named rows",
        "flat",
        "aggregate",
        "count and exists",
        "decimal and uuid values",
    ],
)
def test_every_kind_of_result_round_trips(
    library: list[Book], evaluate: Callable[[Any], Any]
) -> None:
    Book.objects.filter(pk=library[0].pk).update(published=datetime.date(2020, 2, 29))
    assert_served_from_the_cache(evaluate)
    assert rejected() == 0


def test_value_types_round_trip_through_the_unpickler() -> None:
    values = [
        datetime.datetime(2024, 3, 1, 12, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")),
        datetime.datetime(2024, 3, 1, 12, tzinfo=datetime.UTC),
        datetime.datetime(2024, 3, 1, 12, tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
        datetime.date(2024, 2, 29), datetime.time(1, 2, 3), datetime.timedelta(days=1, seconds=2),
        decimal.Decimal("1.10"), uuid.UUID(int=1), {1, 2}, frozenset({3}), bytearray(b"ab"),
        complex(1, 2), slice(1, 5), b"bytes", None, True, 1.5, {"json": [1, "two", None]},
    ]  # fmt: skip
    assert payload.loads(payload.dumps(values)) == values


def test_postgresql_range_values_round_trip(postgres: None, library: list[Book]) -> None:
    from django.contrib.postgres.fields import IntegerRangeField
    from django.db.backends.postgresql.psycopg_any import NumericRange

    def ranges() -> list[dict[str, Any]]:
        qs = Book.cache.plain().order_by("pk").cached()
        return list(
            qs.values("pk", span=Value(NumericRange(1, 5), output_field=IntegerRangeField()))
        )

    cold = ranges()
    assert queries(ranges) == (cold, 0)
    assert cold[0]["span"] == NumericRange(1, 5)
    assert rejected() == 0


def test_pickles_planted_in_versions_the_epoch_and_counters_never_run(
    library: list[Book], cache_alias: str
) -> None:
    # django-redis' get() and incr() unpickle a value that is not a number: every key the
    # store reads back (the epoch, versions, counters, the counters' subjects) is read raw.
    if cache_alias != "redis":
        pytest.skip("the local-memory cache lives in this process: nothing else writes to it")
    dbperf_cache.invalidate_all()
    titles = [b.title for b in Book.cache.plain().order_by("pk").cached()]
    dbperf_cache.stats()
    client, raw = STORE.redis()  # type: ignore[misc]
    evil = pickle.dumps(Planted())
    for key in raw.keys(client.make_key(STORE.key("*", "*"))):
        if b":entry:" not in key and b":lock:" not in key:
            raw.delete(key)
            raw.set(key, evil)  # strings everywhere, even where a set was
    Book.objects.update(pages=1)  # a bump over planted versions
    assert [b.title for b in Book.cache.plain().order_by("pk").cached()] == titles
    STORE.reset()
    dbperf_cache.stats()  # counters and their subjects, read back
    assert [b.title for b in Book.cache.plain().order_by("pk").cached()] == titles


def test_enum_members_in_a_prefetch_query_round_trip(library: list[Book]) -> None:
    # A Prefetch queryset filtered on a choices member holds it in its query.
    from tests.test_cache_encode import Colour

    values = [Colour.RED, Rating.TOP, [Colour.RED]]
    assert payload.loads(payload.dumps(values)) == values


class Rating(models.IntegerChoices):
    TOP = 5


class Tricky(enum.Enum):
    """An enum whose own lookup hook runs project code when unpickled: refused."""

    A = 1

    @classmethod
    def _missing_(cls, value: object) -> Tricky:
        RAN.append("missing")
        return cls.A


def test_an_enum_with_its_own_lookup_hooks_is_refused() -> None:
    with pytest.raises(pickle.PicklingError):
        payload.dumps([Tricky.A])
