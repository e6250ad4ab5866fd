"""Indexes declared in apps' ``dbperf_indexes.py`` modules join their models' ``Meta.indexes``.

Done once, at startup (``AppConfig.ready()``), so that plain ``makemigrations`` sees them like
any index written in a model's Meta and writes ``AddIndex`` into the model's own app. An index a
model already declares (same name, or same definition) is not added twice.

A module looks like this (``dbperf_indexes suggest --write`` writes it; it is reviewed code)::

    from django.db import models

    INDEXES = {
        "Event": [models.Index(fields=["owner", "-created_at"], name="dp_event_owner_3f2a9c1b")],
    }
    SHAPES = {"dp_event_owner_3f2a9c1b": [{"fingerprint": "a1b2c3d4e5f6", "sql": "SELECT ..."}]}
    REJECTED = ["dp_event_name_77aa01cd"]  # suggestions a person said no to: never written again
"""

from __future__ import annotations

import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.apps import AppConfig, apps
from django.db import models

MODULE_NAME = "dbperf_indexes"


class DeclarationError(ValueError):
    """A ``dbperf_indexes.py`` module that cannot be used; the message says how to fix it."""


@dataclass(frozen=True)
class Declared:
    """One index a ``dbperf_indexes.py`` module declares."""

    app_label: str
    model_name: str  # the class name, "Event"
    index: models.Index
    module: str  # "scheduler.dbperf_indexes"
    shapes: tuple[dict[str, Any], ...] = field(default=())  # what it was suggested for
    added: bool = True  # False: the model already declared the same index itself

    @property
    def model_label(self) -> str:
        return f"{self.app_label}.{self.model_name}"


@dataclass(frozen=True)
class AppDeclarations:
    """What one app's module holds, as written (for ``modules.py`` to merge into)."""

    app_label: str
    module: str
    indexes: dict[str, list[models.Index]]
    shapes: dict[str, list[dict[str, Any]]]
    rejected: tuple[str, ...]


_declared: dict[str, Declared] = {}
_errors: list[str] = []


def module_name(app_config: AppConfig) -> str:
    return f"{app_config.name}.{MODULE_NAME}"


def read_module(app_config: AppConfig) -> AppDeclarations | None:
    """The app's ``dbperf_indexes`` module's contents, None when it has none.

    Raises DeclarationError for a module whose contents are not what ``--write`` writes."""
    name = module_name(app_config)
    path = Path(app_config.path) / f"{MODULE_NAME}.py"
    if not path.is_file():
        return None
    # Run from source every time: the file may have just been rewritten by --write, and a
    # cached module or bytecode (same second, same size) would hide the change.
    module = runpy.run_path(str(path), run_name=name)
    indexes = module.get("INDEXES", {})
    shapes = module.get("SHAPES", {})
    rejected = module.get("REJECTED", [])
    if not isinstance(indexes, dict):
        raise DeclarationError(f"{name}.INDEXES must be a dict of model name -> list of indexes.")
    for model_name, declared in indexes.items():
        if not isinstance(declared, list | tuple) or not all(
            isinstance(index, models.Index) for index in declared
        ):
            raise DeclarationError(
                f"{name}.INDEXES[{model_name!r}] must be a list of models.Index objects."
            )
        for index in declared:
            if not index.name:
                raise DeclarationError(
                    f"An index in {name}.INDEXES[{model_name!r}] has no name: give it "
                    f"name=... (at most {index.max_name_length} characters)."
                )
    if not isinstance(shapes, dict) or not isinstance(rejected, list | tuple):
        raise DeclarationError(f"{name}.SHAPES must be a dict and {name}.REJECTED a list.")
    return AppDeclarations(
        app_config.label,
        name,
        {str(key): list(value) for key, value in indexes.items()},
        {str(key): list(value) for key, value in shapes.items()},
        tuple(str(item) for item in rejected),
    )


def same_index(one: models.Index, other: models.Index) -> bool:
    """The same definition, whatever the names (deconstruct() without the name)."""
    _, args, kwargs = one.deconstruct()
    _, other_args, other_kwargs = other.deconstruct()
    kwargs.pop("name", None)
    other_kwargs.pop("name", None)
    return bool(args == other_args and kwargs == other_kwargs)


def _add(model: type[models.Model], index: models.Index) -> bool:
    meta = model._meta
    for existing in meta.indexes:
        if existing.name == index.name or same_index(existing, index):
            return False
    # A new list: an abstract parent's Meta may share the old one. The migration state reads
    # indexes only when they appear among the Meta's original attributes.
    meta.indexes = [*meta.indexes, index]
    meta.original_attrs["indexes"] = meta.indexes
    return True


def load() -> None:
    """Read every installed app's module and add its indexes to the models (idempotent).

    Problems are kept for the system check (``errors()``), never raised at startup."""
    _errors.clear()
    for app_config in apps.get_app_configs():
        try:
            contents = read_module(app_config)
        except DeclarationError as error:
            _errors.append(str(error))
            continue
        except Exception as error:  # the module itself fails to import
            _errors.append(f"{module_name(app_config)} could not be imported: {error!r}")
            continue
        if contents is None:
            continue
        for model_name, indexes in contents.indexes.items():
            try:
                model = app_config.get_model(model_name)
            except LookupError:
                _errors.append(
                    f"{contents.module}.INDEXES names {model_name!r}, which is not a model of "
                    f"the app {app_config.label!r}: use the model's class name, or remove it."
                )
                continue
            for index in indexes:
                known = _declared.get(index.name)
                if known is not None and known.model_label != f"{app_config.label}.{model_name}":
                    _errors.append(
                        f"The index name {index.name!r} is declared for both "
                        f"{known.model_label} and {app_config.label}.{model_name}: rename one."
                    )
                    continue
                added = _add(model, index) if known is None else known.added
                _declared[index.name] = Declared(
                    app_config.label,
                    model._meta.object_name or model_name,
                    index,
                    contents.module,
                    tuple(contents.shapes.get(index.name, ())),
                    added,
                )


def declared() -> dict[str, Declared]:
    """Index name -> its declaration, for every index a ``dbperf_indexes`` module declares."""
    return dict(_declared)


def declared_index_names() -> frozenset[str]:
    return frozenset(_declared)


def errors() -> list[str]:
    """What ``load()`` could not use, for the system check."""
    return list(_errors)
