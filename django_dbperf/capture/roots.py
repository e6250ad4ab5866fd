"""Which code is the project's own: where a callsite may point.

A file is the project's when its module belongs to one of the project's packages (the package
of the settings module and of ``ROOT_URLCONF``, plus dotted names in ``DBPERF["PROJECT_ROOTS"]``;
this holds for a project installed as a wheel), or when it lies under one of the project's
directories (the ``BASE_DIR`` setting, or the paths in ``DBPERF["PROJECT_ROOTS"]``) and not in
an installed package inside it (a virtualenv under ``BASE_DIR``). Without any directory known,
every file outside installed packages and the standard library is the project's.

Other code is framework code (Django's views, admin and template engine, Wagtail, DRF) unless it
is only plumbing between the project and the database: Django's ORM and utilities, the standard
library, django_dbperf itself and the modules in ``DBPERF["HIDE_IN_CALLSITES"]``. Those frames are
never named.
"""

from __future__ import annotations

import functools
import os
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

SKIP = 0
PROJECT = 1
FRAMEWORK = 2

# Between the project and the database; never a callsite, never "the framework". Besides
# Django's ORM: instrumentation that wraps it (profilers, tracers, other N+1 detectors).
_PLUMBING = (
    "django.db.",
    "django.utils.",
    "django.dispatch.",
    "django_dbperf.",
    "asgiref.",
    "nplusone.",
    "debug_toolbar.",
    "zeal.",
    "silk.",
    "sentry_sdk.",
    "ddtrace.",
    "opentelemetry.",
    "newrelic.",
    "scout_apm.",
    "elasticapm.",
)


@dataclass(frozen=True)
class Roots:
    packages: frozenset[str]  # top-level package names of the project
    directories: tuple[str, ...]  # each ends with a separator
    explicit_directories: tuple[str, ...]  # from PROJECT_ROOTS: win over installed packages
    hidden: tuple[str, ...]  # module prefixes, each ending in "."
    libraries: tuple[str, ...]  # installed packages' directories
    stdlib: tuple[str, ...]


def _directory(path: str) -> str:
    return os.path.join(os.path.realpath(path), "")


def _library_directories() -> tuple[tuple[str, ...], tuple[str, ...]]:
    paths = sysconfig.get_paths()
    stdlib = {paths["stdlib"], paths["platstdlib"]}
    libraries = {paths["purelib"], paths["platlib"]}
    libraries |= {path for path in sys.path if path.endswith(("site-packages", "dist-packages"))}
    return (
        tuple(sorted(_directory(path) for path in libraries if path)),
        tuple(sorted(_directory(path) for path in stdlib if path)),
    )


def _top(dotted: object) -> str | None:
    return dotted.split(".", 1)[0] if isinstance(dotted, str) and dotted else None


@functools.cache
def current() -> Roots:
    """The project's roots from the settings; cached until ``forget()``."""
    from django.conf import settings

    from django_dbperf.conf import get_config

    config = get_config()
    packages = {_top(settings.SETTINGS_MODULE), _top(getattr(settings, "ROOT_URLCONF", None))}
    explicit: list[str] = []
    for root in config["PROJECT_ROOTS"] or ():
        if isinstance(root, Path) or os.sep in str(root):
            explicit.append(_directory(str(root)))
        else:
            packages.add(_top(root))
    directories = list(explicit)
    base_dir = getattr(settings, "BASE_DIR", None)
    if isinstance(base_dir, str | Path) and not explicit:
        directories.append(_directory(str(base_dir)))
    libraries, stdlib = _library_directories()
    hidden = tuple(f"{module.rstrip('.')}." for module in config["HIDE_IN_CALLSITES"])
    return Roots(
        frozenset(package for package in packages if package),
        tuple(directories),
        tuple(explicit),
        hidden,
        libraries,
        stdlib,
    )


def forget() -> None:
    current.cache_clear()


def classify(filename: str, module: str) -> int:
    """``PROJECT``, ``FRAMEWORK`` or ``SKIP`` for code in ``filename`` (module ``module``)."""
    roots = current()
    dotted = f"{module}."
    if dotted.startswith(_PLUMBING) or dotted.startswith(roots.hidden):
        return SKIP
    if module.split(".", 1)[0] in roots.packages:
        return PROJECT
    if filename.startswith("<"):  # frozen modules, exec'd strings
        return SKIP
    path = os.path.realpath(filename) if os.path.isabs(filename) else filename
    if path.startswith(roots.explicit_directories):
        return PROJECT
    if path.startswith(roots.stdlib) and not path.startswith(roots.libraries):
        return SKIP
    if path.startswith(roots.libraries) or dotted.startswith("django."):
        return FRAMEWORK
    if not roots.directories or path.startswith(roots.directories):
        return PROJECT
    return FRAMEWORK


def short_path(path: str) -> str:
    """``path`` relative to the working directory when it is below it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path
    return path if relative.startswith("..") else relative
