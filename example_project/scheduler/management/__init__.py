"""Management commands for the example scheduler app."""

from __future__ import annotations
