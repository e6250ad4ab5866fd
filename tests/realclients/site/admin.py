"""The Django admin for articles: a naive site, a fixed one and an applied one.

The naive ``ArticleAdmin`` shows relations through methods, which Django's changelist does not
join for you, so every row loads its writer, publisher and tags. ``FixedArticleAdmin``, on its
own admin site at ``/django-admin-fixed/``, names them in ``list_select_related`` and prefetches
the tags. ``AppliedArticleAdmin``, at ``/django-admin-applied/``, is the naive one with the fixes
django_dbperf printed for it applied in ``get_queryset()`` (see ``applied.py``).
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from tests.realclients.site.applied import apply_fixes
from tests.realclients.site.models import Article, Comment, Publisher, Writer


class CommentInline(admin.TabularInline):
    model = Comment
    extra = 1


@admin.register(Article)
class ArticleAdmin(admin.ModelAdmin):
    list_display = ["title", "writer_name", "publisher_name", "tag_list"]
    inlines = [CommentInline]

    @admin.display(description="writer")
    def writer_name(self, article: Article) -> str:
        return article.writer.name

    @admin.display(description="publisher")
    def publisher_name(self, article: Article) -> str:
        return article.publisher.name

    @admin.display(description="tags")
    def tag_list(self, article: Article) -> str:
        return ", ".join(tag.name for tag in article.tags.all())


admin.site.register(Publisher)
admin.site.register(Writer)


class FixedArticleAdmin(ArticleAdmin):
    list_select_related = ["writer", "publisher"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Article]:
        return super().get_queryset(request).prefetch_related("tags")


fixed_site = admin.AdminSite(name="fixed_admin")
fixed_site.register(Article, FixedArticleAdmin)


class AppliedArticleAdmin(ArticleAdmin):
    def get_queryset(self, request: HttpRequest) -> QuerySet[Article]:
        return apply_fixes(super().get_queryset(request), "admin-changelist")


applied_site = admin.AdminSite(name="applied_admin")
applied_site.register(Article, AppliedArticleAdmin)
