"""Fixtures of the real-client suite: one seeded site per session, each page visited once."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator

import pytest
from django.conf import settings
from pytest_django import DjangoDbBlocker

from tests.realclients.pages import PageCase, Visit, visit
from tests.realclients.seed import Seeded, seed

# Items per list in the site every test sees; the growth tests add more inside a savepoint.
BASE_ITEMS = 3


@pytest.fixture(scope="session", autouse=True)
def _media_root() -> Iterator[None]:
    yield
    shutil.rmtree(settings.MEDIA_ROOT, ignore_errors=True)


@pytest.fixture(scope="session")
def seeded(django_db_setup: None, django_db_blocker: DjangoDbBlocker) -> Seeded:
    """The site, built once in the test database and kept for the whole session."""
    with django_db_blocker.unblock():
        return seed(BASE_ITEMS)


@pytest.fixture(scope="session")
def _visits() -> dict[str, Visit]:
    return {}


@pytest.fixture
def visited(db: None, seeded: Seeded, _visits: dict[str, Visit]) -> Callable[[PageCase], Visit]:
    """A page's warm visit; every page is requested once per session, whatever reads it."""

    def get(case: PageCase) -> Visit:
        if case.id not in _visits:
            _visits[case.id] = visit(case, seeded)
        return _visits[case.id]

    return get
