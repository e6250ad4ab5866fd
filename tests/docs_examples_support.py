"""The docs' code examples as tests: collecting the blocks and running each kind.

``tests/test_docs_examples.py`` makes one pytest item per block; the conventions read here are
described in ``docs/development.rst`` ("Docs examples"). A block is found by its file and line
(``docs/cache.rst:40``), so a failure names where to look.
"""

from __future__ import annotations

import ast
import builtins
import copy
import importlib.util
import inspect
import re
import shlex
import sys
import textwrap
import tomllib
import types
import unittest
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

KINDS = ("code", "settings", "models", "test")
# The module the page namespace pretends to be: inside an installed app (the example project's),
# so model classes defined by a ``models`` block find their app, and read its tables.
PAGE_MODULE = "example_project.scheduler.docs_example"
PAGE_APP = "scheduler"


class ExampleError(AssertionError):
    """An example did not run, or broke a convention; the message names the block."""


# --- Collecting ------------------------------------------------------------------------------


@dataclass
class Snippet:
    """Python that runs without being rendered: an ``example-setup`` comment's body."""

    path: str
    line: int  # of the first line of source
    source: str


@dataclass
class Block:
    path: str  # relative to the repository, e.g. "docs/cache.rst"
    line: int  # of the ``code-block`` directive or the opening fence
    lang: str  # "python" or "console"
    source: str
    first_line: int  # the line of the source's first line, for tracebacks
    kind: str = "code"
    warns: tuple[str, ...] = ()
    setup: list[Snippet] = field(default_factory=list)  # runs just before the block

    @property
    def id(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass
class Page:
    path: str
    blocks: list[Block] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def python(self) -> list[Block]:
        return [block for block in self.blocks if block.lang == "python"]


COLLECTED = ("python", "console")
RST_BLOCK = re.compile(r"^(?P<indent>[ \t]*)\.\. code-block::[ \t]*(?P<lang>\S*)[ \t]*$")
RST_MARKER = re.compile(r"^[ \t]*\.\. example:(?P<spec>.*)$")
RST_SETUP = re.compile(r"^(?P<indent>[ \t]*)\.\. example-setup[ \t]*$")
RST_OTHER_DIRECTIVE = re.compile(r"^[ \t]*\.\. [\w-]+::")
MD_FENCE = re.compile(r"^```(?P<lang>[\w-]*)[ \t]*$")
MD_MARKER = re.compile(r"^<!--[ \t]*example:(?P<spec>.*?)-->[ \t]*$")
MD_SETUP = re.compile(r"^<!--[ \t]*example-setup[ \t]*$")
WARNING_ID = re.compile(r"^dbperf\.W\d{3}$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _indented_body(lines: list[str], start: int, indent: int) -> tuple[str, int, int]:
    """The dedented text from ``lines[start]`` while lines are blank or deeper than ``indent``;
    returns it, the index of its first non-blank line, and the index after it."""
    end = start
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > indent):
        end += 1
    first = start
    while first < end and not lines[first].strip():
        first += 1
    body = textwrap.dedent("\n".join(lines[first:end])).rstrip() + "\n"
    return body, first, end


def _parse_marker(spec: str, where: str, problems: list[str]) -> tuple[str, tuple[str, ...]]:
    words = spec.split()
    kind = words[0] if words else ""
    if kind not in KINDS:
        problems.append(f"{where}: unknown example kind {spec.strip()!r}; one of {KINDS}")
        return "code", ()
    rest = words[1:]
    if not rest:
        return kind, ()
    if kind in ("settings", "models") and rest[0] == "warns" and len(rest) > 1:
        bad = [word for word in rest[1:] if not WARNING_ID.match(word)]
        if not bad:
            return kind, tuple(rest[1:])
    problems.append(
        f"{where}: cannot read {spec.strip()!r}; write `{kind}`"
        + (" or `{kind} warns dbperf.W00N ...`" if kind in ("settings", "models") else "")
    )
    return kind, ()


def parse_rst(path: str, text: str) -> Page:
    page = Page(path)
    lines = text.splitlines()
    pending: list[Snippet] = []
    used_markers: set[int] = set()
    markers: set[int] = set()  # outside quoted text
    index = 0
    while index < len(lines):
        line = lines[index]
        if RST_MARKER.match(line):
            markers.add(index)
        if match := RST_SETUP.match(line):
            source, first, index = _indented_body(lines, index + 1, len(match["indent"]))
            if source.strip():
                pending.append(Snippet(path, first + 1, source))
            else:
                page.problems.append(f"{path}:{first}: `.. example-setup` has no indented code")
            continue
        if match := RST_BLOCK.match(line):
            indent = len(match["indent"])
            start = index + 1
            while start < len(lines) and lines[start].strip().startswith(":"):
                start += 1  # directive options (:caption:, :emphasize-lines: ...)
            source, first, end = _indented_body(lines, start, indent)
            lang = match["lang"]
            block = Block(path, index + 1, lang, source, first + 1)
            marker = RST_MARKER.match(lines[index - 2]) if index >= 2 else None
            if marker and not lines[index - 1].strip():
                used_markers.add(index - 2)
                where = f"{path}:{index - 1}"
                if lang != "python":
                    page.problems.append(f"{where}: `.. example:` markers are for python blocks")
                block.kind, block.warns = _parse_marker(marker["spec"], where, page.problems)
            if lang == "python":
                block.setup, pending = pending, []
            if lang in COLLECTED:
                page.blocks.append(block)
            index = end
            continue
        if line.rstrip().endswith("::") and not RST_OTHER_DIRECTIVE.match(line):
            # A literal block (``text::``): shown as is, never run, and skipped whole so that
            # rst quoted inside it is not read as markup.
            _, _, index = _indented_body(lines, index + 1, _indent(line))
            continue
        index += 1
    for number in sorted(markers - used_markers):
        page.problems.append(
            f"{path}:{number + 1}: `.. example:` must stand right before a `.. code-block::`"
            " directive, with one blank line between"
        )
    page.problems += [
        f"{snippet.path}:{snippet.line - 1}: `.. example-setup` is not followed by a python block"
        for snippet in pending
    ]
    return page


def parse_markdown(path: str, text: str) -> Page:
    page = Page(path)
    lines = text.splitlines()
    pending: list[Snippet] = []
    used_markers: set[int] = set()
    markers: set[int] = set()  # outside fenced blocks
    index = 0
    while index < len(lines):
        line = lines[index]
        if MD_MARKER.match(line):
            markers.add(index)
        if MD_SETUP.match(line):
            end = index + 1
            while end < len(lines) and lines[end].strip() != "-->":
                end += 1
            if end == len(lines):
                page.problems.append(f"{path}:{index + 1}: `<!-- example-setup` has no `-->`")
            source = textwrap.dedent("\n".join(lines[index + 1 : end])).rstrip() + "\n"
            pending.append(Snippet(path, index + 2, source))
            index = end + 1
            continue
        if match := MD_FENCE.match(line):
            end = index + 1
            while end < len(lines) and lines[end].rstrip() != "```":
                end += 1
            source = "\n".join(lines[index + 1 : end]).rstrip() + "\n"
            block = Block(path, index + 1, match["lang"], source, index + 2)
            marker = MD_MARKER.match(lines[index - 2]) if index >= 2 else None
            if marker and not lines[index - 1].strip():
                used_markers.add(index - 2)
                where = f"{path}:{index - 1}"
                if block.lang != "python":
                    page.problems.append(f"{where}: `<!-- example: -->` is for python blocks")
                block.kind, block.warns = _parse_marker(marker["spec"], where, page.problems)
            if block.lang == "python":
                block.setup, pending = pending, []
            if block.lang in COLLECTED:
                page.blocks.append(block)
            index = end + 1
            continue
        index += 1
    for number in sorted(markers - used_markers):
        page.problems.append(
            f"{path}:{number + 1}: `<!-- example: ... -->` must stand right before a fence,"
            " with one blank line between"
        )
    page.problems += [
        f"{snippet.path}:{snippet.line - 1}: `<!-- example-setup` is not followed by a python block"
        for snippet in pending
    ]
    return page


def collect(root: Path = ROOT) -> list[Page]:
    """Every page with examples: ``docs/**/*.rst`` (any page, present or future) and README."""
    pages = []
    for file in sorted((root / "docs").rglob("*.rst")):
        if "_build" in file.relative_to(root / "docs").parts:
            continue
        pages.append(parse_rst(file.relative_to(root).as_posix(), file.read_text()))
    readme = root / "README.md"
    pages.append(parse_markdown("README.md", readme.read_text()))
    return pages


# --- Running python blocks -------------------------------------------------------------------


def _compile(source: str, path: str, first_line: int) -> types.CodeType:
    # Padded so that tracebacks (and callsites) name the line in the docs file.
    padded = "\n" * (first_line - 1) + source
    return compile(
        padded,
        str(ROOT / path),
        "exec",
        flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
        dont_inherit=True,
    )


def _execute(source: str, path: str, first_line: int, namespace: dict[str, Any]) -> None:
    code = _compile(source, path, first_line)
    result = eval(code, namespace)  # exec, but returns the coroutine of a top-level await
    if inspect.iscoroutine(result):
        from asgiref.sync import async_to_sync

        async def wait() -> None:
            await result

        async_to_sync(wait)()


def _defined_names(source: str) -> set[str]:
    """Names a block binds at its top level (assignments, defs, classes, imports)."""
    names: set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, ast.AugAssign | ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


MODULE_COMMENT = re.compile(r"^#[ \t]*(?P<path>[A-Za-z_][\w/]*)\.py[ \t]*$")


def module_name(block: Block) -> str | None:
    """``myproject.cache`` for a block whose first line is the comment ``# myproject/cache.py``."""
    match = MODULE_COMMENT.match(block.source.splitlines()[0]) if block.source.strip() else None
    return match["path"].replace("/", ".") if match else None


class PageRun:
    """One page's namespace while one of its blocks is tested: the blocks before it run first.

    Everything a run changes outside the namespace is undone by ``close()``: settings enabled
    with ``override_settings(...).enable()``, modules made importable, attributes that example
    models added to real model classes (their reverse accessors).
    """

    def __init__(self, page: Page) -> None:
        from django.conf import settings

        self.page = page
        self.namespace: dict[str, Any] = {"__name__": PAGE_MODULE, "__builtins__": builtins}
        self.models: list[type] = []  # defined by the page's models blocks so far
        self.modules: list[str] = []
        self._settings = settings._wrapped
        self._class_attributes = {model: dict(vars(model)) for model in _real_models()}

    # Replaying earlier blocks -----------------------------------------------------------------

    def run_until(self, block: Block) -> None:
        """Run ``block`` for real, after the page's setups and earlier blocks (which only
        define their names: their own checks ran in their own items)."""
        for earlier in self.page.python:
            if earlier is block:
                break
            try:
                self.run_setup(earlier)
                self.replay(earlier)
            except BaseException as error:
                raise ExampleError(
                    f"{earlier.id}, an earlier block of the page that {block.id} runs after, "
                    f"failed: {type(error).__name__}: {error}"
                ) from error
        self.run_setup(block)
        RUNNERS[block.kind](self, block)

    def run_setup(self, block: Block) -> None:
        for snippet in block.setup:
            with self.guarded(snippet.path, snippet.line, snippet.source):
                _execute(snippet.source, snippet.path, snippet.line, self.namespace)

    def replay(self, block: Block) -> None:
        if block.kind == "settings":
            return  # a fresh namespace of its own: nothing to carry over
        if block.kind == "models":
            self.define_models(block)
        else:
            self.run_code(block)

    # Kinds ------------------------------------------------------------------------------------

    def run_code(self, block: Block) -> None:
        with self.guarded(block.path, block.line, block.source):
            _execute(block.source, block.path, block.first_line, self.namespace)
        self.publish_module(block)

    @contextmanager
    def guarded(self, path: str, line: int, source: str) -> Iterator[None]:
        """Model classes defined outside ``models`` blocks would land in the real registry."""
        with self.registry(_defined_names(source)) as registry:
            yield
        strays = _new_models(registry, self.models)
        if strays:
            names = ", ".join(model.__name__ for model in strays)
            raise ExampleError(
                f"{path}:{line} defines the model {names}: mark the block `.. example: models`"
            )

    def define_models(self, block: Block) -> tuple[Any, list[type]]:
        names = _defined_names(block.source)
        with self.registry(names) as registry:
            _execute(block.source, block.path, block.first_line, self.namespace)
        defined = _new_models(registry, self.models)
        self.models = [model for model in self.models if model.__name__ not in names] + defined
        self.publish_module(block)
        return registry, defined

    def run_models(self, block: Block) -> None:
        from unittest import mock

        from django.core import checks as django_checks

        from django_dbperf import checks

        registry, defined = self.define_models(block)
        if not defined:
            raise ExampleError(f"{block.id} is marked `models` but defines no model class")
        labels = tuple(f"{model._meta.label}." for model in defined)
        try:
            messages = [
                message
                for model in defined
                for message in model.check()
                if not _clash_with_its_real_twin(message)
            ]
            # The manager checks read the app registry: the example's, with the real models.
            with mock.patch.object(checks, "apps", registry):
                messages += [
                    message
                    for message in checks.check_eager_managers()
                    if message.obj in defined or message.msg.startswith(labels)
                ]
        finally:
            _forget_relations()
        _fail_on_messages(block, messages, django_checks)

    def run_settings(self, block: Block) -> None:
        check_settings_block(block, self.models)

    def run_test(self, block: Block) -> None:
        before = dict(self.namespace)
        self.run_code(block)
        new = {
            name: value
            for name, value in self.namespace.items()
            if before.get(name) is not value and getattr(value, "__module__", "") == PAGE_MODULE
        }
        cases = [
            value
            for value in new.values()
            if isinstance(value, type) and issubclass(value, unittest.TestCase)
        ]
        functions = [
            value
            for name, value in new.items()
            if name.startswith("test") and inspect.isfunction(value)
        ]
        if not cases and not functions:
            raise ExampleError(
                f"{block.id} is marked `test` but defines no TestCase class or test_ function"
            )
        for case in cases:
            _run_test_case(block, case)
        for function in functions:
            _run_test_function(block, function, self.namespace)

    # Modules and clean-up ---------------------------------------------------------------------

    def publish_module(self, block: Block) -> None:
        """A block starting with ``# myproject/cache.py`` is importable as ``myproject.cache``
        for the rest of the page (settings name its functions by dotted path)."""
        name = module_name(block)
        if name is None:
            return
        if name not in self.modules and (name in sys.modules or _spec_exists(name)):
            raise ExampleError(f"{block.id} names the module {name}, which exists already")
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):
            dotted = ".".join(parts[:depth])
            if dotted not in sys.modules:
                module = types.ModuleType(dotted)
                module.__path__ = []  # a package, so that submodules can be imported
                sys.modules[dotted] = module
                self.modules.append(dotted)
                if depth > 1:
                    setattr(sys.modules[".".join(parts[: depth - 1])], parts[depth - 1], module)
        target = sys.modules[name]
        for defined in _defined_names(block.source):
            if defined in self.namespace:
                setattr(target, defined, self.namespace[defined])

    @contextmanager
    def registry(self, redefined: set[str]) -> Iterator[Any]:
        with _isolated_registry(redefined, self.models) as registry:
            yield registry

    def close(self) -> None:
        from django.conf import settings
        from django.core.signals import setting_changed
        from django.test.utils import UserSettingsHolder

        # Settings a setup enabled with override_settings(...).enable(), innermost first.
        while settings._wrapped is not self._settings:
            holder = settings._wrapped
            if not isinstance(holder, UserSettingsHolder):
                raise ExampleError("the settings were replaced, not overridden")
            settings._wrapped = holder.default_settings
            for key in [name for name in vars(holder) if name.isupper()]:
                setting_changed.send(
                    sender=type(settings._wrapped),
                    setting=key,
                    value=getattr(settings, key, None),
                    enter=False,
                )
        for name in reversed(self.modules):
            sys.modules.pop(name, None)
        for model, attributes in self._class_attributes.items():
            for name, value in list(vars(model).items()):
                if not _accessor_of_example_model(value):
                    continue
                if name in attributes:
                    setattr(model, name, attributes[name])  # an accessor the example replaced
                else:
                    delattr(model, name)
            model._meta._expire_cache()


