"""Snippets, registered the way the Wagtail docs show."""

from __future__ import annotations

from wagtail.snippets.models import register_snippet

from tests.realclients.site.models import Author, BlogCategory

register_snippet(Author)
register_snippet(BlogCategory)
