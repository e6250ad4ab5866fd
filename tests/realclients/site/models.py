"""Models as a Wagtail and DRF user writes them: a blog of pages, and plain articles."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.db import models
from django.db.models import Prefetch
from django.http import HttpRequest
from modelcluster.contrib.taggit import ClusterTaggableManager
from modelcluster.fields import ParentalKey, ParentalManyToManyField
from taggit.managers import TaggableManager
from taggit.models import TaggedItemBase
from wagtail.admin.panels import FieldPanel, InlinePanel, MultiFieldPanel
from wagtail.api import APIField
from wagtail.fields import RichTextField
from wagtail.models import Orderable, Page
from wagtail.search import index

from tests.realclients.site.applied import apply_fixes

# -- Wagtail ------------------------------------------------------------------------------------


class HomePage(Page):
    intro = models.TextField(blank=True)

    content_panels = [*Page.content_panels, FieldPanel("intro")]
    subpage_types = ["realsite.BlogIndexPage"]


class Author(models.Model):
    """A snippet: who wrote a blog post."""

    name = models.CharField(max_length=100)
    bio = models.TextField(blank=True)

    panels = [FieldPanel("name"), FieldPanel("bio")]

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class BlogCategory(models.Model):
    """A snippet: the categories a post is filed under."""

    name = models.CharField(max_length=100)
    slug = models.SlugField(unique=True)

    panels = [FieldPanel("name"), FieldPanel("slug")]

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "blog categories"

    def __str__(self) -> str:
        return self.name


class BlogIndexPage(Page):
    intro = models.TextField(blank=True)

    content_panels = [*Page.content_panels, FieldPanel("intro")]
    subpage_types = ["realsite.BlogPage"]

    def posts(self, fixed: bool = False, applied: bool = False) -> Any:
        if applied:
            # The tutorial's queryset with the fixes django_dbperf printed for it (see applied.py).
            return apply_fixes(self.get_children().live().specific(), "site-blog-index")
        if not fixed:
            # What the Wagtail tutorial writes: every post then loads its image, renditions,
            # tags, categories and authors one query at a time.
            return self.get_children().live().specific()
        return (
            BlogPage.objects.child_of(self)
            .live()
            .select_related("feed_image")
            .prefetch_related(
                "tags",
                "categories",
                "feed_image__renditions",
                Prefetch("authors", queryset=BlogPageAuthor.objects.select_related("author")),
            )
        )

    def get_context(self, request: HttpRequest, *args: Any, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context(request, *args, **kwargs)
        context["posts"] = self.posts(
            fixed=bool(request.GET.get("fixed")), applied=bool(request.GET.get("applied"))
        )
        return context


class BlogPageTag(TaggedItemBase):
    content_object = ParentalKey(
        "realsite.BlogPage", related_name="tagged_items", on_delete=models.CASCADE
    )


class BlogPage(Page):
    date = models.DateField("post date")
    intro = models.CharField(max_length=250)
    body = RichTextField(blank=True)
    feed_image = models.ForeignKey(
        "wagtailimages.Image", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    tags = ClusterTaggableManager(through=BlogPageTag, blank=True)
    categories = ParentalManyToManyField("realsite.BlogCategory", blank=True)

    search_fields = [*Page.search_fields, index.SearchField("intro"), index.SearchField("body")]

    content_panels = [
        *Page.content_panels,
        MultiFieldPanel(
            [
                FieldPanel("date"),
                FieldPanel("tags"),
                FieldPanel("categories", widget=forms.CheckboxSelectMultiple),
            ],
            heading="Post information",
        ),
        FieldPanel("intro"),
        FieldPanel("body"),
        FieldPanel("feed_image"),
        InlinePanel("authors", label="Authors"),
    ]

    api_fields = [
        APIField("date"),
        APIField("intro"),
        APIField("tags"),
        APIField("feed_image"),
        APIField("categories"),
    ]

    parent_page_types = ["realsite.BlogIndexPage"]


class BlogPageAuthor(Orderable):
    page = ParentalKey(BlogPage, on_delete=models.CASCADE, related_name="authors")
    author = models.ForeignKey(Author, on_delete=models.CASCADE, related_name="+")

    panels = [FieldPanel("author")]


# -- DRF and the Django admin ---------------------------------------------------------------------


class Publisher(models.Model):
    name = models.CharField(max_length=100)

    def __str__(self) -> str:
        return self.name


class Writer(models.Model):
    name = models.CharField(max_length=100)
    publisher = models.ForeignKey(Publisher, on_delete=models.CASCADE, related_name="writers")

    def __str__(self) -> str:
        return self.name


class Article(models.Model):
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    writer = models.ForeignKey(Writer, on_delete=models.CASCADE, related_name="articles")
    publisher = models.ForeignKey(Publisher, on_delete=models.CASCADE, related_name="articles")
    published = models.DateTimeField(auto_now_add=True)
    tags = TaggableManager(blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.title


class Comment(models.Model):
    article = models.ForeignKey(Article, on_delete=models.CASCADE, related_name="comments")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    text = models.TextField()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.text[:40]