def _clash_with_its_real_twin(message: Any) -> bool:
    """An example ``Event.owner`` seen clashing with the real ``Event.owner`` it stands for:
    the real ``User`` knows the real model's reverse accessor by the same label."""
    if message.id not in ("fields.E302", "fields.E303", "fields.E304", "fields.E305"):
        return False
    return len(set(re.findall(r"'([\w.]+\.\w+\.\w+)'", message.msg))) == 1


def _accessor_of_example_model(value: object) -> bool:
    """Whether ``value`` is the reverse accessor an example model's relation added to a real
    model (``User.event_set``)."""
    relation = getattr(value, "rel", None) or getattr(value, "related", None)
    owner = getattr(relation, "related_model", None)
    return getattr(owner, "__module__", None) == PAGE_MODULE


def _real_models() -> list[type]:
    from django.apps import apps

    return list(apps.get_models(include_auto_created=True))


@contextmanager
def _isolated_registry(redefined: set[str], page_models: list[type]) -> Iterator[Any]:
    """``isolate_apps()`` whose registry already holds the installed models (so that example
    models can point at them) and the page's earlier example models, except those about to be
    defined again (``redefined``, in the example app) and the models that point at those: an
    example ``Event`` has the relations its example declares, not the real ``Event``'s."""
    from django.apps import apps
    from django.test.utils import isolate_apps

    candidates = {model._meta.label: model for model in _real_models()}
    candidates.update({model._meta.label: model for model in page_models})
    dropped = {f"{PAGE_APP}.{name}" for name in redefined}
    while True:
        more = {
            label
            for label, model in candidates.items()
            if label not in dropped
            and any(
                field.related_model is not None
                and not isinstance(field.related_model, str)
                and field.related_model._meta.label in dropped
                for field in [*model._meta.fields, *model._meta.many_to_many]
            )
        }
        if not more:
            break
        dropped |= more

    with isolate_apps() as registry:
        for config in apps.get_app_configs():
            clone = copy.copy(config)
            clone.apps = registry
            clone.models = registry.all_models[config.label]
            registry.app_configs[config.label] = clone
        for label, model in candidates.items():
            if label not in dropped:
                registry.all_models[model._meta.app_label][model._meta.model_name] = model
        registry.clear_cache()
        register = registry.register_model

        def register_model(app_label: str, model: type) -> None:
            register(app_label, model)
            _keep_real_relation_trees(model, registry)

        registry.register_model = register_model
        try:
            yield registry
        finally:
            _forget_relations()


