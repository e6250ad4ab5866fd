"""``{{ value|bytes }}``: a size in bytes as people read it (kB, MB, GB; powers of 1024)."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter(name="bytes")
def human_bytes(value: int | None) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:,.0f} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{size:,.1f} TB"  # pragma: no cover - the loop returns
