"""Every ``python`` and ``console`` code block of the docs and README runs, one item per block.

The conventions (hidden setup, ``.. example: <kind>`` markers, what each kind checks) are in
docs/development.rst, "Docs examples"; the collector and runners in tests/docs_examples_support.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.conf import settings
from django.core.cache import caches

from tests.docs_examples_support import (
    Block,
    ExampleError,
    PageRun,
    check_command,
    check_console_block,
    collect,
    console_commands,
    fill_ellipsis,
    parse_markdown,
    parse_rst,
)

PAGES = collect()
PYTHON = [block for page in PAGES for block in page.python]
CONSOLE = [block for page in PAGES for block in page.blocks if block.lang == "console"]
PAGE_OF = {id(block): page for page in PAGES for block in page.blocks}


@pytest.fixture
def clean_caches() -> Iterator[None]:
    """Examples start with empty caches and leave none of their entries behind."""
    from django_dbperf.cache.store import STORE

    def clear() -> None:
        for alias in settings.CACHES:
            caches[alias].clear()
        STORE.reset()

    clear()
    yield
    clear()


@pytest.mark.django_db
@pytest.mark.parametrize("block", PYTHON, ids=[block.id for block in PYTHON])
def test_python_example(block: Block, clean_caches: None) -> None:
    run = PageRun(PAGE_OF[id(block)])
    try:
        run.run_until(block)
    finally:
        run.close()


@pytest.mark.parametrize("block", CONSOLE, ids=[block.id for block in CONSOLE])
def test_console_example(block: Block) -> None:
    check_console_block(block)


def test_markers_and_setups_belong_to_blocks() -> None:
    problems = [problem for page in PAGES for problem in page.problems]
    assert not problems, "\n".join(problems)


# --- The collector and the checks themselves -------------------------------------------------

RST = """\
Title
=====

.. example-setup
   from example_project.scheduler.models import Event

.. code-block:: python

   Event.objects.count()

Term
   .. example: settings warns dbperf.W001

   .. code-block:: python
      :caption: nested

      DBPERF = {}

Quoted, never run::

   .. code-block:: python

      raise SystemExit

.. code-block:: text

   output

.. code-block:: console

   $ python manage.py check
   System check identified no issues.
"""

MARKDOWN = """\
<!-- example-setup
client = Client()
-->

<!-- example: test -->

```python
def test_it(): ...
```

```console
$ make demo
```
"""


def test_rst_blocks_their_kinds_lines_and_setup() -> None:
    page = parse_rst("docs/sample.rst", RST)
    assert not page.problems
    assert [(b.line, b.lang, b.kind) for b in page.blocks] == [
        (7, "python", "code"),
        (14, "python", "settings"),
        (29, "console", "code"),
    ]
    first, nested = page.python
    assert [s.line for s in first.setup] == [5]
    assert "import Event" in first.setup[0].source
    assert first.source == "Event.objects.count()\n" and first.first_line == 9
    assert nested.warns == ("dbperf.W001",) and nested.source == "DBPERF = {}\n"


def test_markdown_blocks_their_kinds_and_setup() -> None:
    page = parse_markdown("README.md", MARKDOWN)
    assert not page.problems
    test, console = page.blocks
    assert (test.line, test.kind, test.setup[0].source) == (7, "test", "client = Client()\n")
    assert console_commands(console) == [(12, "make demo")]


def test_stray_markers_and_setups_are_problems() -> None:
    page = parse_rst(
        "docs/x.rst",
        ".. example: settings\n\nSome text.\n\n.. example: sideways\n\n"
        ".. code-block:: python\n\n   x = 1\n\n.. example-setup\n   y = 2\n",
    )
    assert len(page.problems) == 3
    assert "docs/x.rst:1: `.. example:` must stand right before" in page.problems[1]
    assert "unknown example kind 'sideways'" in page.problems[0]
    assert "is not followed by a python block" in page.problems[2]


@pytest.mark.parametrize(
    "command",
    [
        "python manage.py dbperf_audit /events/ --fail-on nplusone,budget",
        ".venv/bin/python -m tests.servers -- .venv/bin/pytest tests/test_checks.py",
        'pip install "django-dbperf[toolbar,nplusone]"',
        "DATABASE_URL=sqlite:///x make demo",
    ],
)
def test_commands_that_run(command: str) -> None:
    check_command(command, "here")


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("python manage.py dbperf_audit <url>", "placeholders"),
        ("python manage.py dbperf_audit --max-queries lots", "invalid int value"),
        ("python manage.py dbperf_nothing", "not a management command"),
        ('pip install "django-dbperf[turbo]"', "no extra ['turbo']"),
        ("make deploy", "no target ['deploy']"),
        ("pytest tests/test_gone.py", "does not exist"),
        ("curl https://example.com", "ALLOWED_PROGRAMS"),
    ],
)
def test_commands_that_do_not_run(command: str, message: str) -> None:
    with pytest.raises(ExampleError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_command(command, "here")


def test_ellipsis_stands_for_the_base_settings() -> None:
    base = {"default": {"BACKEND": "locmem"}}
    assert fill_ellipsis({"default": {...}, "x": {}}, base, "CACHES") == {**base, "x": {}}
    assert fill_ellipsis(["a", ..., "z"], ["a", "b", "z"], "APPS") == ["a", "b", "z"]
    with pytest.raises(ExampleError, match="stands for nothing"):
        fill_ellipsis({"other": {...}}, base, "CACHES")


def run_page(text: str) -> None:
    """Run the last python block of an rst page as its item would."""
    page = parse_rst("docs/sample.rst", text)
    assert not page.problems
    run = PageRun(page)
    try:
        run.run_until(page.python[-1])
    finally:
        run.close()


SETUP = """
.. example-setup
   from django.contrib.auth.models import User
   from django.db import models
   from django_dbperf.managers import EagerManager
   from example_project.scheduler.models import Tag

