"""``dbperf_cache stats|clear|warm``: cached querysets' counters, invalidation and warming."""

from __future__ import annotations

import json
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_dbperf import cache
from django_dbperf.conf import cache_configured, get_config

COLUMNS = (
    ("hit", "hits"),
    ("miss", "misses"),
    ("bypass", "served uncached"),
    ("invalidation", "invalidations"),
    ("rejected", "rejected"),
)
HOW_TO_REGISTER = (
    "No hot querysets are registered. Decorate a function without arguments that returns a "
    "cached queryset with @hot_queryset (from django_dbperf.cache) in a module the project "
    'imports (e.g. models.py), or list its dotted path in DBPERF["CACHE"]["WARM"].'
)


class Command(BaseCommand):
    help = (
        "Cached querysets: 'stats' (hits, misses, invalidations... of every process), 'clear' "
        "(invalidate by bumping versions, never a flush of the cache server) and 'warm' "
        "(evaluate the querysets registered as hot)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        subs = [
            actions.add_parser("stats", help="hit, miss... counters, per model and tag"),
            actions.add_parser("clear", help="invalidate a model's, a tag's or every entry"),
            actions.add_parser("warm", help="evaluate the hot querysets"),
        ]
        for sub in subs:
            sub.add_argument("--model", metavar="LABEL", help='a model label, "app_label.Model"')
            sub.add_argument("--tag", help="a tag given to cached(tags=...)")
            sub.add_argument("--format", choices=("text", "json"), default="text")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        self._require_cache(action)
        model, tag = self._model(options["model"]), self._tag(options["tag"])
        json_output = options["format"] == "json"
        if action == "stats":
            self._stats(model, tag, json_output)
        elif action == "clear":
            self._clear(model, tag, json_output)
        else:
            self._warm(model, tag, json_output)

    # --- arguments ----------------------------------------------------------------------------

    def _require_cache(self, action: str) -> None:
        if not cache_configured():
            raise CommandError(
                'Queryset caching is not set up: set DBPERF["CACHE"] = {"ALIAS": "<alias>"} with '
                "a django-redis cache (Valkey or Redis) of that alias in CACHES."
            )
        config = get_config()
        if action != "stats" and not (config["ENABLED"] and config["CACHE"]["ENABLED"]):
            raise CommandError(
                f"Queryset caching is switched off (DBPERF['ENABLED'] or DBPERF['CACHE']"
                f"['ENABLED'] is False), so '{action}' cannot reach the cache server: switch "
                "it on first."
            )

    def _model(self, label: str | None) -> str | None:
        if label is None:
            return None
        try:
            return str(apps.get_model(label)._meta.label)
        except (LookupError, ValueError):
            raise CommandError(
                f"Unknown model {label!r} (--model): give an installed model's label, "
                '"app_label.ModelName", e.g. "auth.User".'
            ) from None

    def _tag(self, tag: str | None) -> str | None:
        if tag is not None and not tag.strip():
            raise CommandError("--tag must name a tag, as given to cached(tags=[...]).")
        return tag

    def _write(self, data: Any) -> None:
        self.stdout.write(json.dumps(data, indent=2, sort_keys=True))

    # --- actions ------------------------------------------------------------------------------

    def _stats(self, model: str | None, tag: str | None, json_output: bool) -> None:
        found = cache.counters([model] if model else [], [tag] if tag else [])
        if json_output:
            self._write({**found, "subjects": dict(found["subjects"])})
        else:
            self.stdout.write("\n".join(_counters_lines(found)))

    def _clear(self, model: str | None, tag: str | None, json_output: bool) -> None:
        from django_dbperf.cache.store import STORE

        errors = STORE.errors
        done = []
        if model:
            cache.invalidate(model)
            done.append(f"every cached queryset that reads {model}")
        if tag:
            cache.invalidate_tags(tag)
            done.append(f"every cached queryset tagged {tag!r}")
        if not done:
            cache.invalidate_all()
            done.append("every cached queryset")
        if STORE.errors > errors:
            raise CommandError(
                "The cache server could not be reached (see the django_dbperf log), so nothing "
                "was invalidated: run clear again once it answers."
            )
        if json_output:
            self._write({"invalidated": {"model": model, "tag": tag, "all": not (model or tag)}})
        else:
            self.stdout.write("\n".join(f"Invalidated {what}." for what in done))

    def _warm(self, model: str | None, tag: str | None, json_output: bool) -> None:
        report = cache.warm(model, tag)
        if json_output:
            results = [vars(result) for result in report.results]
            self._write({"results": results, "ms": report.ms, "not_selected": report.undeclared})
        else:
            self.stdout.write("\n".join(self._warm_lines(report, model, tag)))
        if report.failed:
            names = ", ".join(result.name for result in report.failed)
            tried = _count(len(report.results), "hot queryset")
            raise CommandError(
                f"{len(report.failed)} of {tried} failed to warm: {names}. Fix them (the errors "
                "are above) and run warm again.",
                returncode=1,
            )

    def _warm_lines(
        self, report: cache.WarmReport, model: str | None, tag: str | None
    ) -> list[str]:
        if not report.registered:
            return [HOW_TO_REGISTER]
        lines = []
        for result in report.results:
            what = f"{result.name} ({result.model or 'model unknown'})"
            if result.error is not None:
                lines.append(f"FAILED {what} after {result.ms:,.1f} ms: {result.error}")
            else:
                rows = "" if result.rows is None else f"{result.rows:,} rows "
                lines.append(f"Warmed {what}: {rows}in {result.ms:,.1f} ms")
        if report.undeclared:
            lines.append(
                "Not selected, as they declare no model or tags to match: "
                f"{', '.join(report.undeclared)} (declare them with @hot_queryset(model=..., "
                "tags=[...]))."
            )
        if not report.results:
            wanted = " and ".join(
                f"{flag} {value}" for flag, value in (("--model", model), ("--tag", tag)) if value
            )
            known = _count(report.registered, "hot queryset")
            lines.insert(0, f"None of the {known} matches {wanted}.")
            return lines
        warmed = len(report.results) - len(report.failed)
        lines.append(
            f"{_count(len(report.results), 'hot queryset')} in {report.ms:,.1f} ms: "
            f"{warmed} warmed, {len(report.failed)} failed."
        )
        return lines


def _counters_lines(found: dict[str, Any]) -> list[str]:
    """``cache.counters()`` as a table, its total and the hit ratio."""
    names = [name for name, _ in found["subjects"]]
    width = max([len("model or tag"), *(len(name) for name in names)])
    header = "  ".join(title.rjust(max(len(title), 6)) for _, title in COLUMNS)
    lines = ["Cached querysets, counted by every process:", f"{'model or tag':<{width}}  {header}"]
    for name, counts in [*found["subjects"], ("total", found["totals"])]:
        cells = "  ".join(str(counts[event]).rjust(max(len(title), 6)) for event, title in COLUMNS)
        lines.append(f"{name:<{width}}  {cells}")
    if {name.startswith("tag:") for name in names} == {True, False}:
        lines.append("(A tag counts its models' reads again: the total adds up models only.)")
    totals, ratio = found["totals"], found["hit_ratio"]
    reads = totals["hit"] + totals["miss"]
    lines.append(
        "Hit ratio: no cached reads yet."
        if ratio is None
        else f"Hit ratio: {ratio:.1%} ({totals['hit']} of {reads} reads)."
    )
    return lines


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
