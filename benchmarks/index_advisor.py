"""The index advisor's loop on real data, timed: a 200,000-row table, a slow filtered and sorted
page driven through the middleware, then suggest --write -> makemigrations -> migrate ->
verify, and the same statement timed before and after the index, side by side in one run.

Run under the throwaway servers (PostgreSQL with hypopg):

    .venv/bin/python -m tests.servers -- .venv/bin/python benchmarks/index_advisor.py
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.advisor_project import Project, fill, make_project


def timed(connection: Any, sql: str, params: list[Any], runs: int) -> list[float]:
    """Milliseconds per execution of ``sql`` (rows fetched), ``runs`` times."""
    times = []
    with connection.cursor() as cursor:
        for _ in range(runs):
            start = time.perf_counter()
            cursor.execute(sql, params)
            cursor.fetchall()
            times.append((time.perf_counter() - start) * 1000)
    return times


def statement(project: Project, fingerprint: str) -> str:
    advice = json.loads(
        project.manage("dbperf_indexes", "suggest", "--format", "json").stdout
    )  # fmt: skip
    for suggestion in advice["suggestions"]:
        for shape in suggestion["shapes"]:
            if shape["fingerprint"] == fingerprint or not fingerprint:
                return str(shape["sql"])
    raise SystemExit("the advisor suggested nothing: " + json.dumps(advice, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    url = os.environ.get("DBPERF_TEST_DATABASE_URL")
    if not url:
        raise SystemExit("run under: python -m tests.servers -- python benchmarks/index_advisor.py")
    import psycopg

    name = f"dbperf_bench_{secrets.token_hex(4)}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        project = make_project(Path(tempfile.mkdtemp()), f"{url.rsplit('/', 1)[0]}/{name}")
        project.manage("makemigrations", "shop", "-v0")
        project.manage("migrate", "-v0")
        with psycopg.connect(project.database_url, autocommit=True) as connection:
            fill(connection.cursor(), orders=args.rows)
            connection.execute("CREATE EXTENSION IF NOT EXISTS hypopg")
        started = time.perf_counter()
        project.drive(rounds=2)
        sql = statement(project, "")
        advised = time.perf_counter()
        print(project.manage("dbperf_indexes", "suggest", "--write").stdout)
        print(f"suggest --write took {time.perf_counter() - advised:.1f} s "
              f"(driving the requests: {advised - started:.1f} s)")  # fmt: skip
        # psycopg's own placeholders are %s too: the stored statement runs as it is.
        params = [7]
        with psycopg.connect(project.database_url, autocommit=True) as connection:
            before = timed(connection, sql, params, args.runs)
            project.manage("makemigrations", "shop", "-v0")
            project.manage("migrate", "-v0")
            after = timed(connection, sql, params, args.runs)
            plan = connection.execute("EXPLAIN " + sql, params).fetchall()
        print(project.manage("dbperf_indexes", "verify", "--app", "shop").stdout)
        print("The plan after the migration:")
        print("\n".join("  " + row[0] for row in plan))
        b, a = statistics.median(before), statistics.median(after)
        print(f"\n{args.rows:,} rows, {args.runs} runs each, median:")
        print(f"  before the index: {b:8.3f} ms")
        print(f"  after the index:  {a:8.3f} ms")
        print(f"  ratio:            {b / a:8.1f}x faster")
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


if __name__ == "__main__":
    main()
