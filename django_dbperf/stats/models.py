"""The statistics tables: totals per statement shape, per hour, per view and line, and findings.

Every counter is additive, so processes and servers flushing into the same rows add up.
``calls``, ``total_ms`` and ``rows`` are estimates (sampled requests scaled by
``1 / SAMPLE_RATE``); ``sampled_calls`` and the histograms hold what was really measured.
"""

from __future__ import annotations

from django.db import models

from django_dbperf.stats import histogram


class Measured(models.Model):
    """Counters shared by a shape's totals, its hours and its (view, line) rows."""

    calls = models.FloatField(default=0.0, help_text="Estimated: sampled calls / SAMPLE_RATE.")
    sampled_calls = models.BigIntegerField(default=0)
    total_ms = models.FloatField(default=0.0, help_text="Estimated like calls.")
    max_ms = models.FloatField(default=0.0)
    rows = models.FloatField(
        null=True, blank=True, help_text="Estimated; None when the driver reported no count."
    )
    histogram = models.JSONField(default=dict, help_text="Sampled durations by log bucket.")
    # Computed at each flush (percentiles from the histogram), stored so pages can sort by them.
    mean_ms = models.FloatField(default=0.0)
    p50_ms = models.FloatField(null=True, blank=True)
    p95_ms = models.FloatField(null=True, blank=True)
    p99_ms = models.FloatField(null=True, blank=True)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()

    class Meta:
        abstract = True

    def percentile(self, fraction: float) -> float | None:
        return histogram.percentile(histogram.from_json(self.histogram), fraction, self.max_ms)

    def update_derived(self) -> None:
        """The mean and percentiles, after the counters changed."""
        self.mean_ms = self.total_ms / self.calls if self.calls else 0.0
        self.p50_ms, self.p95_ms, self.p99_ms = (self.percentile(f) for f in (0.5, 0.95, 0.99))


class QueryShape(Measured):
    """One statement shape (its fingerprint) on one database alias, since first seen."""

    alias = models.CharField(max_length=100)
    fingerprint_id = models.CharField(max_length=12, help_text="As logs and findings print it.")
    fingerprint = models.TextField(help_text="The normalised statement.")
    sql = models.TextField(help_text="One statement as sent, with placeholders.")
    params = models.JSONField(null=True, blank=True, help_text="Only with STORE_PARAMS, redacted.")
    is_select = models.BooleanField(default=False)
    nplusone_findings = models.BigIntegerField(default=0)
    duplicate_findings = models.BigIntegerField(default=0)
    # pg_stat_statements' id of this shape, learnt once by EXPLAIN (VERBOSE) (pg_statements.py)
    queryid = models.BigIntegerField(null=True, blank=True)
    queryid_note = models.CharField(max_length=255, blank=True, help_text="Why it is unknown.")

    class Meta:
        verbose_name = "statement"
        verbose_name_plural = "slow queries"
        constraints = [
            models.UniqueConstraint(fields=["alias", "fingerprint_id"], name="dbperf_shape_key")
        ]
        indexes = [
            models.Index(fields=["-total_ms"], name="dbperf_shape_total"),
            models.Index(fields=["-last_seen"], name="dbperf_shape_last_seen"),
            models.Index(fields=["-calls"], name="dbperf_shape_calls"),
            models.Index(fields=["-mean_ms"], name="dbperf_shape_mean"),
            models.Index(fields=["-p95_ms"], name="dbperf_shape_p95"),
            models.Index(fields=["queryid"], name="dbperf_shape_queryid"),
        ]

    def __str__(self) -> str:
        return f"{self.fingerprint_id} ({self.alias})"


class QueryShapeSearch(models.Model):
    """What the admin's search reads of a shape: its id and the names in its SQL (tables,
    columns), lower case (search.py). A narrow table of its own: searching 100,000 shapes then
    reads a few MB instead of every shape's SQL and histograms."""

    shape = models.OneToOneField(
        QueryShape, on_delete=models.CASCADE, primary_key=True, related_name="search"
    )
    text = models.TextField()

    class Meta:
        verbose_name = "statement search text"

    def __str__(self) -> str:
        return self.text[:80]


class ViewStat(models.Model):
    """A view's totals over every shape it issues: the dashboard's slowest views, and the
    admin's view filter, without summing the (view, line) rows on each page."""

    view = models.CharField(max_length=255, unique=True, help_text="resolver_match.view_name")
    calls = models.FloatField(default=0.0, help_text="Estimated queries.")
    total_ms = models.FloatField(default=0.0, help_text="Estimated database time.")
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()

    class Meta:
        verbose_name = "view"
        indexes = [models.Index(fields=["-total_ms"], name="dbperf_view_total")]

    def __str__(self) -> str:
        return self.view or "(no view)"


class QueryShapeHour(Measured):
    """A shape's totals in one hour: the history behind trends, kept RETENTION_DAYS."""

    shape = models.ForeignKey(QueryShape, on_delete=models.CASCADE, related_name="hours")
    hour = models.DateTimeField()

    class Meta:
        verbose_name = "query shape hour"
        constraints = [models.UniqueConstraint(fields=["shape", "hour"], name="dbperf_hour_key")]
        indexes = [models.Index(fields=["hour"], name="dbperf_hour_hour")]

    def __str__(self) -> str:
        return f"{self.shape_id} at {self.hour:%Y-%m-%d %H:00}"


