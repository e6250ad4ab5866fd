"""URLs of the real-client project, laid out as Wagtail's project template lays them out."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from wagtail import urls as wagtail_urls
from wagtail.admin import urls as wagtailadmin_urls
from wagtail.api.v2.router import WagtailAPIRouter
from wagtail.api.v2.views import PagesAPIViewSet
from wagtail.documents import urls as wagtaildocs_urls
from wagtail.images.api.v2.views import ImagesAPIViewSet

from tests.realclients.site import views
from tests.realclients.site.admin import applied_site, fixed_site

api_router = WagtailAPIRouter("wagtailapi")
api_router.register_endpoint("pages", PagesAPIViewSet)
api_router.register_endpoint("images", ImagesAPIViewSet)
# After "pages": the router links a page to the first endpoint of its model.
api_router.register_endpoint("pages-applied", views.AppliedPagesAPIViewSet)

urlpatterns = [
    path("django-admin/", admin.site.urls),
    path("django-admin-fixed/", fixed_site.urls),
    path("django-admin-applied/", applied_site.urls),
    path("drf/articles/", views.ArticleList.as_view(), name="article-list"),
    path("drf/articles/fixed/", views.FixedArticleList.as_view(), name="article-list-fixed"),
    path("drf/articles/applied/", views.AppliedArticleList.as_view(), name="article-list-applied"),
    path("admin/", include(wagtailadmin_urls)),
    path("documents/", include(wagtaildocs_urls)),
    path("api/v2/", api_router.urls),
    # Wagtail's page serving, last: it takes every other path.
    path("", include(wagtail_urls)),
]
