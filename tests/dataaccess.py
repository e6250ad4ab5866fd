"""A project's own data-access helper, for the HIDE_IN_CALLSITES tests."""

from __future__ import annotations

from tests.testapp.models import Author


def author_named(name: str) -> Author:
    return Author.objects.get(name=name)  # helper-line
