"""Sphinx directives that render the settings and checks references from the code itself."""

from __future__ import annotations

from collections.abc import Mapping

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

from django_dbperf.checks import CHECKS
from django_dbperf.conf import OPTIONS, SETTING_NAME, Option


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


def _settings_lines(options: Mapping[str, Option], prefix: str) -> list[str]:
    lines: list[str] = []
    for name, option in options.items():
        key = f'{prefix}["{name}"]'
        lines += [f".. _setting-{key.replace('[', '-').replace(']', '').replace(chr(34), '')}:", ""]
        lines += [f"``{key}``", "-" * (len(key) + 4), ""]
        if not option.options:
            lines += [f"Default: ``{option.default!r}``", "", f"Allowed: {_allowed(option)}", ""]
        lines += [option.help, ""]
        if option.options:
            lines += _settings_lines(option.options, key)
    return lines


class SettingsReference(SphinxDirective):
    def run(self) -> list[nodes.Node]:
        return self._parse(_settings_lines(OPTIONS, SETTING_NAME))

    def _parse(self, lines: list[str]) -> list[nodes.Node]:
        container = nodes.section()
        nested_parse_with_titles(self.state, StringList(lines, source="django_dbperf"), container)
        return list(container.children)


class ChecksReference(SettingsReference):
    def run(self) -> list[nodes.Node]:
        lines = [".. list-table::", "   :header-rows: 1", "   :widths: 15 85", ""]
        lines += ["   * - Id", "     - Reported when"]
        for check_id, summary in CHECKS.items():
            lines += [f"   * - ``{check_id}``", f"     - {summary}"]
        return self._parse(lines)


def setup(app: Sphinx) -> dict[str, object]:
    app.add_directive("dbperf-settings", SettingsReference)
    app.add_directive("dbperf-checks", ChecksReference)
    return {"parallel_read_safe": True}
