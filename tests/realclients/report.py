"""Print, per page of the real-client project, its query count and every finding.

``python -m tests.realclients.report [--items N]`` builds a throwaway test database (SQLite in
memory, or PostgreSQL when ``DBPERF_TEST_DATABASE_URL`` is set), seeds it with ``seed(N)``,
visits every page warm and prints what ``capture_queries()`` found: ``str(finding)`` and the
fields of ``finding.as_dict()``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:  # imported at run time only after django.setup()
    from tests.realclients.pages import Visit


def print_visit(visit: Visit, out: TextIO) -> None:
    captured = visit.captured
    print(
        f"== {visit.case.id}  GET {visit.url}  status {visit.status}: {len(captured)} queries "
        f"(Django counted {visit.django_count}), {len(captured.findings)} findings",
        file=out,
    )
    for finding in captured.findings:
        print("  " + str(finding).replace("\n", "\n  "), file=out)
        for key, value in finding.as_dict().items():
            if key != "suggestion":  # printed above as "fix:"
                print(f"      {key}: {value}", file=out)
    print(file=out)


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=3, help="items per list (default 3)")
    parser.add_argument("--only", action="append", help="page id to visit (repeatable)")
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.realclients.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection, transaction
    from django.test.utils import setup_test_environment, teardown_test_environment

    from tests.realclients.pages import PAGES, visit
    from tests.realclients.seed import seed

    # The findings are printed below; the middleware's log records would say them twice.
    logging.getLogger("django_dbperf").addHandler(logging.NullHandler())
    logging.getLogger("django_dbperf").propagate = False

    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        print(
            f"dbperf real clients: Django {django.get_version()}, {connection.vendor}, "
            f"seed({args.items})\n",
            file=out,
        )
        with transaction.atomic():
            seeded = seed(args.items)
            for case in PAGES:
                if args.only and case.id not in args.only:
                    continue
                print_visit(visit(case, seeded), out)
            transaction.set_rollback(True)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        teardown_test_environment()
        shutil.rmtree(settings.MEDIA_ROOT, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
