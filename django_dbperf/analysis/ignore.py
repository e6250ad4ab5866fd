"""``DBPERF["IGNORE"]``: the rules that silence findings, validated, compiled and matched.

A rule is a dict whose keys must all match a finding; a finding is ignored when some rule
matches it. The request keys (``path``, ``path_regex``, ``view``) are matched against the
``RequestInfo`` that ``QueryCountMiddleware`` stamps on a finding's queries, so they hold in every
capture that saw the request, test assertions around test-client requests included.

Flow: the setting -> ``rule_problems()`` (system checks, and refusal at run time) ->
``active_rules()`` (compiled once per config) -> ``drop_ignored()`` in ``capture_queries``.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import hashlib
import operator
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from django.core.exceptions import ImproperlyConfigured

from django_dbperf.analysis.findings import DUPLICATE, N_PLUS_ONE, UNUSED_EAGER_LOAD, Finding
from django_dbperf.capture.recorder import QueryRecord
from django_dbperf.capture.request import RequestInfo
from django_dbperf.conf import SETTING_NAME, get_config

KINDS = (N_PLUS_ONE, DUPLICATE, UNUSED_EAGER_LOAD)

Subject = Callable[[Finding, RequestInfo | None], Iterable[str | None]]
Test = Callable[[str], object]


# --- What each key is matched against --------------------------------------------------------


def _path(finding: Finding, request: RequestInfo | None) -> tuple[str | None]:
    return (request.path if request else None,)


def _view(finding: Finding, request: RequestInfo | None) -> tuple[str | None]:
    return (request.view if request else None,)


def _relation(finding: Finding, request: RequestInfo | None) -> tuple[str | None]:
    return (finding.relation,)


def _models(finding: Finding, request: RequestInfo | None) -> tuple[str | None, str | None]:
    # The model the analysis names, and the one the relation belongs to ("app_label.Model.field":
    # labels never contain more dots than that).
    relation = finding.relation
    return (finding.model, relation.rsplit(".", 1)[0] if relation else None)


def _apps(finding: Finding, request: RequestInfo | None) -> tuple[str | None, ...]:
    return tuple(model.split(".", 1)[0] if model else None for model in _models(finding, request))


def _modules(finding: Finding, request: RequestInfo | None) -> tuple[str | None, str | None]:
    # The project's line, and the framework's (Wagtail, the admin) when the finding names one.
    framework = finding.framework
    return (
        finding.callsite.module if finding.callsite else None,
        framework.module if framework else None,
    )


def _fingerprint(finding: Finding, request: RequestInfo | None) -> tuple[str]:
    return (finding.fingerprint,)


def _kind(finding: Finding, request: RequestInfo | None) -> tuple[str]:
    return (finding.kind,)


def _glob(pattern: str) -> Test:
    return re.compile(fnmatch.translate(pattern)).match


def _label_glob(pattern: str) -> Test:
    # Case-insensitive, like apps.get_model(): "auth.user" is auth.User.
    return re.compile(fnmatch.translate(pattern), re.IGNORECASE).match


def _regex(pattern: str) -> Test:
    # The whole path, like the globs: "/admin/" does not match "/shop/admin/".
    return re.compile(pattern).fullmatch


def _exact(value: str) -> Test:
    return functools.partial(operator.eq, value)


_SHAPE_ID = re.compile(r"[0-9a-f]{8,40}")


@functools.lru_cache(maxsize=4096)
def _shape_digest(shape: str) -> str:
    return hashlib.sha1(shape.encode(), usedforsecurity=False).hexdigest()


def _shape(value: str) -> Test:
    # A statement shape as written, or its id: a prefix of the shape's SHA-1 (like a short git
    # hash), so the ids reports print (``Finding.fingerprint_id``) can be pasted as they are.
    if _SHAPE_ID.fullmatch(value):
        return lambda shape: _shape_digest(shape).startswith(value)
    return _exact(value)


class _Key(NamedTuple):
    subject: Subject
    compile: Callable[[str], Test]
    about_request: bool = False


_KEYS: dict[str, _Key] = {
    "path": _Key(_path, _glob, about_request=True),
    "path_regex": _Key(_path, _regex, about_request=True),
    "view": _Key(_view, _glob, about_request=True),
    "app": _Key(_apps, _label_glob),
    "model": _Key(_models, _label_glob),
    "relation": _Key(_relation, _label_glob),
    "module": _Key(_modules, _glob),
    "fingerprint": _Key(_fingerprint, _shape),
    "kind": _Key(_kind, _exact),
}
NOTE_KEYS = frozenset({"reason"})  # for people; never matched
KEYS = frozenset(_KEYS) | NOTE_KEYS


# --- Validation ------------------------------------------------------------------------------


class Problem(NamedTuple):
    message: str
    hint: str


def _describe(value: object) -> str:
    return f"{value!r} ({type(value).__name__})"


def _not_a_dict(where: str, rule: object) -> Problem:
    example = rule if isinstance(rule, str) else "auth.User"
    return Problem(
        f"{where} is {_describe(rule)}, not a dict.",
        f'A rule is a dict that says what it matches, e.g. {{"model": {example!r}}} or '
        f'{{"module": {example!r}}}. Keys: {", ".join(sorted(KEYS))}.',
    )


def _unknown_key(where: str, key: object) -> Problem:
    close = difflib.get_close_matches(str(key), sorted(KEYS), n=1)
    guess = f"Did you mean {close[0]!r}? " if close else ""
    return Problem(
        f"{where} has an unknown key {key!r}.",
        f"{guess}Known keys: {', '.join(sorted(KEYS))}.",
    )


def _value_problem(where: str, key: str, value: object) -> Problem | None:
    if not isinstance(value, str):
        return Problem(
            f"{where} must be str, not {_describe(value)}.",
            "One pattern per key: to match several values, write one rule per value.",
        )
    if key == "path_regex":
        try:
            re.compile(value)
        except re.error as error:
            return Problem(
                f"{where} is {value!r}, which is not a valid regular expression: {error}.",
                'The whole URL path must match it (re.fullmatch), e.g. r"/api/v[12]/.*".',
            )
    if key == "fingerprint" and not _SHAPE_ID.fullmatch(value) and len(value.split()) < 2:
        return Problem(
            f"{where} is {value!r}, neither a statement shape nor a shape id.",
            "Paste the finding's fingerprint (the SQL shape) or its fingerprint_id (8 to 40 "
            "lowercase hex digits), as logs and test failures show them.",
        )
    if key == "kind" and value not in KINDS:
        allowed = ", ".join(repr(kind) for kind in KINDS)
        return Problem(
            f"{where} is {value!r}; allowed values: {allowed}.",
            "Leave kind out to match findings of every kind.",
        )
    return None


def _rule_problems(where: str, rule: object) -> list[Problem]:
    if not isinstance(rule, dict):
        return [_not_a_dict(where, rule)]
    problems = []
    for key, value in rule.items():
        if key not in KEYS:
            problems.append(_unknown_key(where, key))
        elif problem := _value_problem(f'{where}["{key}"]', key, value):
            problems.append(problem)
    if not problems and not rule.keys() - NOTE_KEYS:
        problems.append(
            Problem(
                f"{where} has no key to match on, so it would ignore every finding.",
                f"Add one of: {', '.join(sorted(_KEYS))}.",
            )
        )
    return problems


def rule_problems(rules: Sequence[object]) -> list[Problem]:
    """What is wrong with each rule of ``DBPERF["IGNORE"]``, naming the rule and key."""
    return [
        problem
        for index, rule in enumerate(rules)
        for problem in _rule_problems(f'{SETTING_NAME}["IGNORE"][{index}]', rule)
    ]


# --- Compiled rules --------------------------------------------------------------------------


@dataclass(frozen=True)
class IgnoreRule:
    conditions: tuple[tuple[Subject, Test], ...]
    about_request: bool  # has a path, path_regex or view key

    def matches(self, finding: Finding, request: RequestInfo | None) -> bool:
        return all(
            any(value is not None and test(value) for value in subject(finding, request))
            for subject, test in self.conditions
        )


def compile_rule(rule: dict[str, str]) -> IgnoreRule:
    keys = [(_KEYS[name], value) for name, value in rule.items() if name in _KEYS]
    return IgnoreRule(
        conditions=tuple((key.subject, key.compile(value)) for key, value in keys),
        about_request=any(key.about_request for key, _ in keys),
    )


def compile_rules(rules: object) -> tuple[IgnoreRule, ...]:
    """The compiled rules; ``ImproperlyConfigured`` (what check dbperf.E012 says) if invalid.

    Checks do not run under a WSGI or ASGI server, so an invalid rule is refused here too.
    """
    if not isinstance(rules, list | tuple):
        raise ImproperlyConfigured(
            f'{SETTING_NAME}["IGNORE"] must be a list of rules, not {_describe(rules)}.'
        )
    problems = rule_problems(rules)
    if problems:
        raise ImproperlyConfigured(f"{problems[0].message} {problems[0].hint}".strip())
    return tuple(compile_rule(rule) for rule in rules)


# Compiled once per merged config: get_config() is rebuilt when settings change
# (setting_changed), so a new config object is the only sign the rules may have changed.
_compiled: tuple[object, tuple[IgnoreRule, ...]] = (None, ())


def active_rules() -> tuple[IgnoreRule, ...]:
    global _compiled
    config = get_config()
    seen, rules = _compiled
    if seen is not config:
        rules = compile_rules(config["IGNORE"])
        _compiled = (config, rules)
    return rules


# --- Matching --------------------------------------------------------------------------------


def is_ignored(finding: Finding, request: RequestInfo | None = None) -> bool:
    """Whether a rule of ``DBPERF["IGNORE"]`` matches ``finding`` seen in ``request``."""
    return any(rule.matches(finding, request) for rule in active_rules())


def records_of(finding: Finding, records: Iterable[QueryRecord]) -> list[QueryRecord]:
    """The queries behind ``finding``: its statement shape, from its lines when it names them."""
    lines = set(finding.callsites)  # a duplicate may run from several lines
    if finding.callsite is not None:
        lines.add(finding.callsite)
    return [
        record
        for record in records
        if record.fingerprint == finding.fingerprint and (not lines or record.site in lines)
    ]


def requests_of(finding: Finding, records: Iterable[QueryRecord]) -> set[RequestInfo | None]:
    """The requests ``finding``'s queries ran in (``None`` for queries outside any request)."""
    return {record.request for record in records_of(finding, records)} or {None}


def _covered(
    rules: Sequence[IgnoreRule], finding: Finding, requests: Collection[RequestInfo | None]
) -> bool:
    # Each request the finding's queries ran in must be matched (by any rule): a rule for
    # /admin/* never hides a finding whose queries also ran elsewhere.
    return all(any(rule.matches(finding, request) for rule in rules) for request in requests)


def drop_ignored(findings: Iterable[Finding], records: Sequence[QueryRecord]) -> list[Finding]:
    """``findings`` without those ``DBPERF["IGNORE"]`` matches; ``records`` are the capture's."""
    rules = active_rules()
    if not rules:
        return list(findings)
    about_request = any(rule.about_request for rule in rules)
    no_request: set[RequestInfo | None] = {None}
    return [
        finding
        for finding in findings
        if not _covered(
            rules, finding, requests_of(finding, records) if about_request else no_request
        )
    ]


def without_ignored(records: Sequence[QueryRecord]) -> list[QueryRecord]:
    """The records to analyse: those not run inside ``ignore_queries()``."""
    return [record for record in records if not record.ignored]