"""


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("page", "message"),
    [
        (
            ".. example: settings\n\n.. code-block:: python\n\n   DBPERF = {'SAMPLE_RATIO': 1}\n",
            "dbperf.E002",
        ),
        (
            ".. example: settings\n\n.. code-block:: python\n\n"
            "   DBPERF = {'CACHE': {'ALIAS': 'valkey', 'TTL': {'shop.Order': 60}}}\n",
            "dbperf.E007",
        ),
        (
            ".. example: settings\n\n.. code-block:: python\n\n"
            "   MIDDLEWARE = ['django.contrib.sessions.middleware.SessionMiddleware',\n"
            "                 'django_dbperf.middleware.QueryCountMiddleware']\n",
            "dbperf.W001",
        ),
        (".. example: settings\n\n.. code-block:: python\n\n   DBPREF = {}\n", "not a setting"),
        (
            SETUP + ".. example: models\n\n.. code-block:: python\n\n"
            "   class Event(models.Model):\n"
            "       owner = models.ForeignKey(User, on_delete=models.CASCADE)\n"
            "       objects = EagerManager(profiles={'list': ['owner', 'tags']})\n",
            "dbperf.E009",
        ),
        (
            SETUP + ".. code-block:: python\n\n"
            "   class Event(models.Model):\n"
            "       tags = models.ManyToManyField(Tag)\n",
            "mark the block `.. example: models`",
        ),
        (
            ".. example: test\n\n.. code-block:: python\n\n"
            "   def test_the_naive_page(client, dbperf):\n"
            "       from example_project.scheduler.seeding import seed_demo\n"
            "       seed_demo(events=5)\n"
            "       with dbperf.no_nplusone():\n"
            "           client.get('/events/')\n",
            r"N\+1 on scheduler\.Event\.",
        ),
        (
            ".. example: test\n\n.. code-block:: python\n\n"
            "   from django.test import TestCase\n\n"
            "   class T(TestCase):\n"
            "       def test_it(self):\n"
            "           self.assertEqual(self.client.get('/nowhere/').status_code, 200)\n",
            "1 test\\(s\\) of T failed",
        ),
        (
            ".. code-block:: python\n\n   x = 1\n\n.. code-block:: python\n\n   y = x / 0\n\n"
            ".. code-block:: python\n\n   z = y\n",
            "docs/sample.rst:5, an earlier block of the page that docs/sample.rst:9",
        ),
    ],
)
def test_examples_that_fail(page: str, message: str) -> None:
    with pytest.raises(BaseException, match=message):
        run_page(page)


@pytest.mark.django_db
def test_a_module_block_is_importable_for_the_page_only() -> None:
    import sys

    run_page(
        ".. code-block:: python\n\n   # myproject/cache.py\n   def schema(connection):\n"
        "       return 'public'\n\n.. example: settings\n\n.. code-block:: python\n\n"
        "   DBPERF = {'CACHE': {'ALIAS': 'valkey', 'NAMESPACE': 'myproject.cache.schema'}}\n"
    )
    assert "myproject" not in sys.modules


@pytest.mark.django_db
def test_example_models_leave_the_real_models_as_they_were() -> None:
    from django.apps import apps
    from django.contrib.auth.models import User

    from example_project.scheduler.models import Event, Workflow

    run_page(
        SETUP + ".. example: models\n\n.. code-block:: python\n\n"
        "   class Event(models.Model):\n"
        "       owner = models.ForeignKey(User, models.CASCADE, related_name='events')\n"
        "       workflow = models.ForeignKey('scheduler.Workflow', models.CASCADE)\n"
        "       objects = EagerManager(profiles={'list': ['owner', 'workflow__nodes']})\n\n"
        "   list(Event.objects.all())\n"
    )
    assert apps.get_model("scheduler.Event") is Event
    assert User.events.rel.related_model is Event
    assert not hasattr(Workflow, "event_set")
    assert {rel.name for rel in Workflow._meta.related_objects} >= {"events", "nodes"}
