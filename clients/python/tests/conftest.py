"""Starts the real server for the tests that need one: ``TASKLENS_BIN`` names the
binary (without it those tests are skipped, or fail under
``TASKLENS_TEST_REQUIRE_SERVER=1``). One server per backend per session: SQLite
always, and PostgreSQL too when ``TASKLENS_TEST_PG_URL`` is set (a fresh database
from ``$TASKLENS_TESTKIT pg-fresh-db``). Tests share it and use distinct plugin names.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, List

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
try:
    import tasklens  # noqa: F401
except ImportError:  # not installed: test the source tree
    sys.path.insert(0, str(SRC))

from support import Server  # noqa: E402

ADMIN_TOKEN = "tlk_python_sdk_tests_admin_token_0001"
# urllib and websockets honour HTTP proxy variables: never for the loopback server.
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")


def _backends() -> List[str]:
    return ["sqlite", "postgres"] if os.environ.get("TASKLENS_TEST_PG_URL") else ["sqlite"]


def _database_url(backend: str, directory: Path) -> str:
    if backend == "sqlite":
        return f"sqlite://{directory}/t.db"
    testkit = os.environ.get("TASKLENS_TESTKIT")
    if not testkit:
        pytest.fail("TASKLENS_TEST_PG_URL is set but TASKLENS_TESTKIT (the tasklens-testkit binary) is not")
    out = subprocess.run([testkit, "pg-fresh-db"], capture_output=True, text=True, timeout=60)
    if out.returncode != 0 or not out.stdout.strip():
        pytest.fail(f"{testkit} pg-fresh-db failed: {out.stderr.strip()}")
    return out.stdout.strip().splitlines()[-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"tasklens serve exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"tasklens serve did not listen on {port} within {timeout} s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="session", params=_backends())
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    binary = os.environ.get("TASKLENS_BIN")
    if not binary:
        reason = "TASKLENS_BIN is not set: the tests against the real server need the tasklens binary"
        if os.environ.get("TASKLENS_TEST_REQUIRE_SERVER") == "1":
            pytest.fail(reason + " (TASKLENS_TEST_REQUIRE_SERVER=1)")
        pytest.skip(reason)
    backend = request.param
    directory = tmp_path_factory.mktemp(f"server-{backend}")
    port = _free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "TASKLENS_BIND": f"127.0.0.1:{port}",
        "TASKLENS_DATABASE_URL": _database_url(backend, directory),
        "TASKLENS_ADMIN_TOKEN": ADMIN_TOKEN,
        "TASKLENS_FLUSH_INTERVAL_MS": "200",
        "TASKLENS_WORKER_GRACE_SECS": "3",
        "TASKLENS_LOG": "warn",
    }
    log = directory / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([binary, "serve"], env=env, cwd=directory, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_listening(port, proc, log)
        yield Server(f"http://127.0.0.1:{port}", ADMIN_TOKEN, backend)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def default_logging(server: Server) -> Iterator[Server]:
    """Leaves the server's logging settings as they were found (INFO, belief on)."""
    server.set_logging("INFO", True)
    yield server
    server.set_logging("INFO", True)
