"""The scheduler's data model: servers, tags, workflows, events (job definitions), jobs and logs.

Deliberately the "before" picture: only the indexes Django adds by default (primary keys,
foreign keys, unique constraints), and no ordering on the big tables. ``objects`` stays the
default manager, so the naive pages stay naive; the optimized pages (``fast_views``) read through
the ``eager`` managers, whose profiles name the relations each page shows.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.db import models
from django.utils import timezone

from django_dbperf.cache import CachingEagerManager, CachingManager
from django_dbperf.managers import EagerManager

# Newest first; the pk breaks ties between equal timestamps, so that every query (naive or
# optimized) lists the same rows in the same order.
NEWEST_JOBS_FIRST = ("-started_at", "-pk")
NEWEST_LOGS_FIRST = ("-created_at", "-pk")


class Server(models.Model):
    name = models.CharField(max_length=100)
    hostname = models.CharField(max_length=255, unique=True)
    ip_address = models.GenericIPAddressField()
    is_active = models.BooleanField(default=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="servers"
    )
    # A default rather than auto_now_add so the seed can write reproducible timestamps.
    created_at = models.DateTimeField(default=timezone.now)

    objects = models.Manager()
    cache = CachingManager()  # for the cached dashboard

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.hostname


class Tag(models.Model):
    name = models.CharField(max_length=50, unique=True)
    color = models.CharField(max_length=7, default="#888888")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Workflow(models.Model):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="workflows"
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = models.Manager()
    # Nodes and connections come as Prefetch objects built from their own eager managers
    # (fast_views.workflow_detail): one query each, with their foreign keys joined.
    eager = EagerManager(profiles={"detail": ["owner"]}, default="detail")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Event(models.Model):
    """A scheduled job definition: what to run, when (a cron string) and on which servers."""

    name = models.CharField(max_length=200)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="events"
    )
    workflow = models.ForeignKey(
        Workflow, on_delete=models.SET_NULL, null=True, blank=True, related_name="events"
    )
    schedule = models.CharField(max_length=100, help_text='A cron string, e.g. "*/5 * * * *".')
    enabled = models.BooleanField(default=True)
    priority = models.PositiveSmallIntegerField(default=5)
    created_at = models.DateTimeField(default=timezone.now)
    next_run_at = models.DateTimeField(null=True, blank=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="events")
    servers = models.ManyToManyField(
        Server, through="EventServer", blank=True, related_name="events"
    )

    objects = models.Manager()
    # Eager loading, and cached() for the cached dashboard.
    eager = CachingEagerManager(
        profiles={
            "list": ["owner", "workflow", "tags", "servers", "variables"],
            "dashboard": ["owner", "tags"],
        },
        default="list",
    )

    def __str__(self) -> str:
        return self.name

    # The naive pages call these per event, one query each: their N+1s. The optimized querysets
    # load the same data for every event at once (including_counts(), a prefetch, whose rows
    # .count() counts without a query, or Prefetch(to_attr=...)) and these read it from there,
    # so both kinds of page share their templates and serializers.

    @property
    def server_count(self) -> int:
        return self._related_count("servers")

    @property
    def variable_count(self) -> int:
        return self._related_count("variables")

    def _related_count(self, relation: str) -> int:
        annotated: int | None = getattr(self, f"{relation}_count", None)
        if annotated is not None:
            return annotated
        return int(getattr(self, relation).count())

    def last_job(self) -> Job | None:
        """The most recent run: the ``latest_jobs`` prefetch if loaded, else one query per call."""
        latest: list[Job] | None = getattr(self, "latest_jobs", None)
        if latest is not None:
            return latest[0] if latest else None
        return self.jobs.order_by(*NEWEST_JOBS_FIRST).first()

    def jobs_newest_first(self) -> Iterable[Job]:
        """Every run, newest first: the ``newest_jobs`` prefetch when there is one, else a query."""
        prefetched: list[Job] | None = getattr(self, "newest_jobs", None)
        if prefetched is not None:
            return prefetched
        return self.jobs.order_by(*NEWEST_JOBS_FIRST)


class EventServer(models.Model):
    """An event-server link: the event runs on this server while the link is enabled."""

    event = models.ForeignKey(Event, on_delete=models.CASCADE)
    server = models.ForeignKey(Server, on_delete=models.CASCADE)
    enabled = models.BooleanField(default=True)
    added_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["event", "server"], name="scheduler_unique_event_server"
            )
        ]

    def __str__(self) -> str:
        return f"{self.event_id} on {self.server_id}"


class EventVariable(models.Model):
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="variables")
    key = models.CharField(max_length=100)
    value = models.TextField(blank=True)
    is_secret = models.BooleanField(default=False)

    class Meta:
        ordering = ["key"]
        constraints = [
            models.UniqueConstraint(fields=["event", "key"], name="scheduler_unique_event_variable")
        ]

    def __str__(self) -> str:
        return self.key

    @property
    def display_value(self) -> str:
        # Secrets are never shown on pages or in the API.
        return "********" if self.is_secret else self.value


class WorkflowNode(models.Model):
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="nodes")
    event = models.ForeignKey(
        Event, on_delete=models.SET_NULL, null=True, blank=True, related_name="workflow_nodes"
    )
    name = models.CharField(max_length=200)
    position_x = models.IntegerField(default=0)
    position_y = models.IntegerField(default=0)

    objects = models.Manager()
    eager = EagerManager(profiles={"graph": ["event__owner"]}, default="graph")

    def __str__(self) -> str:
        return self.name


class WorkflowConnection(models.Model):
    class Condition(models.TextChoices):
        SUCCESS = "success", "On success"
        FAILURE = "failure", "On failure"
        ALWAYS = "always", "Always"

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="connections")
    source = models.ForeignKey(WorkflowNode, on_delete=models.CASCADE, related_name="outgoing")
    target = models.ForeignKey(WorkflowNode, on_delete=models.CASCADE, related_name="incoming")
    condition = models.CharField(
        max_length=10, choices=Condition.choices, default=Condition.SUCCESS
    )

    objects = models.Manager()
    eager = EagerManager(profiles={"graph": ["source", "target"]}, default="graph")

    def __str__(self) -> str:
        return f"{self.source_id} -> {self.target_id} ({self.condition})"


class Job(models.Model):
    """One run of an event on one server."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="jobs")
    server = models.ForeignKey(Server, on_delete=models.CASCADE, related_name="jobs")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)

    objects = models.Manager()
    # The logs come as a Prefetch ordered by pk (fast_views), so they read as they were written.
    eager = CachingEagerManager(profiles={"detail": ["server"]}, default="detail")

    def __str__(self) -> str:
        return f"Job {self.pk} ({self.status})"


class JobLog(models.Model):
    class Level(models.TextChoices):
        DEBUG = "debug", "Debug"
        INFO = "info", "Info"
        WARNING = "warning", "Warning"
        ERROR = "error", "Error"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="logs")
    level = models.CharField(max_length=10, choices=Level.choices, default=Level.INFO)
    message = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    objects = models.Manager()
    eager = EagerManager(profiles={"list": ["job__event", "job__server"]}, default="list")

    def __str__(self) -> str:
        return f"[{self.level}] {self.message[:50]}"
