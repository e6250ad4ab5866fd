"""The settings and checks references, generated from the code and committed into the pages.

``docs/settings.rst`` (from ``django_dbperf/conf.py``'s ``OPTIONS``) and ``docs/checks.rst``
(from ``django_dbperf/checks.py``'s ``CHECKS``) hold the generated text between two marker
comments, so they read the same in the source tree as built. ``python
docs/_ext/dbperf_reference.py --write`` rewrites it; ``--check`` exits 1 when it is stale. As a
Sphinx extension it warns about stale text, which fails the ``-W`` build.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sphinx.application import Sphinx

DOCS = Path(__file__).resolve().parent.parent
COMMAND = "python docs/_ext/dbperf_reference.py --write"
BEGIN = f".. BEGIN GENERATED ({COMMAND})"
END = ".. END GENERATED"
WIDTH = 100

if __name__ == "__main__":  # run as a script: the repository's django_dbperf
    sys.path.insert(0, str(DOCS.parent))

from django_dbperf.checks import CHECKS  # noqa: E402
from django_dbperf.conf import OPTIONS, SETTING_NAME, Option  # noqa: E402


def _allowed(option: Option) -> str:
    if option.choices:
        return ", ".join(f"``{choice!r}``" for choice in option.choices)
    kinds = [t.__name__ for t in option.types] + (["None"] if option.nullable else [])
    text = " or ".join(kinds)
    if option.minimum is not None and option.maximum is not None:
        text += f", {option.minimum} to {option.maximum}"
    elif option.minimum is not None:
        text += f", at least {option.minimum}"
    return text


def _wrap(text: str, first: str = "", rest: str = "") -> list[str]:
    return textwrap.wrap(
        text,
        WIDTH,
        initial_indent=first,
        subsequent_indent=rest,
        break_long_words=False,
        break_on_hyphens=False,
    )


def _settings_lines(options: Mapping[str, Option], prefix: str) -> list[str]:
    lines: list[str] = []
    for name, option in options.items():
        key = f'{prefix}["{name}"]'
        lines += [f".. _setting-{key.replace('[', '-').replace(']', '').replace(chr(34), '')}:", ""]
        lines += [f"``{key}``", "-" * (len(key) + 4), ""]
        if not option.options:
            lines += [f"Default: ``{option.default!r}``", "", f"Allowed: {_allowed(option)}", ""]
        lines += [*_wrap(option.help), ""]
        if option.options:
            lines += _settings_lines(option.options, key)
    return lines


def settings_reference() -> list[str]:
    """Every ``DBPERF`` key: its default, what is allowed and what it does."""
    return _settings_lines(OPTIONS, SETTING_NAME)


def checks_reference() -> list[str]:
    """A table of every check id and when it is reported."""
    lines = [".. list-table::", "   :header-rows: 1", "   :widths: 15 85", ""]
    lines += ["   * - Id", "     - Reported when"]
    for check_id, summary in CHECKS.items():
        lines += [f"   * - ``{check_id}``", *_wrap(summary, "     - ", "       ")]
    return lines


PAGES: dict[str, Callable[[], list[str]]] = {
    "settings.rst": settings_reference,
    "checks.rst": checks_reference,
}


def rendered(page: str, text: str) -> str:
    """``text`` (a page's source) with the generated reference between its markers."""
    lines = text.split("\n")
    if lines.count(BEGIN) != 1 or lines.count(END) != 1 or lines.index(BEGIN) > lines.index(END):
        raise ValueError(f"docs/{page} needs one line {BEGIN!r} and, after it, one {END!r}")
    start, end = lines.index(BEGIN), lines.index(END)
    generated = [line.rstrip() for line in PAGES[page]()]
    while generated and not generated[-1]:
        generated.pop()
    return "\n".join([*lines[: start + 1], "", *generated, "", *lines[end:]])


def stale(docs: Path = DOCS) -> list[str]:
    """The pages whose committed reference differs from what the code generates."""
    texts = {page: (docs / page).read_text() for page in PAGES}
    return [page for page, text in texts.items() if rendered(page, text) != text]


def write(docs: Path = DOCS) -> list[str]:
    """Rewrite the stale pages; returns them."""
    changed = stale(docs)
    for page in changed:
        path = docs / page
        path.write_text(rendered(page, path.read_text()))
    return changed


def main(argv: Sequence[str] | None = None, docs: Path = DOCS) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help="rewrite the generated text")
    action.add_argument("--check", action="store_true", help="exit 1 if it is stale")
    options = parser.parse_args(argv)
    if options.write:
        changed = write(docs)
        print(f"Rewrote {', '.join(changed)}." if changed else "Up to date.")
        return 0
    outdated = stale(docs)
    if outdated:
        print(
            f"The generated reference in {', '.join(f'docs/{p}' for p in outdated)} differs "
            f"from the code. Run: {COMMAND}",
            file=sys.stderr,
        )
        return 1
    return 0


def _warn_if_stale(app: Sphinx) -> None:
    from sphinx.util import logging

    logger = logging.getLogger(__name__)
    try:
        outdated = stale()
    except ValueError as error:
        logger.warning(str(error))
        return
    for page in outdated:
        logger.warning(f"docs/{page}: the generated reference is stale; run: {COMMAND}")


def setup(app: Sphinx) -> dict[str, object]:
    app.connect("builder-inited", _warn_if_stale)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


if __name__ == "__main__":
    sys.exit(main())