def _keep_real_relation_trees(model: type, registry: Any) -> None:
    """Django computes an example model's reverse relations over its registry and stores each
    model's share on every model there, real ones included: keep the real models' own."""
    meta = model._meta  # type: ignore[attr-defined]
    populate = meta._populate_directed_relation_graph
    missing = object()

    def populate_keeping_real_ones() -> Any:
        real = [
            m
            for m in registry.get_models(include_auto_created=True)
            if m._meta.apps is not registry
        ]
        saved = [(m._meta.__dict__, m._meta.__dict__.get("_relation_tree", missing)) for m in real]
        try:
            return populate()
        finally:
            for cache, tree in saved:
                if tree is missing:
                    cache.pop("_relation_tree", None)
                else:
                    cache["_relation_tree"] = tree

    meta._populate_directed_relation_graph = populate_keeping_real_ones


def _forget_relations() -> None:
    """Real models' relation caches, which any registry that holds them fills for all of its
    models: computed again from the real registry when next read."""
    for model in _real_models():
        model._meta._expire_cache()


def _new_models(registry: Any, known: list[type]) -> list[type]:
    from django.apps import apps

    real = set(apps.get_models(include_auto_created=True))
    return [
        model
        for model in registry.get_models()
        if model not in real and model not in known and model.__module__ == PAGE_MODULE
    ]


