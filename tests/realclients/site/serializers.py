"""Nested DRF serializers: article -> writer -> publisher, comments -> user, tags."""

from __future__ import annotations

from django.contrib.auth.models import User
from rest_framework import serializers

from tests.realclients.site.models import Article, Comment, Publisher, Writer


class PublisherSerializer(serializers.ModelSerializer):
    class Meta:
        model = Publisher
        fields = ["id", "name"]


class WriterSerializer(serializers.ModelSerializer):
    publisher = PublisherSerializer()

    class Meta:
        model = Writer
        fields = ["id", "name", "publisher"]


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "username"]


class CommentSerializer(serializers.ModelSerializer):
    user = UserSerializer()

    class Meta:
        model = Comment
        fields = ["id", "text", "user"]


class ArticleSerializer(serializers.ModelSerializer):
    writer = WriterSerializer()
    publisher = PublisherSerializer()
    comments = CommentSerializer(many=True)
    tags = serializers.SerializerMethodField()

    class Meta:
        model = Article
        fields = ["id", "title", "writer", "publisher", "comments", "tags"]

    def get_tags(self, article: Article) -> list[str]:
        return [tag.name for tag in article.tags.all()]
