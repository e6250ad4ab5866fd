"""Pieces the benchmark scripts share: package look-ups, an in-file Django app, quantiles and
paired ratios."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import statistics
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def version_of(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def register_app_module(label: str, path: Path) -> str:
    """An importable, file-less app module for in-file models; returns the AppConfig path."""
    from django.apps import AppConfig

    module = types.ModuleType(label)
    module.__path__ = []  # a package with no submodules (so no models.py is looked for)

    class BenchConfig(AppConfig):
        name = label
        default_auto_field = "django.db.models.AutoField"

    BenchConfig.label = label
    BenchConfig.path = str(path)
    module.BenchConfig = BenchConfig  # type: ignore[attr-defined]
    sys.modules[label] = module
    return f"{label}.BenchConfig"


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Paired:
    """A variant against its baseline, round by round: the median ratio with its quartiles,
    and the median difference (in the samples' unit)."""

    ratio: float
    ratio_p25: float
    ratio_p75: float
    diff: float


def paired(samples: list[float], baseline: list[float]) -> Paired:
    pairs = list(zip(samples, baseline, strict=True))
    ratios = [value / base for value, base in pairs]
    return Paired(
        statistics.median(ratios),
        quantile(ratios, 0.25),
        quantile(ratios, 0.75),
        statistics.median([value - base for value, base in pairs]),
    )


def noop() -> None:
    pass


def author_book_models(label: str, *managers: str) -> tuple[Any, Any]:
    """``Author`` (name, email) and ``Book`` (title, author, year, pages) in app ``label``,
    after ``django.setup()``. Each name in ``managers`` becomes a ``CachingManager`` next to
    the plain ``objects``."""
    from django.db import models

    def model(name: str, fields: dict[str, Any], shown: str) -> Any:
        attributes: dict[str, Any] = {
            "__module__": label,
            "Meta": type("Meta", (), {"app_label": label}),
            "__str__": lambda self: str(getattr(self, shown)),
            **fields,
        }
        if managers:
            from django_dbperf.cache import CachingManager

            attributes["objects"] = models.Manager()
            attributes.update({manager: CachingManager() for manager in managers})
        return type(name, (models.Model,), attributes)

    author = model(
        "Author",
        {"name": models.CharField(max_length=100), "email": models.CharField(max_length=100)},
        "name",
    )
    book = model(
        "Book",
        {
            "title": models.CharField(max_length=200),
            "author": models.ForeignKey(author, related_name="books", on_delete=models.CASCADE),
            "year": models.IntegerField(),
            "pages": models.IntegerField(),
        },
        "title",
    )
    return author, book