@contextmanager
def _models_installed(models: list[type]) -> Iterator[None]:
    """The page's example models in the real app registry, for the checks that read it."""
    from django.apps import apps

    added = []
    for model in models:
        registered = apps.all_models[model._meta.app_label]
        key = model._meta.model_name
        added.append((registered, key, registered.get(key)))
        registered[key] = model
    apps.clear_cache()
    try:
        yield
    finally:
        for registered, key, previous in reversed(added):
            if previous is None:
                del registered[key]
            else:
                registered[key] = previous
        apps.clear_cache()
        for model in models:  # their relations, as the real registry saw them meanwhile
            model._meta._expire_cache()


def _fail_on_messages(block: Block, messages: list[Any], django_checks: Any) -> None:
    bad = [
        message
        for message in messages
        if not message.is_silenced()
        and (
            message.level >= django_checks.ERROR
            or (message.level >= django_checks.WARNING and message.id not in block.warns)
        )
    ]
    if bad:
        listed = "\n".join(f"  {message}" for message in bad)
        allowed = (
            f" (allowed warnings: {', '.join(block.warns)})"
            if block.warns
            else " (an expected warning is allowed by `.. example: <kind> warns dbperf.W00N`)"
        )
        raise ExampleError(f"{block.id}: system checks report{allowed}:\n{listed}")


