"""A small library catalogue covering every relation kind the features are tested on."""

from __future__ import annotations

import uuid

from django.contrib.contenttypes.fields import GenericForeignKey, GenericRelation
from django.contrib.contenttypes.models import ContentType
from django.contrib.postgres.fields import ArrayField, DateTimeRangeField, IntegerRangeField
from django.db import models

from django_dbperf.cache import CachingManager, CachingManagerMixin, CachingQuerySetMixin
from django_dbperf.managers import EagerManager, EagerManagerMixin, EagerQuerySet


class LibraryQuerySet(CachingQuerySetMixin, EagerQuerySet):
    """Cached and eager-loading at once: the two mixins compose."""


class LibraryManager(
    CachingManagerMixin,
    EagerManagerMixin,
    models.Manager.from_queryset(LibraryQuerySet),  # type: ignore[misc]
):
    pass


class AuthorQuerySet(EagerQuerySet):
    """Profiles declared on the QuerySet class, for QuerySet.as_manager()."""

    eager_profiles = {"detail": ["profile", "books__tags"]}

    def named(self, name: str) -> AuthorQuerySet:
        return self.filter(name=name)


class ReviewQuerySet(EagerQuerySet):
    def good(self) -> ReviewQuerySet:
        return self.filter(rating__gte=4)


class ReviewManager(EagerManagerMixin, models.Manager.from_queryset(ReviewQuerySet)):  # type: ignore[misc]
    """A project's own manager and QuerySet, with eager loading mixed in."""


class Publisher(models.Model):
    name = models.CharField(max_length=100)

    def __str__(self) -> str:
        return self.name


class Author(models.Model):
    name = models.CharField(max_length=100)
    email = models.EmailField(blank=True)

    objects = models.Manager()
    with_profiles = AuthorQuerySet.as_manager()
    cache = CachingManager()

    def __str__(self) -> str:
        return self.name


class AuthorProfile(models.Model):
    author = models.OneToOneField(Author, on_delete=models.CASCADE, related_name="profile")
    bio = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"Profile of {self.author_id}"


class Tag(models.Model):
    name = models.CharField(max_length=50, unique=True)

    objects = models.Manager()
    cache = CachingManager()

    def __str__(self) -> str:
        return self.name


class Book(models.Model):
    title = models.CharField(max_length=200)
    summary = models.TextField(blank=True)
    published = models.DateField(null=True, blank=True)
    pages = models.PositiveIntegerField(default=0)
    author = models.ForeignKey(Author, on_delete=models.CASCADE, related_name="books")
    publisher = models.ForeignKey(
        Publisher, on_delete=models.SET_NULL, null=True, blank=True, related_name="books"
    )
    tags = models.ManyToManyField(Tag, related_name="books", blank=True)
    notes = GenericRelation("Note")

    objects = models.Manager()
    eager = EagerManager(
        profiles={
            "list": ["author", "publisher"],
            "detail": ["author__profile", "publisher", "tags", "reviews", "notes"],
        },
        default="list",
    )
    peers = EagerManager(fetch_mode="FETCH_PEERS")
    cache = LibraryManager(profiles={"list": ["author"]})

    def __str__(self) -> str:
        return self.title


class Review(models.Model):
    book = models.ForeignKey(Book, on_delete=models.CASCADE, related_name="reviews")
    rating = models.PositiveSmallIntegerField()
    text = models.TextField(blank=True)

    objects = models.Manager()
    eager = ReviewManager(profiles={"list": ["book__author"]}, default="list")

    def __str__(self) -> str:
        return f"{self.rating}/5 for {self.book_id}"


class Note(models.Model):
    """Attached to anything through a generic foreign key (Book.notes is its generic relation)."""

    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_id = models.PositiveIntegerField()
    target = GenericForeignKey("content_type", "object_id")
    text = models.TextField()

    def __str__(self) -> str:
        return self.text


# --- The differential cache test's models (tests/test_cache_differential.py) -------------------
# A field of every kind a cached queryset can filter on, relations with every on_delete the cache
# must see, and names drawn from a tiny alphabet so that instances share __str__ on purpose.


