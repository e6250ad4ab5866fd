"""Admin registrations for the scheduler models, as naive as the rest of the example."""

from __future__ import annotations

from django.contrib import admin

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


@admin.register(Server)
class ServerAdmin(admin.ModelAdmin):
    list_display = ["name", "hostname", "ip_address", "is_active", "owner", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "hostname"]


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ["name", "color"]
    search_fields = ["name"]


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "created_at"]
    search_fields = ["name"]


class EventVariableInline(admin.TabularInline):
    model = EventVariable
    extra = 0


class EventServerInline(admin.TabularInline):
    model = EventServer
    extra = 0


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "workflow", "schedule", "enabled", "priority", "tag_names"]
    list_filter = ["enabled", "priority"]
    search_fields = ["name"]
    inlines = [EventServerInline, EventVariableInline]

    @admin.display(description="Tags")
    def tag_names(self, obj: Event) -> str:
        # One query per row: the admin's own N+1, left in on purpose.
        return ", ".join(tag.name for tag in obj.tags.all())


@admin.register(EventServer)
class EventServerAdmin(admin.ModelAdmin):
    list_display = ["event", "server", "enabled", "added_at"]
    list_filter = ["enabled"]


@admin.register(EventVariable)
class EventVariableAdmin(admin.ModelAdmin):
    list_display = ["key", "event", "is_secret"]
    list_filter = ["is_secret"]
    search_fields = ["key"]


@admin.register(WorkflowNode)
class WorkflowNodeAdmin(admin.ModelAdmin):
    list_display = ["name", "workflow", "event", "position_x", "position_y"]


@admin.register(WorkflowConnection)
class WorkflowConnectionAdmin(admin.ModelAdmin):
    list_display = ["workflow", "source", "target", "condition"]
    list_filter = ["condition"]


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "event", "server", "status", "started_at", "finished_at", "exit_code"]
    list_filter = ["status"]


@admin.register(JobLog)
class JobLogAdmin(admin.ModelAdmin):
    list_display = ["job", "level", "message", "created_at"]
    list_filter = ["level"]