def cache_alias() -> str:
    """The cache examples use: real Valkey/Redis on the server pass, else local memory."""
    from django.conf import settings

    return "redis" if "redis" in settings.CACHES else "default"


# --- Settings blocks -------------------------------------------------------------------------

# Settings examples start from these: the test settings' lists and dicts, with a django-redis
# cache under the alias the docs use, "valkey" (the checks never connect to it).
VALKEY = {
    "BACKEND": "django_redis.cache.RedisCache",
    "LOCATION": "redis://127.0.0.1:6379/0",
}
BASE_SETTINGS = ("INSTALLED_APPS", "MIDDLEWARE", "CACHES", "DATABASES")
# Settings that are neither Django's nor the test settings' but that examples may assign.
THIRD_PARTY_SETTINGS = {"DEBUG_TOOLBAR_PANELS", "DEBUG_TOOLBAR_CONFIG"}


def base_settings() -> dict[str, Any]:
    from django.conf import settings

    base = {name: copy.deepcopy(getattr(settings, name)) for name in BASE_SETTINGS}
    base["CACHES"]["valkey"] = dict(VALKEY)
    return base


def _known_setting(name: str) -> bool:
    from django.conf import global_settings, settings

    return (
        hasattr(global_settings, name)
        or hasattr(settings, name)
        or name == "DBPERF"
        or name in THIRD_PARTY_SETTINGS
    )


