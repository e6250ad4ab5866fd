"""What every django_dbperf admin page shares: read-only, and one permission to see it.

Anonymous users go to the admin's login page (Django's ``admin_view``); signed-in users who are
not active staff with ``django_dbperf.view_dbperf`` get 403 on every page and every POST
(the admin would otherwise send a signed-in non-staff user back to the login form).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path

from django_dbperf.models import VIEW_PERMISSION

View = Callable[..., HttpResponse]


def may_view(request: HttpRequest) -> bool:
    user = request.user
    return bool(user.is_active and user.is_staff and user.has_perm(VIEW_PERMISSION))


def refusing_the_unauthorised(view: View) -> View:
    """403 for a signed-in user without the permission; anonymous users pass on to the login."""

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.user.is_authenticated and not may_view(request):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return guarded


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """A model admin that shows and never changes, behind ``VIEW_PERMISSION``."""

    show_full_result_count = False  # no second COUNT(*) over a large table per page

    def has_module_permission(self, request: HttpRequest) -> bool:
        return may_view(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return may_view(request)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def guarded(self, view: View) -> View:
        return refusing_the_unauthorised(self.admin_site.admin_view(view))

    def url_name(self, suffix: str) -> str:
        meta = self.model._meta
        return f"{meta.app_label}_{meta.model_name}_{suffix}"

    def page_urls(self) -> list[URLPattern]:
        """The pages of this admin: the list, and whatever subclasses add."""
        return [path("", self.guarded(self.changelist_view), name=self.url_name("changelist"))]

    def get_urls(self) -> list[URLPattern]:
        return self.page_urls()


class PageAdmin(ReadOnlyAdmin):
    """An admin page that is not a table (an unmanaged model stands for it in the index)."""

    template: str = ""

    def context(self, request: HttpRequest) -> dict[str, Any]:
        raise NotImplementedError

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        from django.template.response import TemplateResponse

        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": self.model._meta.verbose_name.capitalize(),
            **self.context(request),
        }
        return TemplateResponse(request, self.template, context)
