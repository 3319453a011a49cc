"""A throwaway PostgreSQL cluster for the tests: real server, temporary directory, random port.

``initdb`` refuses to run as root, so as root the cluster belongs to the ``postgres`` user.
Set ``TEST_POSTGRES_URL`` to use an existing server instead (:class:`ExistingPostgres`): the tests
then create their databases in it (the URL's user needs ``CREATEDB``) and leave them there.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit


def _bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    if candidates:
        return Path(candidates[0])
    pg_ctl = shutil.which("pg_ctl")
    if not pg_ctl:
        raise RuntimeError("PostgreSQL server binaries not found: apt-get install postgresql")
    return Path(pg_ctl).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ThrowawayPostgres:
    login = "postgres"
    password: str | None = None

    def __init__(self, *settings: str) -> None:
        """``settings``: more ``name=value`` server settings (the benchmark's statement statistics)."""
        self.base = Path(tempfile.mkdtemp(prefix="pg-test-"))
        self.data = self.base / "data"
        self.port = _free_port()
        self._as_owner: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres", "postgres")
            self._as_owner = ["runuser", "-u", "postgres", "--"]
        bindir = _bindir()
        self._run(
            [str(bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"]
        )
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        options += "".join(f" -c {setting}" for setting in settings)
        self._pg_ctl = str(bindir / "pg_ctl")
        self._run(
            [self._pg_ctl, "-D", str(self.data), "-l", str(self.base / "server.log"), "-o", options, "-w", "start"]
        )

    def _run(self, command: list[str]) -> None:
        subprocess.run(self._as_owner + command, check=True, capture_output=True, cwd=self.base)

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        subprocess.run(
            self._as_owner + [self._pg_ctl, "-D", str(self.data), "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(self.base, ignore_errors=True)


class ExistingPostgres:
    """A server someone else runs, named by a URL such as ``postgresql://user:pass@host:5432/postgres``
    (any driver suffix is ignored). Nothing is started or stopped."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if not parts.scheme.startswith("postgres") or not parts.hostname:
            raise ValueError("TEST_POSTGRES_URL must look like postgresql://user:password@host:5432/postgres")
        self.host = parts.hostname
        self.port = parts.port or 5432
        self.login = unquote(parts.username or "postgres")
        self.password = unquote(parts.password) if parts.password else None
        self.admin_database = parts.path.lstrip("/") or "postgres"

    def url(self, database: str | None = None) -> str:
        auth = quote(self.login, safe="") + (f":{quote(self.password, safe='')}" if self.password else "")
        return f"postgresql+psycopg2://{auth}@{self.host}:{self.port}/{database or self.admin_database}"

    def stop(self) -> None:
        pass


def create_database(server: ThrowawayPostgres | ExistingPostgres, name: str) -> str:
    """A new, empty database ``name`` on ``server``; returns its URL."""
    import sqlalchemy as sa

    admin = sa.create_engine(server.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return server.url(name)