def fill_ellipsis(value: Any, base: Any, where: str) -> Any:
    """``...`` in a settings example stands for what the base settings have there:
    ``[..., "django_dbperf"]`` the other apps, ``{"default": {...}}`` the default cache."""
    if value is Ellipsis or value == {Ellipsis}:
        if base is None:
            raise ExampleError(f"`...` at {where} stands for nothing in the base settings")
        return copy.deepcopy(base)
    if isinstance(value, list | tuple) and Ellipsis in value:
        given = [item for item in value if item is not Ellipsis]
        rest = [item for item in base or [] if item not in given]
        at = value.index(Ellipsis)
        filled = [*value[:at], *rest, *[item for item in value[at + 1 :] if item is not Ellipsis]]
        return type(value)(filled)
    if isinstance(value, dict):
        return {
            key: fill_ellipsis(
                item, base.get(key) if isinstance(base, dict) else None, f"{where}[{key!r}]"
            )
            for key, item in value.items()
        }
    return value


def _assigned_settings(source: str) -> list[str]:
    names = []
    for node in ast.parse(source).body:
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, ast.AugAssign | ast.AnnAssign)
            else []
        )
        for target in targets:
            if isinstance(target, ast.Name) and target.id.isupper() and target.id not in names:
                names.append(target.id)
    return names


def _spec_exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _module_exists(dotted: str) -> bool:
    """Whether ``dotted`` (or the module holding the attribute it names) can be imported,
    without importing it: some apps (nplusone) patch the ORM for good as they are imported."""
    parts = dotted.split(".")
    for depth in range(len(parts), 0, -1):
        try:
            if importlib.util.find_spec(".".join(parts[:depth])) is not None:
                return True
        except (ImportError, ValueError):
            pass
    return False


def check_settings_block(block: Block, page_models: list[type]) -> None:
    """Run a settings fragment on top of the base settings, apply what it assigns and run
    django_dbperf's system checks."""
    from django.core import checks as django_checks
    from django.core.checks.registry import registry
    from django.test import override_settings

    base = base_settings()
    namespace: dict[str, Any] = {"__name__": "settings", "__builtins__": builtins}
    namespace.update(copy.deepcopy(base))
    _execute(block.source, block.path, block.first_line, namespace)
    assigned = _assigned_settings(block.source)
    if not assigned:
        raise ExampleError(f"{block.id} is marked `settings` but assigns no setting")
    applied: dict[str, Any] = {"CACHES": base["CACHES"]}
    for name in assigned:
        if not _known_setting(name):
            raise ExampleError(
                f"{block.id} assigns {name}, which is not a setting of Django, of the test "
                "settings or of django_dbperf (a third-party setting belongs in "
                "THIRD_PARTY_SETTINGS in tests/docs_examples_support.py)"
            )
        value = fill_ellipsis(namespace[name], base.get(name), name)
        if name in ("INSTALLED_APPS", "MIDDLEWARE"):
            missing = [
                entry for entry in value if not isinstance(entry, str) or not _module_exists(entry)
            ]
            if missing:
                raise ExampleError(
                    f"{block.id}: {name} has entries that cannot be imported: {missing}"
                )
        if name == "INSTALLED_APPS":
            # Checked, not applied: reloading the app registry imports every app again.
            continue
        applied[name] = value
    dbperf_checks = [
        check
        for check in registry.get_checks()
        if getattr(check, "__module__", "").startswith("django_dbperf")
    ]

    def run_checks() -> list[Any]:
        return [message for check in dbperf_checks for message in check(app_configs=None)]

    # What the test project itself reports (a fetch mode of the test app's on Django 5.2) is
    # not the example's doing.
    with override_settings(CACHES=base["CACHES"]):
        before = {(message.id, message.msg) for message in run_checks()}
    with ExitStack() as stack:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Overriding setting DATABASES")
            stack.enter_context(override_settings(**applied))
        stack.enter_context(_models_installed(page_models))
        messages = [m for m in run_checks() if (m.id, m.msg) not in before]
        _fail_on_messages(block, messages, django_checks)


# --- Test blocks -----------------------------------------------------------------------------


