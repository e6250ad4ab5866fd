"""``seed(n)``: the site a small real project has, with ``n`` more items in every list.

Called again, it adds ``n`` more blog posts and articles to the same site, so a test can compare
the query count of one page at two sizes.
"""

from __future__ import annotations

import datetime
import io
from dataclasses import dataclass

from django.contrib.auth.models import Group, Permission, User
from django.core.files.images import ImageFile
from PIL import Image as PillowImage
from wagtail.images.models import Image
from wagtail.models import Page, Site

from tests.realclients.site.models import (
    Article,
    Author,
    BlogCategory,
    BlogIndexPage,
    BlogPage,
    BlogPageAuthor,
    Comment,
    HomePage,
    Publisher,
    Writer,
)

PASSWORD = "password"
TAGS = ["django", "wagtail", "python", "postgres"]


@dataclass(frozen=True)
class Seeded:
    """The ids the page list needs to build its URLs."""

    home_id: int
    index_id: int
    post_id: int
    post_url: str
    article_id: int


def png(index: int, size: int = 16) -> ImageFile:
    """A tiny PNG made here (no network), a different colour per index."""
    buffer = io.BytesIO()
    colour = ((index * 53) % 256, (index * 97) % 256, (index * 151) % 256)
    PillowImage.new("RGB", (size, size), colour).save(buffer, format="PNG")
    return ImageFile(buffer, name=f"feed-{index}.png")


def _users() -> tuple[User, User]:
    admin = User.objects.filter(username="admin").first()
    if admin is None:
        admin = User.objects.create_superuser("admin", "admin@example.com", PASSWORD)
    editor = User.objects.filter(username="editor").first()
    if editor is None:
        editor = User.objects.create_user("editor", "editor@example.com", PASSWORD)
        # Wagtail's migrations create "Editors" with page, image and admin-access permissions.
        editors, _ = Group.objects.get_or_create(name="Editors")
        editors.permissions.add(
            *Permission.objects.filter(
                content_type__app_label="realsite",
                codename__in=["view_article", "change_article", "add_article"],
            )
        )
        editor.groups.add(editors)
    return admin, editor


def _home() -> HomePage:
    home = HomePage.objects.first()
    if home is not None:
        return home
    root = Page.get_first_root_node()
    # Replace the welcome page of Wagtail's initial migration, as a new project does.
    Page.objects.filter(depth=2, slug="home").delete()
    home = root.add_child(instance=HomePage(title="Home", slug="home", intro="Welcome."))
    site = Site.objects.filter(is_default_site=True).first() or Site(
        hostname="localhost", is_default_site=True
    )
    site.root_page = home
    site.save()
    return home


def _blog_index(home: HomePage) -> BlogIndexPage:
    index = BlogIndexPage.objects.first()
    if index is None:
        index = home.add_child(instance=BlogIndexPage(title="Blog", slug="blog", intro="News."))
    return index


def _add_posts(index: BlogIndexPage, n: int) -> None:
    authors = [Author.objects.get_or_create(name=name)[0] for name in ("Ada", "Grace")]
    categories = [
        BlogCategory.objects.get_or_create(slug=slug, defaults={"name": slug.title()})[0]
        for slug in ("news", "howto", "release")
    ]
    start = BlogPage.objects.count()
    for i in range(start, start + n):
        image = Image.objects.create(title=f"Feed image {i}", file=png(i))
        post = BlogPage(
            title=f"Post {i}",
            slug=f"post-{i}",
            date=datetime.date(2025, 1, 1) + datetime.timedelta(days=i),
            intro=f"The intro of post {i}.",
            body=f"<p>The body of post {i}.</p>",
            feed_image=image,
        )
        post.tags.add(TAGS[i % len(TAGS)], TAGS[(i + 1) % len(TAGS)])
        post.categories = [categories[i % 3], categories[(i + 1) % 3]]
        post.authors = [BlogPageAuthor(author=authors[i % 2])]
        index.add_child(instance=post)
        post.save_revision().publish()


def _add_articles(n: int, users: tuple[User, User]) -> None:
    publishers = [Publisher.objects.get_or_create(name=name)[0] for name in ("Acme", "Globex")]
    writers = [
        Writer.objects.get_or_create(name=name, defaults={"publisher": publisher})[0]
        for name, publisher in zip(("Ursula", "Terry"), publishers, strict=True)
    ]
    start = Article.objects.count()
    for i in range(start, start + n):
        article = Article.objects.create(
            title=f"Article {i}",
            body=f"The text of article {i}.",
            writer=writers[i % 2],
            publisher=publishers[(i + 1) % 2],
        )
        article.tags.add("news", f"topic-{i % 3}")
        Comment.objects.bulk_create(
            Comment(article=article, user=user, text=f"Comment by {user.username} on {i}.")
            for user in users
        )


def seed(n: int) -> Seeded:
    """Create the site if absent, then ``n`` more blog posts and ``n`` more articles."""
    users = _users()
    home = _home()
    index = _blog_index(home)
    _add_posts(index, n)
    _add_articles(n, users)
    post = BlogPage.objects.order_by("path").first()
    article = Article.objects.order_by("id").first()
    assert post is not None and article is not None, "seed(0) on an empty site: nothing to show"
    return Seeded(
        home_id=home.id,
        index_id=index.id,
        post_id=post.id,
        post_url=post.get_url() or "",
        article_id=article.id,
    )
