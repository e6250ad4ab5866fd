"""scripts/django_internals.py: every private Django internal django_dbperf depends on is there on
the installed Django, and one that is gone is reported BROKEN with the files depending on it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "django_internals.py"


def probe(prelude: str = "") -> subprocess.CompletedProcess[str]:
    code = f"{prelude}\nimport runpy\nrunpy.run_path({str(SCRIPT)!r}, run_name='__main__')\n"
    environment = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**environment, "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_internal_is_there_on_the_installed_django() -> None:
    result = probe()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout
    assert result.stdout.strip().endswith("internals: 0 broken.")


def test_a_missing_internal_is_broken_and_names_its_users() -> None:
    result = probe("import django.db.models.query as query\ndel query.prefetch_one_level")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    (row,) = [i for i, line in enumerate(lines) if "prefetch_one_level(" in line]
    assert lines[row].startswith("BROKEN: missing: module 'django.db.models.query' has no ")
    assert "capture/callsite.py" in lines[row + 1]
    assert lines[-1].endswith("internals: 1 broken.")
