"""Integrations with optional third-party tools, each switched on only when its tool is enabled."""

from __future__ import annotations
