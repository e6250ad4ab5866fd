"""``dbperf_explain FINGERPRINT_ID``: the plan of a statement from the statistics store.

The statement is read from the store, never from the command line, and explained as the admin
does (``explain/stored.py``): SELECTs only, in a rolled-back, read-only transaction.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from django_dbperf.analysis.sql_text import format_sql
from django_dbperf.conf import get_config
from django_dbperf.explain import ExplainRefused, Plan
from django_dbperf.explain.stored import explain_shape, plan_data
from django_dbperf.stats.models import QueryShape

WHERE_IDS_ARE = (
    "Statement ids are listed by dbperf_report and on the admin's slow queries page "
    "(/admin/django_dbperf/queryshape/)."
)


class Command(BaseCommand):
    help = (
        "EXPLAIN a statement the statistics store recorded, by its id (as logs, findings and "
        "the admin print it). SELECTs only, in a read-only transaction that is rolled back; "
        "--analyze runs it (needs STATS['EXPLAIN_ANALYZE'] and its stored values)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("fingerprint_id", metavar="FINGERPRINT_ID")
        parser.add_argument("--analyze", action="store_true", help="EXPLAIN ANALYZE: runs it")
        parser.add_argument("--database", help="the alias the statement was recorded on")
        parser.add_argument("--format", choices=("text", "json"), default="text")

    def handle(self, *args: Any, fingerprint_id: str, **options: Any) -> None:
        shape = self._shape(fingerprint_id.strip().lower(), options["database"])
        try:
            plan = explain_shape(shape, analyze=options["analyze"])
        except ExplainRefused as refused:
            raise CommandError(f"EXPLAIN refused: {refused}") from None
        if options["format"] == "json":
            data = {"fingerprint_id": shape.fingerprint_id, "sql": shape.sql, "alias": shape.alias}
            self.stdout.write(json.dumps({**data, **plan_data(plan)}, indent=2, default=str))
        else:
            self.stdout.write(self._text(shape, plan))

    def _shape(self, fingerprint_id: str, alias: str | None) -> QueryShape:
        if alias is not None and alias not in connections.settings:
            known = ", ".join(connections.settings)
            raise CommandError(f"Unknown database {alias!r}: use one of {known} (--database).")
        shapes = QueryShape.objects.using(get_config()["STATS"]["DATABASE"]).filter(
            fingerprint_id=fingerprint_id
        )
        if alias is not None:
            shapes = shapes.filter(alias=alias)
        found = list(shapes.defer("histogram").order_by("alias"))
        if len(found) == 1:
            return found[0]
        if found:
            aliases = ", ".join(shape.alias for shape in found)
            raise CommandError(
                f"Statement {fingerprint_id} was recorded on several databases ({aliases}): "
                f"name one with --database, e.g. --database {found[0].alias}."
            )
        where = f" on {alias!r}" if alias is not None else ""
        raise CommandError(
            f"No statement {fingerprint_id!r} in the statistics store{where}. {WHERE_IDS_ARE} "
            "A statement is stored once a sampled request ran it and the statistics were "
            "flushed (dbperf_flush)."
        )

    def _text(self, shape: QueryShape, plan: Plan) -> str:
        kind = "EXPLAIN ANALYZE" if plan.analyzed else "EXPLAIN"
        # "values": planned with the stored values (or none needed), not a generic plan.
        how = "with its values" if plan.method == "values" else plan.method
        lines = [f"{kind} of {shape.fingerprint_id} on {shape.alias!r} ({how}):"]
        lines += [format_sql(shape.sql), "", plan.text]
        if plan.note:
            lines += ["", f"Note: {plan.note}"]
        return "\n".join(lines)
