"""The seed_demo management command."""

from __future__ import annotations
