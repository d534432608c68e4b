"""A real PostgreSQL server for the account tests: initdb and pg_ctl into a temporary folder,
listening on a loopback port only, stopped at the end. Skipped, saying why, only when the
server's binaries are not installed (.ci/install-postgres installs them)."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Yields a postgresql:// URL to a fresh server; stops it and removes its files after."""
    bindir = pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not installed (no /usr/lib/postgresql/*/bin)")
    psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed")
    del psycopg
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="batchgen-pg-"))
    if os.geteuid() == 0:  # initdb refuses root: run the server as the postgres user
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and no 'postgres' user to run the server as")
        os.chown(folder, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", _free_port()
    run = dict(check=True, capture_output=True, timeout=120)
    try:
        subprocess.run(
            [*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "batchgen",
             "--auth=trust", "--no-sync"], **run,
        )  # fmt: skip
        subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"),
             "-w", "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off",
             "start"], **run,
        )  # fmt: skip
        yield f"postgresql://batchgen@127.0.0.1:{port}/postgres"
    finally:
        with contextlib.suppress(Exception):
            subprocess.run(
                [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                **run,
            )  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url
