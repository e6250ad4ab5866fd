"""Which optional extra of the django-dbperf distribution provides which module.

The core needs only Django. A feature whose module is missing says which extra installs it
(``missing("advisor", ...)``), never a bare ``ModuleNotFoundError``. Availability is looked up
with ``find_spec``, never by importing: nplusone's Django module patches the ORM as it loads.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured

DISTRIBUTION = "django-dbperf"


@dataclass(frozen=True)
class Extra:
    name: str  # the extra: pip install "django-dbperf[name]"
    module: str  # the top-level module it provides
    package: str  # the distribution that module comes from, as people know it


EXTRAS: dict[str, Extra] = {
    extra.name: extra
    for extra in (
        Extra("postgres", "psycopg", "psycopg 3"),
        Extra("redis", "django_redis", "django-redis"),
        Extra("toolbar", "debug_toolbar", "django-debug-toolbar"),
        Extra("nplusone", "nplusone", "nplusone"),
        Extra("advisor", "pglast", "pglast"),
    )
}


class MissingExtra(ImproperlyConfigured):
    """A feature was used without the extra that provides its module."""


def install_command(extra: str) -> str:
    """What to run to get ``extra``: ``pip install "django-dbperf[advisor]"``."""
    return f'pip install "{DISTRIBUTION}[{EXTRAS[extra].name}]"'


def available(extra: str) -> bool:
    """Whether the module ``extra`` provides can be imported (without importing it)."""
    module = EXTRAS[extra].module
    if module in sys.modules:  # imported already, or blocked with None
        return sys.modules[module] is not None
    return importlib.util.find_spec(module) is not None


def missing(extra: str, feature: str) -> str | None:
    """Why ``feature`` cannot run, naming the extra to install; None when it can.

    ``feature`` is the sentence's subject, e.g. "The index advisor (dbperf_indexes suggest)".
    """
    if available(extra):
        return None
    needed = EXTRAS[extra]
    return (
        f"{feature} needs {needed.package} (module {needed.module!r}), which is not installed. "
        f"Install it with django-dbperf's {extra!r} extra: {install_command(extra)}"
    )


def require(extra: str, feature: str) -> None:
    """Raise ``MissingExtra`` (an ``ImproperlyConfigured``) naming the extra ``feature`` needs."""
    problem = missing(extra, feature)
    if problem is not None:
        raise MissingExtra(problem)