class QueryShapeSite(Measured):
    """A shape as one view and one line issue it."""

    shape = models.ForeignKey(QueryShape, on_delete=models.CASCADE, related_name="sites")
    view = models.CharField(max_length=255, blank=True, help_text="resolver_match.view_name")
    callsite = models.CharField(max_length=500, blank=True, help_text="The project's line.")
    function = models.CharField(max_length=255, blank=True)
    framework = models.CharField(max_length=500, blank=True, help_text="The framework's line.")

    class Meta:
        verbose_name = "query shape site"
        constraints = [
            models.UniqueConstraint(
                fields=["shape", "view", "callsite", "framework"], name="dbperf_site_key"
            )
        ]
        indexes = [models.Index(fields=["view"], name="dbperf_site_view")]

    def __str__(self) -> str:
        return f"{self.view or '-'} at {self.callsite or self.framework or 'an unknown line'}"


class FindingStat(models.Model):
    """An N+1 or duplicate finding, as often as sampled requests reported it."""

    kind = models.CharField(max_length=32)
    fingerprint_id = models.CharField(max_length=12)
    fingerprint = models.TextField()
    callsite = models.CharField(max_length=500, blank=True)
    subject = models.CharField(max_length=255, blank=True, help_text="Relation or model.")
    view = models.CharField(max_length=255, blank=True)
    suggestion = models.TextField(blank=True)
    occurrences = models.BigIntegerField(default=0, help_text="Sampled requests it was in.")
    queries = models.BigIntegerField(default=0, help_text="Queries it cost in those requests.")
    total_ms = models.FloatField(default=0.0)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()

    class Meta:
        verbose_name = "finding"
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "fingerprint_id", "callsite", "subject", "view"],
                name="dbperf_finding_key",
            )
        ]
        indexes = [models.Index(fields=["-last_seen"], name="dbperf_finding_last_seen")]

    def __str__(self) -> str:
        return f"{self.kind} {self.subject or self.fingerprint_id} at {self.callsite or '-'}"


class PgStatement(models.Model):
    """A pg_stat_statements row, as this store has watched it: its counters grow by the
    difference between two readings, so nobody ever needs to reset the extension."""

    userid = models.BigIntegerField()
    dbid = models.BigIntegerField()
    queryid = models.BigIntegerField()
    toplevel = models.BooleanField(default=True)
    query = models.TextField()
    # Accumulated differences since this store began watching (never reset).
    calls = models.BigIntegerField(default=0)
    total_ms = models.FloatField(default=0.0)
    rows = models.BigIntegerField(default=0)
    shared_blks_hit = models.BigIntegerField(default=0)
    shared_blks_read = models.BigIntegerField(default=0)
    # The extension's cumulative values at the last reading, to take the next difference.
    read_calls = models.BigIntegerField(default=0)
    read_total_ms = models.FloatField(default=0.0)
    read_rows = models.BigIntegerField(default=0)
    read_shared_blks_hit = models.BigIntegerField(default=0)
    read_shared_blks_read = models.BigIntegerField(default=0)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField(help_text="When its counters last grew.")

    class Meta:
        verbose_name = "statement in pg_stat_statements"
        verbose_name_plural = "statements in pg_stat_statements"
        constraints = [
            models.UniqueConstraint(
                fields=["userid", "dbid", "queryid", "toplevel"], name="dbperf_pgstatement_key"
            )
        ]
        indexes = [
            models.Index(fields=["queryid"], name="dbperf_pgstatement_queryid"),
            models.Index(fields=["-total_ms"], name="dbperf_pgstatement_total"),
        ]

    def __str__(self) -> str:
        return f"queryid {self.queryid}"

    @property
    def mean_ms(self) -> float:
        return self.total_ms / self.calls if self.calls else 0.0


class PgStatementHour(models.Model):
    """A pg_stat_statements row's growth in one hour."""

    statement = models.ForeignKey(PgStatement, on_delete=models.CASCADE, related_name="hours")
    hour = models.DateTimeField()
    calls = models.BigIntegerField(default=0)
    total_ms = models.FloatField(default=0.0)
    rows = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = "pg_stat_statements hour"
        constraints = [
            models.UniqueConstraint(fields=["statement", "hour"], name="dbperf_pghour_key")
        ]
        indexes = [models.Index(fields=["hour"], name="dbperf_pghour_hour")]

    def __str__(self) -> str:
        return f"{self.statement_id} at {self.hour:%Y-%m-%d %H:00}"


class StoreCounter(models.Model):
    """Counters about the store itself: queries not kept (overflow), failed flushes."""

    name = models.CharField(max_length=64, unique=True)
    value = models.BigIntegerField(default=0)
    updated = models.DateTimeField()

    class Meta:
        verbose_name = "store counter"

    def __str__(self) -> str:
        return f"{self.name} = {self.value}"


__all__ = [
    "FindingStat",
    "PgStatement",
    "PgStatementHour",
    "QueryShape",
    "QueryShapeHour",
    "QueryShapeSearch",
    "QueryShapeSite",
    "StoreCounter",
    "ViewStat",
]
