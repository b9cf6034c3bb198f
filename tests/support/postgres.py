"""A throwaway PostgreSQL cluster for the tests: Debian's initdb and pg_ctl, a temp dir, loopback, a generated password.

The server runs as an unprivileged user when the tests run as root (PostgreSQL
refuses root): the ``postgres`` user of the Debian package, or a system user
``tsunagu-test`` created for the purpose. It listens on 127.0.0.1 only, on a
free port, with no Unix socket outside its own directory, and requires a
SCRAM password that is generated per session and never printed (the URL's
``str()`` masks it). Missing binaries are an error, not a skip: ``make test``
installs them (``make postgres``).
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from sqlalchemy.engine import URL

from tests.support.server import free_port

_BINARIES = "/usr/lib/postgresql/*/bin/initdb"
_SUPERUSER = "tsunagu"
_DATABASE = "tsunagu"
_FALLBACK_USER = "tsunagu-test"
_PREFIX = "tsunagu-pg-"


@dataclass(frozen=True)
class _Owner:
    """The test process that started a cluster: pid, start time (a pid can be used again) and repository root."""

    pid: int
    started: int
    repository: str

    @classmethod
    def of(cls, pid: int) -> "_Owner | None":
        try:
            stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            return None
        return cls(pid, int(stat[19]), str(Path(__file__).resolve().parents[2]))

    def write_to(self, root: Path) -> None:
        (root / "owner").write_text(f"{self.pid} {self.started} {self.repository}\n", encoding="utf-8")

    @classmethod
    def read_from(cls, root: Path) -> "_Owner | None":
        try:
            pid, started, repository = (root / "owner").read_text(encoding="utf-8").strip().split(" ", 2)
            return cls(int(pid), int(started), repository)
        except (FileNotFoundError, ValueError):
            return None

    def alive(self) -> bool:
        now = _Owner.of(self.pid)
        return now is not None and now.started == self.started


_OWNER = _Owner.of(os.getpid())


def stop_orphans(binaries: Path, account: pwd.struct_passwd | None) -> list[Path]:
    """Stop and remove the clusters this repository's killed test runs left behind (their owning process is gone).

    A run killed before its session ended never stopped its cluster. Clusters of other checkouts, and of test
    processes still running, are left alone. Returns the removed cluster folders."""
    removed = []
    for root in sorted(Path(tempfile.gettempdir()).glob(f"{_PREFIX}*")):
        owner = _Owner.read_from(root)
        if owner is None or owner.repository != _OWNER.repository or owner.alive():
            continue
        if (root / "data" / "postmaster.pid").exists():
            _run(account, root, [str(binaries / "pg_ctl"), "stop", "-D", str(root / "data"), "-m", "immediate", "-w"], check=False)
        shutil.rmtree(root, ignore_errors=True)
        removed.append(root)
    return removed


class PostgresUnavailable(RuntimeError):
    """PostgreSQL cannot be started here; the message says what to install or fix."""


def bin_dir() -> Path:
    """The ``bin`` directory of the newest installed PostgreSQL major version."""
    found = glob.glob(_BINARIES)
    if not found:
        raise PostgresUnavailable(
            f"PostgreSQL server binaries not found ({_BINARIES}). Run `make postgres` "
            "(or `apt-get install -y postgresql`) — the audit store tests need a real PostgreSQL."
        )
    newest = max(found, key=lambda p: int(re.search(r"/postgresql/(\d+)/", p).group(1)))
    return Path(newest).parent


@dataclass
class Cluster:
    """A running throwaway cluster: its URL, and stop/start for tests of a database that goes away (same port)."""

    url: URL
    _account: pwd.struct_passwd | None
    _root: Path
    _binaries: Path
    _data: Path
    _log: Path

    def stop(self) -> None:
        """Stop the server (fast shutdown: open connections are cut)."""
        _run(self._account, self._root, [str(self._binaries / "pg_ctl"), "stop", "-D", str(self._data), "-m", "fast", "-w"])

    def start(self) -> None:
        """Start the stopped server again on the same port."""
        options = f"-c listen_addresses=127.0.0.1 -p {self.url.port} -c unix_socket_directories={self._root}"
        _run(self._account, self._root, [str(self._binaries / "pg_ctl"), "start", "-D", str(self._data), "-l", str(self._log),
                                         "-w", "-t", "60", "-o", options])


@contextmanager
def cluster() -> Iterator[URL]:
    """Start a cluster in a temp dir and yield a ``postgresql+psycopg`` URL to an empty database; stop it on exit."""
    with controllable_cluster() as handle:
        yield handle.url


@contextmanager
def controllable_cluster() -> Iterator[Cluster]:
    """As :func:`cluster`, yielding a :class:`Cluster` that can be stopped and started again."""
    binaries = bin_dir()
    account = _server_account()
    stop_orphans(binaries, account)
    password = secrets.token_urlsafe(24)
    root = Path(tempfile.mkdtemp(prefix=_PREFIX))
    data, log = root / "data", root / "server.log"
    try:
        _OWNER.write_to(root)
        if account is not None:
            os.chown(root, account.pw_uid, account.pw_gid)
        pwfile = root / "pwfile"
        pwfile.touch(mode=0o600)
        pwfile.write_text(password + "\n")
        if account is not None:
            os.chown(pwfile, account.pw_uid, account.pw_gid)
        _run(account, root, [str(binaries / "initdb"), "-D", str(data), "-U", _SUPERUSER, f"--pwfile={pwfile}",
                             "--auth=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])
        pwfile.unlink()
        port = _start(account, root, binaries, data, log)
        try:
            admin = URL.create("postgresql+psycopg", _SUPERUSER, password, "127.0.0.1", port, "postgres")
            create_database(admin, _DATABASE)
            yield Cluster(admin.set(database=_DATABASE), account, root, binaries, data, log)
        finally:
            _run(account, root, [str(binaries / "pg_ctl"), "stop", "-D", str(data), "-m", "fast", "-w"], check=False)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def create_database(url: URL, name: str) -> URL:
    """Create database ``name`` on the server of ``url``; return the URL of the new database."""
    import psycopg

    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise ValueError(f"not a plain database name: {name!r}")
    with psycopg.connect(host=url.host, port=url.port, user=url.username, password=url.password,
                         dbname=url.database, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return url.set(database=name)


def clone_database(template: URL, name: str) -> None:
    """Replace database ``name`` by a copy of the database of ``template`` (``CREATE DATABASE … TEMPLATE``).

    PostgreSQL copies a template only while nobody is connected to it: sessions still open on it (a pool
    left behind by an in-process command) are ended first."""
    import psycopg

    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name) or not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", template.database or ""):
        raise ValueError(f"not a plain database name: {name!r} / {template.database!r}")
    with psycopg.connect(host=template.host, port=template.port, user=template.username, password=template.password,
                         dbname="postgres", autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname IN (%s, %s) AND pid <> pg_backend_pid()",
                     (template.database, name))
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template.database}")


def _server_account() -> pwd.struct_passwd | None:
    """The unprivileged account to run the server as, or None when the tests already run unprivileged."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", _FALLBACK_USER):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", _FALLBACK_USER],
                   check=True, capture_output=True)
    return pwd.getpwnam(_FALLBACK_USER)


def _start(account: pwd.struct_passwd | None, root: Path, binaries: Path, data: Path, log: Path) -> int:
    # The free port is found by binding port 0; another process may take it
    # before the server binds, so a failed start is retried on a new port.
    for _attempt in range(3):
        port = free_port()
        options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={root}"
        result = _run(account, root, [str(binaries / "pg_ctl"), "start", "-D", str(data), "-l", str(log),
                                      "-w", "-t", "60", "-o", options], check=False)
        if result.returncode == 0:
            return port
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else result.stderr
    raise PostgresUnavailable(f"PostgreSQL did not start (pg_ctl exit {result.returncode}). Server log:\n{tail}")


def _run(account: pwd.struct_passwd | None, cwd: Path, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": str(cwd)}
    kwargs = {}
    if account is not None:
        kwargs = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, **kwargs)
    if check and result.returncode != 0:
        raise PostgresUnavailable(f"{Path(argv[0]).name} failed (exit {result.returncode}): {result.stderr.strip()[-2000:]}")
    return result