def _run_test_case(block: Block, case: type[unittest.TestCase]) -> None:
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(case)
    if not suite.countTestCases():
        raise ExampleError(f"{block.id}: {case.__name__} has no test methods")
    result = unittest.TestResult()
    suite.run(result)
    problems = result.failures + result.errors
    if problems:
        details = "\n".join(f"{test.id()}:\n{trace}" for test, trace in problems)
        raise ExampleError(
            f"{block.id}: {len(problems)} test(s) of {case.__name__} failed:\n{details}"
        )
    if result.unexpectedSuccesses or result.skipped:
        raise ExampleError(f"{block.id}: {case.__name__} skipped tests; examples never skip")


def _builtin_fixtures() -> dict[str, Callable[[], Any]]:
    from django.test import AsyncClient, Client, RequestFactory

    from django_dbperf.pytest_plugin import DbPerf

    return {
        "client": Client,
        "async_client": AsyncClient,
        "rf": RequestFactory,
        "dbperf": DbPerf,
        "db": lambda: None,
    }


def _run_test_function(block: Block, function: Callable[..., Any], namespace: dict) -> None:
    """Call a pytest test function with the fixtures it names: pytest-django's and the dbperf
    plugin's, or ``@pytest.fixture`` functions (and plain names) of the page; its ``dbperf``
    marker applies as the plugin applies it (to the body, not to the fixtures)."""
    from django_dbperf.pytest_plugin import MARKER, _fail_marker, _marker_checks
    from django_dbperf.testing import checked_capture

    builtin = _builtin_fixtures()
    with ExitStack() as stack:

        def resolve(name: str) -> Any:
            if name in builtin:
                return builtin[name]()
            if name not in namespace:
                raise ExampleError(
                    f"{block.id}: {function.__name__} needs the fixture {name!r}: define it in "
                    f"the page (hidden setup) or use one of {sorted(builtin)}"
                )
            value = namespace[name]
            wrapped = getattr(value, "_get_wrapped_function", None)
            if wrapped is None:
                return value
            fixture = wrapped()
            result = fixture(*(resolve(p) for p in inspect.signature(fixture).parameters))
            if inspect.isgenerator(result):
                generator = result
                result = next(generator)
                stack.callback(lambda: next(generator, None))
            return result

        arguments = [resolve(name) for name in inspect.signature(function).parameters]
        marks = getattr(function, "pytestmark", [])
        unknown = [mark.name for mark in marks if mark.name not in (MARKER, "django_db")]
        if unknown:
            raise ExampleError(
                f"{block.id}: {function.__name__} has marks the docs runner does "
                f"not apply: {unknown}"
            )
        for mark in marks:
            if mark.name == MARKER:
                checks = _marker_checks(mark)
                stack.enter_context(checked_capture(checks, mark.kwargs.get("using"), _fail_marker))
        result = function(*arguments)
        if inspect.iscoroutine(result):
            from asgiref.sync import async_to_sync

            async def wait() -> None:
                await result

            async_to_sync(wait)()


RUNNERS: dict[str, Callable[[PageRun, Block], None]] = {
    "code": PageRun.run_code,
    "settings": PageRun.run_settings,
    "models": PageRun.run_models,
    "test": PageRun.run_test,
}


# --- Console blocks --------------------------------------------------------------------------

# Programs an example may run besides manage.py, python, pip and make (each checked in depth).
ALLOWED_PROGRAMS = {
    "pytest",
    "nox",
    "git",
    "twine",
    "ruff",
    "mypy",
    "sphinx-build",
    "cd",
    "export",
    "apt-get",
    "createdb",
    "psql",
}
PLACEHOLDER = re.compile(r"<[^>]*>|\.\.\.|\[[^\]]*\]$")


def console_commands(block: Block) -> list[tuple[int, str]]:
    """``(line, command)`` for each ``$ `` line, joined with its ``\\`` continuations."""
    commands: list[tuple[int, str]] = []
    lines = block.source.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("$ "):
            number, command = block.first_line + index, line[2:]
            while command.rstrip().endswith("\\") and index + 1 < len(lines):
                index += 1
                command = command.rstrip()[:-1] + " " + lines[index].strip()
            commands.append((number, command))
        index += 1
    return commands


def _program(token: str) -> str:
    name = token.rsplit("/", 1)[-1]
    return "python" if re.fullmatch(r"python(3(\.\d+)?)?", name) else name


def check_command(command: str, where: str) -> None:
    """Raise ``ExampleError`` unless ``command`` runs here as written."""
    words = shlex.split(command, comments=True)
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        words.pop(0)  # environment variables
    if words and words[0] == "sudo":
        words.pop(0)
    if not words:
        raise ExampleError(f"{where}: `$ {command}` runs nothing")
    program, args = _program(words[0]), words[1:]
    if program == "python":
        _check_python(args, where)
    elif program == "django-admin":
        _check_django_command(args, where)
    elif program == "pip":
        _check_pip(args, where)
    elif program == "make":
        _check_make(args, where)
    elif program == "pytest":
        _check_paths(args, where)
    elif program not in ALLOWED_PROGRAMS:
        raise ExampleError(
            f"{where}: `{words[0]}` is not a program the docs examples know; if it should be "
            "shown, add it to ALLOWED_PROGRAMS in tests/docs_examples_support.py"
        )


