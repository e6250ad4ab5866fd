"""A small library catalogue covering every relation kind the features are tested on."""

from __future__ import annotations

from django.contrib.contenttypes.fields import GenericForeignKey, GenericRelation
from django.contrib.contenttypes.models import ContentType
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
