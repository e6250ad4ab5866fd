"""URLs of the optimized pages: each naive page's twin under ``/fast/``, named ``fast_<name>``.

They join the naive ones in the ``scheduler`` namespace (see ``example_project/urls.py``);
``urls.py`` keeps the naive pages only, which ``pages.NAIVE_PAGES`` lists one for one.
"""

from __future__ import annotations

from django.urls import path

from example_project.scheduler import fast_views

urlpatterns = [
    path("fast/", fast_views.dashboard, name="fast_dashboard"),
    path("cached/", fast_views.cached_dashboard, name="cached_dashboard"),
    path("fast/events/", fast_views.event_list, name="fast_event_list"),
    path("fast/events/<int:pk>/", fast_views.event_detail, name="fast_event_detail"),
    path("fast/workflows/<int:pk>/", fast_views.workflow_detail, name="fast_workflow_detail"),
    path("fast/logs/", fast_views.log_list, name="fast_log_list"),
    path("fast/api/events/", fast_views.api_events, name="fast_api_events"),
    path("fast/api/events/<int:pk>/", fast_views.api_event_detail, name="fast_api_event_detail"),
    path("fast/api/dashboard/", fast_views.api_dashboard, name="fast_api_dashboard"),
]
