"""Create (or reset) the demo superuser and print how to log in."""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "Create the demo superuser, or reset its password, and print the credentials."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument(
            "--password", help="Password to set (default: a new random one, printed)."
        )

    def handle(self, *args: Any, username: str, password: str | None, **options: Any) -> None:
        if not username.strip():
            raise CommandError("--username must not be empty.")
        password = password or secrets.token_urlsafe(12)
        user_model = get_user_model()
        user, created = user_model._default_manager.get_or_create(
            **{user_model.USERNAME_FIELD: username},
            defaults={"is_staff": True, "is_superuser": True},
        )
        user.is_staff = user.is_superuser = user.is_active = True
        user.set_password(password)
        user.save()
        verb = "Created" if created else "Reset the password of"
        self.stdout.write(f"{verb} the demo superuser. Log in with:")
        self.stdout.write(f"  username: {username}\n  password: {password}")