def _check_python(args: list[str], where: str) -> None:
    if not args:
        raise ExampleError(f"{where}: `python` alone is an interactive session")
    if args[0] == "-m" and len(args) > 1:
        module, rest = args[1], args[2:]
        if module == "django":
            return _check_django_command(rest, where)
        if module == "pip":
            return _check_pip(rest, where)
        if module == "tests.servers":
            if "--" in rest:
                return check_command(shlex.join(rest[rest.index("--") + 1 :]), where)
            return None
        if not _spec_exists(module):
            raise ExampleError(f"{where}: `python -m {module}`: no module {module!r}")
        return None
    if args[0] == "-c" and len(args) > 1:
        compile(args[1], where, "exec")
        return None
    script = args[0]
    if Path(script).name == "manage.py":
        if not (ROOT / script).is_file():
            raise ExampleError(f"{where}: {script} does not exist")
        return _check_django_command(args[1:], where)
    if not (ROOT / script).is_file():
        raise ExampleError(f"{where}: `python {script}`: {script} does not exist")
    return None


def _check_django_command(args: list[str], where: str) -> None:
    from django.core.management import get_commands, load_command_class
    from django.core.management.base import CommandError

    if not args:
        raise ExampleError(f"{where}: manage.py without a command")
    name, rest = args[0], args[1:]
    commands = get_commands()
    if name not in commands:
        raise ExampleError(f"{where}: `{name}` is not a management command of this project")
    placeholders = [word for word in rest if PLACEHOLDER.search(word)]
    if placeholders:
        raise ExampleError(
            f"{where}: `{name}` is given placeholders {placeholders}; show real values"
        )
    command = load_command_class(commands[name], name)
    parser = command.create_parser("manage.py", name)
    try:
        parser.parse_args(rest)
    except CommandError as error:
        raise ExampleError(f"{where}: `manage.py {shlex.join(args)}`: {error}") from error
    except SystemExit as error:  # --help, --version
        raise ExampleError(f"{where}: `manage.py {shlex.join(args)}` only prints help") from error


def _extras() -> set[str]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        project = tomllib.load(file)["project"]
    return set(project.get("optional-dependencies", {}))


def _check_pip(args: list[str], where: str) -> None:
    if not args or args[0] not in ("install", "uninstall", "show", "list", "download"):
        raise ExampleError(f"{where}: `pip {shlex.join(args)}`: not a pip command shown here")
    for word in args[1:]:
        match = re.fullmatch(r"(?:django[-_]dbperf|\.)\[(?P<extras>[^\]]*)\](?:[<>=!~].*)?", word)
        if match:
            unknown = [
                extra.strip()
                for extra in match["extras"].split(",")
                if extra.strip() not in _extras()
            ]
            if unknown:
                raise ExampleError(
                    f"{where}: pyproject.toml has no extra {unknown} (it has "
                    f"{', '.join(sorted(_extras()))})"
                )


def makefile_targets() -> set[str]:
    targets = set()
    for line in (ROOT / "Makefile").read_text().splitlines():
        match = re.match(r"^(?P<names>[A-Za-z0-9_./-][^:=#]*?)\s*:(?!=)", line)
        if match and not line.startswith((".", "\t")):
            targets.update(match["names"].split())
    return targets


def _check_make(args: list[str], where: str) -> None:
    goals = [word for word in args if not word.startswith("-") and "=" not in word]
    missing = [goal for goal in goals if goal not in makefile_targets()]
    if missing:
        raise ExampleError(f"{where}: the Makefile has no target {missing}")


def _check_paths(args: list[str], where: str) -> None:
    """pytest's path arguments must exist (a renamed test file breaks the example)."""
    for word in args:
        if word.startswith("-") or "/" not in word:
            continue
        path = word.split("::")[0]
        if not (ROOT / path).exists():
            raise ExampleError(f"{where}: {path} does not exist")


def check_console_block(block: Block) -> None:
    commands = console_commands(block)
    if not commands:
        raise ExampleError(
            f"{block.id}: a console block without a `$ ` command; mark the commands with `$ `, "
            "or make it a `text` block if it is only output"
        )
    for line, command in commands:
        check_command(command, f"{block.path}:{line}")
