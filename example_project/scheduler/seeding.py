"""Reproducible demo data for the scheduler app.

Everything comes from one ``random.Random(seed)`` and a fixed base datetime, so a seed always
produces the same rows (primary keys aside). Rows go in with ``bulk_create`` inside one
transaction, so a thousand events take a second or two even on SQLite.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.db import transaction

from example_project.scheduler.models import (
    Event,
    EventServer,
    EventVariable,
    Job,
    JobLog,
    Server,
    Tag,
    Workflow,
    WorkflowConnection,
    WorkflowNode,
)

BASE_TIME = datetime(2025, 1, 1, tzinfo=UTC)
BATCH_SIZE = 500

USER_COUNT = 20
SERVER_COUNT = 50
TAG_NAMES = [
    "analytics",
    "backup",
    "billing",
    "cleanup",
    "critical",
    "email",
    "etl",
    "experimental",
    "monitoring",
    "nightly",
    "production",
    "reports",
    "security",
    "staging",
    "sync",
]
COLORS = ["#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0"]
SERVER_ROLES = ["web", "worker", "db", "cache", "batch"]
VERBS = ["sync", "export", "import", "purge", "rebuild", "notify", "archive", "check"]
NOUNS = ["invoices", "users", "orders", "metrics", "reports", "sessions", "backups", "feeds"]
SCHEDULES = ["*/5 * * * *", "*/15 * * * *", "0 * * * *", "0 3 * * *", "30 2 * * 1", "0 0 1 * *"]
VARIABLES = {
    "API_URL": False,
    "TIMEOUT": False,
    "RETRIES": False,
    "BATCH_SIZE": False,
    "REGION": False,
    "LOG_LEVEL": False,
    "API_TOKEN": True,
    "DB_PASSWORD": True,
}
JOB_STATUSES = [Job.Status.SUCCEEDED, Job.Status.FAILED, Job.Status.RUNNING, Job.Status.QUEUED]
JOB_STATUS_WEIGHTS = [70, 15, 5, 10]
LOG_LEVELS = [JobLog.Level.DEBUG, JobLog.Level.INFO, JobLog.Level.WARNING, JobLog.Level.ERROR]
LOG_LEVEL_WEIGHTS = [20, 55, 15, 10]
CONDITIONS = [
    WorkflowConnection.Condition.SUCCESS,
    WorkflowConnection.Condition.FAILURE,
    WorkflowConnection.Condition.ALWAYS,
]
CONDITION_WEIGHTS = [70, 15, 15]


class DemoDataExists(Exception):
    """Raised when seeding would mix new demo rows with existing ones."""


@dataclass
class _Seeder:
    """Holds the random source and the rows built so far while one seed runs."""

    rng: random.Random
    counts: dict[str, int] = field(default_factory=dict)

    def moment(self, max_days: int) -> datetime:
        """A reproducible timestamp within ``max_days`` before the base time."""
        return BASE_TIME - timedelta(seconds=self.rng.randint(0, max_days * 86400))

    def save(self, key: str, model: type, rows: list) -> list:
        objects = model.objects.bulk_create(rows, batch_size=BATCH_SIZE)
        self.counts[key] = len(objects)
        return objects


def demo_usernames() -> list[str]:
    return [f"user{i:02d}" for i in range(1, USER_COUNT + 1)]


def demo_data_exists() -> bool:
    User = get_user_model()
    return Event.objects.exists() or User.objects.filter(username__in=demo_usernames()).exists()


def reset_demo() -> None:
    """Delete every scheduler row and the demo users, leaves first so each delete is cheap."""
    with transaction.atomic():
        for model in (JobLog, Job, WorkflowConnection, WorkflowNode, EventVariable, EventServer):
            model.objects.all().delete()
        Event.tags.through.objects.all().delete()
        for model in (Event, Workflow, Tag, Server):
            model.objects.all().delete()
        get_user_model().objects.filter(username__in=demo_usernames()).delete()


def seed_demo(events: int, seed: int = 42) -> dict[str, int]:
    """Create demo data around ``events`` events and return the number of rows per model."""
    if events < 1:
        raise ValueError("events must be at least 1")
    if demo_data_exists():
        raise DemoDataExists("demo data already exists; reset it first")
    seeder = _Seeder(random.Random(seed))
    with transaction.atomic():
        users = _seed_users(seeder)
        servers = _seed_servers(seeder, users)
        tags = _seed_tags(seeder)
        workflows = _seed_workflows(seeder, users, max(1, events // 20))
        event_rows = _seed_events(seeder, events, users, workflows)
        event_servers = _seed_event_servers(seeder, event_rows, servers)
        _seed_variables(seeder, event_rows)
        _seed_event_tags(seeder, event_rows, tags)
        jobs = _seed_jobs(seeder, event_rows, event_servers)
        _seed_logs(seeder, jobs)
        _seed_workflow_graph(seeder, workflows, event_rows)
    return seeder.counts


def _seed_users(seeder: _Seeder) -> list:
    User = get_user_model()
    rows = [
        User(
            username=name,
            email=f"{name}@example.com",
            # An unusable password written directly: make_password(None) would add randomness.
            password=UNUSABLE_PASSWORD_PREFIX,
            date_joined=seeder.moment(720),
        )
        for name in demo_usernames()
    ]
    return seeder.save("users", User, rows)


def _seed_servers(seeder: _Seeder, users: list) -> list[Server]:
    rng = seeder.rng
    rows = []
    for i in range(1, SERVER_COUNT + 1):
        name = f"{SERVER_ROLES[i % len(SERVER_ROLES)]}-{i:02d}"
        rows.append(
            Server(
                name=name,
                hostname=f"{name}.dc{rng.randint(1, 3)}.example.internal",
                ip_address=f"10.{rng.randint(0, 255)}.{i // 250}.{i % 250 + 1}",
                is_active=rng.random() < 0.9,
                owner=rng.choice(users),
                created_at=seeder.moment(365),
            )
        )
    return seeder.save("servers", Server, rows)


def _seed_tags(seeder: _Seeder) -> list[Tag]:
    rows = [Tag(name=name, color=seeder.rng.choice(COLORS)) for name in TAG_NAMES]
    return seeder.save("tags", Tag, rows)


def _seed_workflows(seeder: _Seeder, users: list, count: int) -> list[Workflow]:
    rng = seeder.rng
    rows = [
        Workflow(
            name=f"Workflow {i:03d}: {rng.choice(VERBS)} {rng.choice(NOUNS)}",
            description=f"Pipeline number {i} of the demo data.",
            owner=rng.choice(users),
            created_at=seeder.moment(365),
        )
        for i in range(1, count + 1)
    ]
    return seeder.save("workflows", Workflow, rows)


def _seed_events(
    seeder: _Seeder, count: int, users: list, workflows: list[Workflow]
) -> list[Event]:
    rng = seeder.rng
    rows = []
    for i in range(1, count + 1):
        enabled = rng.random() < 0.85
        rows.append(
            Event(
                name=f"{rng.choice(VERBS)}-{rng.choice(NOUNS)}-{i:05d}",
                owner=rng.choice(users),
                workflow=rng.choice(workflows) if rng.random() < 0.7 else None,
                schedule=rng.choice(SCHEDULES),
                enabled=enabled,
                priority=rng.randint(1, 9),
                created_at=seeder.moment(365),
                next_run_at=BASE_TIME + timedelta(minutes=rng.randint(1, 1440))
                if enabled
                else None,
            )
        )
    return seeder.save("events", Event, rows)


def _seed_event_servers(
    seeder: _Seeder, events: list[Event], servers: list[Server]
) -> dict[int, list[Server]]:
    """Link each event to 2-4 servers; returns the servers per event for the job seeding."""
    rng = seeder.rng
    rows = []
    chosen: dict[int, list[Server]] = {}
    for event in events:
        chosen[event.pk] = rng.sample(servers, rng.randint(2, 4))
        rows.extend(
            EventServer(
                event=event,
                server=server,
                enabled=rng.random() < 0.9,
                added_at=event.created_at + timedelta(minutes=rng.randint(0, 600)),
            )
            for server in chosen[event.pk]
        )
    seeder.save("event_servers", EventServer, rows)
    return chosen


def _seed_variables(seeder: _Seeder, events: list[Event]) -> None:
    rng = seeder.rng
    keys = list(VARIABLES)
    rows = [
        EventVariable(
            event=event,
            key=key,
            value=f"{rng.getrandbits(64):016x}"
            if VARIABLES[key]
            else f"value-{rng.randint(1, 999)}",
            is_secret=VARIABLES[key],
        )
        for event in events
        for key in rng.sample(keys, rng.randint(2, 5))
    ]
    seeder.save("event_variables", EventVariable, rows)


def _seed_event_tags(seeder: _Seeder, events: list[Event], tags: list[Tag]) -> None:
    rng = seeder.rng
    through = Event.tags.through
    rows = [
        through(event_id=event.pk, tag_id=tag.pk)
        for event in events
        for tag in rng.sample(tags, rng.randint(1, 3))
    ]
    seeder.save("event_tags", through, rows)


def _seed_jobs(
    seeder: _Seeder, events: list[Event], servers_by_event: dict[int, list[Server]]
) -> list[Job]:
    rng = seeder.rng
    rows = []
    for event in events:
        for _ in range(rng.randint(2, 3)):
            rows.append(_job(seeder, event, rng.choice(servers_by_event[event.pk])))
    return seeder.save("jobs", Job, rows)


def _job(seeder: _Seeder, event: Event, server: Server) -> Job:
    rng = seeder.rng
    status = rng.choices(JOB_STATUSES, JOB_STATUS_WEIGHTS)[0]
    started_at = seeder.moment(30)
    finished = status in (Job.Status.SUCCEEDED, Job.Status.FAILED)
    exit_code = 0 if status == Job.Status.SUCCEEDED else rng.randint(1, 127)
    return Job(
        event=event,
        server=server,
        status=status,
        started_at=started_at,
        finished_at=started_at + timedelta(seconds=rng.randint(1, 3600)) if finished else None,
        exit_code=exit_code if finished else None,
    )


def _seed_logs(seeder: _Seeder, jobs: list[Job]) -> None:
    rng = seeder.rng
    rows = []
    for job in jobs:
        for step in range(rng.randint(2, 4)):
            level = rng.choices(LOG_LEVELS, LOG_LEVEL_WEIGHTS)[0]
            rows.append(
                JobLog(
                    job=job,
                    level=level,
                    message=f"step {step + 1}: {level} from {job.server.hostname}",
                    created_at=job.started_at + timedelta(seconds=step * rng.randint(1, 120)),
                )
            )
    seeder.save("job_logs", JobLog, rows)


def _seed_workflow_graph(seeder: _Seeder, workflows: list[Workflow], events: list[Event]) -> None:
    """Give each workflow 5-10 nodes, mostly pointing at events, chained in order."""
    rng = seeder.rng
    members: dict[int, list[Event]] = {}
    for event in events:
        if event.workflow is not None:
            members.setdefault(event.workflow.pk, []).append(event)
    nodes_per_workflow = []
    node_rows = []
    for workflow in workflows:
        # Prefer the workflow's own events; a workflow nobody joined borrows any event.
        candidates = members.get(workflow.pk) or events
        nodes = [
            WorkflowNode(
                workflow=workflow,
                event=rng.choice(candidates) if rng.random() < 0.85 else None,
                name=f"Step {i + 1}",
                position_x=i * 200,
                position_y=rng.randint(0, 400),
            )
            for i in range(rng.randint(5, 10))
        ]
        nodes_per_workflow.append(nodes)
        node_rows.extend(nodes)
    seeder.save("workflow_nodes", WorkflowNode, node_rows)
    connections = [
        WorkflowConnection(
            workflow=source.workflow,
            source=source,
            target=target,
            condition=rng.choices(CONDITIONS, CONDITION_WEIGHTS)[0],
        )
        for nodes in nodes_per_workflow
        for source, target in pairwise(nodes)
    ]
    seeder.save("workflow_connections", WorkflowConnection, connections)
