"""A project's own data-access helper, for the HIDE_IN_CALLSITES tests."""

from __future__ import annotations

from django.db.models.query import ModelIterable

from tests.testapp.models import Author, Restaurant


def author_named(name: str) -> Author:
    return Author.objects.get(name=name)  # helper-line


class SpecificPlaces(ModelIterable):  # type: ignore[type-arg]
    """Yields each place as its Restaurant row, loaded by a queryset of its own (as
    django-polymorphic and Wagtail's specific() do)."""

    def __iter__(self):  # type: ignore[no-untyped-def]
        places = list(super().__iter__())
        restaurants = Restaurant.objects.in_bulk([place.pk for place in places])
        for place in places:
            yield restaurants.get(place.pk, place)
