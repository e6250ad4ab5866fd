"""API views: the naive DRF queryset a tutorial starts with, the fixed one, the applied ones.

The "applied" views are the naive ones with the fixes django_dbperf printed for them applied as
printed (see ``applied.py``).
"""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet
from rest_framework.generics import ListAPIView
from wagtail.api.v2.views import PagesAPIViewSet

from tests.realclients.site.applied import apply_fixes
from tests.realclients.site.models import Article, Comment
from tests.realclients.site.serializers import ArticleSerializer


class ArticleList(ListAPIView):
    serializer_class = ArticleSerializer
    queryset = Article.objects.all()


class FixedArticleList(ListAPIView):
    serializer_class = ArticleSerializer

    def get_queryset(self) -> QuerySet[Article]:
        return Article.objects.select_related("writer__publisher", "publisher").prefetch_related(
            "tags", Prefetch("comments", queryset=Comment.objects.select_related("user"))
        )


class AppliedArticleList(ListAPIView):
    serializer_class = ArticleSerializer

    def get_queryset(self) -> QuerySet[Article]:
        return apply_fixes(Article.objects.all(), "drf-list")


class AppliedPagesAPIViewSet(PagesAPIViewSet):
    """Wagtail's pages endpoint, its queryset (of the ``?type=`` model) with the fixes applied."""

    def get_queryset(self) -> QuerySet[Any]:
        return apply_fixes(super().get_queryset(), "api-pages")