class DiffColor(models.TextChoices):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"


class DiffLevel(models.IntegerChoices):
    LOW = 1
    MIDDLE = 2
    HIGH = 3


class DiffOwner(models.Model):
    name = models.CharField(max_length=200)

    objects = models.Manager()
    cache = CachingManager()

    def __str__(self) -> str:
        return self.name


class DiffLabel(models.Model):
    name = models.CharField(max_length=200)

    objects = models.Manager()
    cache = CachingManager()

    def __str__(self) -> str:
        return self.name


class DiffItem(models.Model):
    name = models.CharField(max_length=200, blank=True)
    body = models.TextField(blank=True)
    number = models.IntegerField(default=0)
    big_number = models.BigIntegerField(default=0)
    price = models.DecimalField(max_digits=12, decimal_places=3, default=0)
    ratio = models.FloatField(default=0.0)
    flag = models.BooleanField(default=False)
    maybe = models.IntegerField(null=True, blank=True)
    note = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001  # None != ""
    data = models.JSONField(null=True, blank=True)
    blob = models.BinaryField(default=b"", blank=True)
    uid = models.UUIDField(default=uuid.uuid4)
    day = models.DateField(null=True, blank=True)
    moment = models.DateTimeField(null=True, blank=True)
    clock = models.TimeField(null=True, blank=True)
    span = models.DurationField(null=True, blank=True)
    color = models.CharField(max_length=10, choices=DiffColor.choices, default=DiffColor.RED)
    level = models.IntegerField(choices=DiffLevel.choices, default=DiffLevel.LOW)
    owner = models.ForeignKey(DiffOwner, on_delete=models.CASCADE, related_name="items")
    sponsor = models.ForeignKey(
        DiffOwner, on_delete=models.SET_NULL, null=True, blank=True, related_name="sponsored"
    )
    labels = models.ManyToManyField(DiffLabel, related_name="items", blank=True)

    objects = models.Manager()
    cache = CachingManager()

    class Meta:
        # Spares system checks a query to ask SQLite whether it has JSON (a check run outside
        # a database test must not connect).
        required_db_features = {"supports_json_field"}

    def __str__(self) -> str:
        return self.name


class DiffSpecialItem(DiffItem):
    """Multi-table inheritance: its rows live in two tables."""

    extra = models.CharField(max_length=200, blank=True)

    objects = models.Manager()
    cache = CachingManager()


class DiffPart(models.Model):
    """Deleted by the database itself when its owner is (Django 6.1's DB_CASCADE; a plain
    CASCADE on Django 5.2, which has no database-level on_delete)."""

    owner = models.ForeignKey(
        DiffOwner, on_delete=getattr(models, "DB_CASCADE", models.CASCADE), related_name="parts"
    )
    name = models.CharField(max_length=200, blank=True)
    number = models.IntegerField(default=0)

    objects = models.Manager()
    cache = CachingManager()

    def __str__(self) -> str:
        return self.name


class DiffNote(models.Model):
    """Points at a multi-table child: reading its target joins the parent's table too."""

    special = models.ForeignKey(DiffSpecialItem, on_delete=models.CASCADE, related_name="notes")
    text = models.CharField(max_length=200, blank=True)

    objects = models.Manager()
    cache = CachingManager()

    def __str__(self) -> str:
        return self.text


class DiffPgItem(models.Model):
    """PostgreSQL-only fields: its table is only created on PostgreSQL."""

    numbers = ArrayField(models.IntegerField(), default=list, blank=True)
    words = ArrayField(models.CharField(max_length=50), default=list, blank=True)
    window = IntegerRangeField(null=True, blank=True)
    period = DateTimeRangeField(null=True, blank=True)

    objects = models.Manager()
    cache = CachingManager()

    class Meta:
        required_db_vendor = "postgresql"

    def __str__(self) -> str:
        return f"{self.numbers} {self.words}"


# --- Cache dependencies (tests/test_cache_dependencies.py) -------------------------------------
# Tables the cache cannot see change from the statements alone: a database view (unmanaged), a
# table a trigger writes, multi-table inheritance, and (Django 6.1) database-level on_delete.


