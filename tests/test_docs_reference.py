"""The settings and checks references committed in docs/settings.rst and docs/checks.rst are the
ones ``django_dbperf/conf.py`` and ``django_dbperf/checks.py`` generate."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import pytest

from django_dbperf.checks import CHECKS
from django_dbperf.conf import OPTIONS

DOCS = Path(__file__).resolve().parent.parent / "docs"


def load_reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "dbperf_reference", DOCS / "_ext" / "dbperf_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reference = load_reference()


def test_the_committed_references_are_the_generated_ones() -> None:
    outdated = reference.stale()
    assert not outdated, (
        f"The generated reference in {', '.join(f'docs/{page}' for page in outdated)} differs "
        f"from the code. Run: {reference.COMMAND}"
    )


def test_every_option_and_check_is_in_the_pages() -> None:
    settings_page = (DOCS / "settings.rst").read_text()
    checks_page = (DOCS / "checks.rst").read_text()
    assert all(f'``DBPERF["{name}"]``' in settings_page for name in OPTIONS)
    assert all(f"``{check_id}``" in checks_page for check_id in CHECKS)


@pytest.fixture
def docs_copy(tmp_path: Path) -> Path:
    for page in reference.PAGES:
        shutil.copy(DOCS / page, tmp_path / page)
    return tmp_path


def test_check_fails_on_stale_text_and_write_fixes_it(
    docs_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = docs_copy / "checks.rst"
    page.write_text(page.read_text().replace("``dbperf.E001``", "``dbperf.E000``"))
    assert reference.main(["--check"], docs=docs_copy) == 1
    assert f"docs/checks.rst differs from the code. Run: {reference.COMMAND}" in (
        capsys.readouterr().err
    )
    assert reference.main(["--write"], docs=docs_copy) == 0
    assert reference.main(["--check"], docs=docs_copy) == 0
    assert page.read_text() == (DOCS / "checks.rst").read_text()


def test_a_page_without_its_markers_is_an_error(docs_copy: Path) -> None:
    page = docs_copy / "settings.rst"
    page.write_text(page.read_text().replace(reference.END, ""))
    with pytest.raises(ValueError, match="needs one line"):
        reference.stale(docs_copy)
