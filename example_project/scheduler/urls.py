"""URL names for the scheduler app's pages and JSON endpoints."""

from __future__ import annotations

from django.urls import path

from example_project.scheduler import views

app_name = "scheduler"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("events/", views.event_list, name="event_list"),
    path("events/<int:pk>/", views.event_detail, name="event_detail"),
    path("workflows/<int:pk>/", views.workflow_detail, name="workflow_detail"),
    path("logs/", views.log_list, name="log_list"),
    path("api/events/", views.api_events, name="api_events"),
    path("api/events/<int:pk>/", views.api_event_detail, name="api_event_detail"),
    path("api/dashboard/", views.api_dashboard, name="api_dashboard"),
]