class Sale(models.Model):
    """Read by the SaleSummary view; on PostgreSQL a test's trigger adds each sale to SaleTotal."""

    amount = models.IntegerField()

    objects = CachingManager()

    def __str__(self) -> str:
        return f"Sale of {self.amount}"


class SaleTotal(models.Model):
    """Written only by a trigger on Sale's table (created by a PostgreSQL test)."""

    total = models.IntegerField(default=0)

    objects = CachingManager()

    def __str__(self) -> str:
        return f"Total {self.total}"


class SaleSummary(models.Model):
    """A database view over Sale's table, created by the tests: Django has no table for it."""

    sales = models.IntegerField()
    total = models.IntegerField()

    objects = CachingManager()

    class Meta:
        managed = False
        db_table = "testapp_salesummary"

    def __str__(self) -> str:
        return f"{self.sales} sales, {self.total} in all"


class Place(models.Model):
    name = models.CharField(max_length=100)

    objects = CachingManager()

    def __str__(self) -> str:
        return self.name


class Chef(models.Model):
    name = models.CharField(max_length=100)

    objects = CachingManager()

    def __str__(self) -> str:
        return self.name


class Restaurant(Place):
    """A multi-table child (as every Wagtail page type is): its rows span two tables."""

    serves_pizza = models.BooleanField(default=False)
    chef = models.ForeignKey(
        Chef, on_delete=models.CASCADE, null=True, blank=True, related_name="restaurants"
    )

    objects = CachingManager()


class Pizzeria(Restaurant):
    """A proxy of a multi-table child."""

    class Meta:
        proxy = True


class Dish(models.Model):
    restaurant = models.ForeignKey(Restaurant, on_delete=models.CASCADE, related_name="dishes")
    name = models.CharField(max_length=100)

    objects = CachingManager()

    def __str__(self) -> str:
        return self.name


class Booking(models.Model):
    """Forward foreign keys to a multi-table child and to a proxy of one."""

    restaurant = models.ForeignKey(Restaurant, on_delete=models.CASCADE, related_name="bookings")
    pizzeria = models.ForeignKey(
        Pizzeria, on_delete=models.CASCADE, null=True, blank=True, related_name="pizza_bookings"
    )

    objects = CachingManager()

    def __str__(self) -> str:
        return f"Booking at {self.restaurant_id}"


class Guide(models.Model):
    name = models.CharField(max_length=100)
    restaurants = models.ManyToManyField(Restaurant, related_name="guides", blank=True)

    objects = CachingManager()

    def __str__(self) -> str:
        return self.name


if hasattr(models, "DB_CASCADE"):  # Django 6.1: the database applies on_delete by itself

    class Shelf(models.Model):
        name = models.CharField(max_length=100)

        objects = CachingManager()

        def __str__(self) -> str:
            return self.name

    class ShelfItem(models.Model):
        shelf = models.ForeignKey(Shelf, on_delete=models.DB_CASCADE, related_name="items")

        objects = CachingManager()

        def __str__(self) -> str:
            return f"Item on {self.shelf_id}"

    class ItemLabel(models.Model):
        """A database cascade's own database cascade: deleting a shelf deletes these too."""

        item = models.ForeignKey(ShelfItem, on_delete=models.DB_CASCADE, related_name="labels")

        objects = CachingManager()

        def __str__(self) -> str:
            return f"Label of {self.item_id}"

    class ShelfNote(models.Model):
        shelf = models.ForeignKey(
            Shelf, on_delete=models.DB_SET_NULL, null=True, related_name="notes"
        )

        objects = CachingManager()

        def __str__(self) -> str:
            return f"Note on {self.shelf_id}"

    class ShelfSign(models.Model):
        shelf = models.ForeignKey(
            Shelf, on_delete=models.DB_SET_DEFAULT, null=True, db_default=None, related_name="signs"
        )

        objects = CachingManager()

        def __str__(self) -> str:
            return f"Sign on {self.shelf_id}"
