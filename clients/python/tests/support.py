"""Helpers for the tests against a real server: REST calls, a live ``/ws`` follower,
an in-process worker, worker subprocesses and a TCP proxy that can cut connections."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from websockets.sync.client import connect as ws_connect

from tasklens import Worker

SRC = Path(__file__).resolve().parents[1] / "src"
FINAL = {"success", "failed", "cancelled", "interrupted"}


class ApiError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


def eventually(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Polls ``check`` until it returns something truthy; fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class Server:
    """A running ``tasklens serve`` and its REST API."""

    def __init__(self, url: str, admin_token: str, backend: str) -> None:
        self.url = url
        self.admin_token = admin_token
        self.backend = backend
        self._worker_token: Optional[str] = None

    def request(self, method: str, path: str, body: Any = None, token: Optional[str] = None) -> Tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {token or self.admin_token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, raw.decode(errors="replace")

    def api(self, method: str, path: str, body: Any = None, token: Optional[str] = None) -> Any:
        status, answer = self.request(method, path, body, token)
        if status >= 300:
            raise ApiError(status, answer)
        return answer

    def make_token(self, role: str, name: Optional[str] = None) -> str:
        name = name or f"py-{role}-{os.getpid()}-{time.monotonic_ns()}"
        return self.api("POST", "/api/tokens", {"name": name, "role": role})["token"]

    @property
    def worker_token(self) -> str:
        if self._worker_token is None:
            self._worker_token = self.make_token("worker")
        return self._worker_token

    def set_logging(self, task_log_level: str = "INFO", belief_scope_enabled: bool = True) -> None:
        self.api(
            "PUT",
            "/api/settings/logging",
            {"app_log_level": "INFO", "task_log_level": task_log_level, "belief_scope_enabled": belief_scope_enabled},
        )

    def start_task(self, plugin: str, params: Dict[str, Any]) -> str:
        return self.api("POST", "/api/tasks", {"plugin": plugin, "params": params})["id"]

    def task(self, task_id: str) -> Dict[str, Any]:
        return self.api("GET", f"/api/tasks/{task_id}")

    def wait_final(self, task_id: str, timeout: float = 30) -> Dict[str, Any]:
        return eventually(
            lambda: (lambda t: t if t["status"] in FINAL else None)(self.task(task_id)),
            timeout,
            f"task {task_id} to end",
        )

    def logs(self, task_id: str, **filters: Any) -> List[Dict[str, Any]]:
        """Every stored record matching ``filters``, paging until ``has_more`` is false."""
        out: List[Dict[str, Any]] = []
        after = 0
        while True:
            query = urllib.parse.urlencode({**filters, "after_seq": after, "limit": 10000}, doseq=True)
            page = self.api("GET", f"/api/tasks/{task_id}/logs?{query}")
            out.extend(page["logs"])
            if not page["has_more"]:
                return out
            after = page["next_after_seq"]

    def plugin_names(self) -> List[str]:
        return [p["name"] for p in self.api("GET", "/api/plugins")]

    def ws_url(self, path: str) -> str:
        return "ws" + self.url[len("http"):] + path


class Follower:
    """Follows one task on ``/ws`` with a filter, from ``after_seq`` 0, until its final status."""

    def __init__(self, server: Server, task_id: str, filter: Dict[str, Any]) -> None:
        self.entries: List[Dict[str, Any]] = []
        self.status: Optional[str] = None
        self.errors: List[Any] = []
        self._subscribed = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._follow, args=(server, task_id, filter), daemon=True)
        self._thread.start()
        assert self._subscribed.wait(10), f"could not subscribe on /ws: {self.errors}"

    def _follow(self, server: Server, task_id: str, filter: Dict[str, Any]) -> None:
        headers = {"Authorization": f"Bearer {server.admin_token}"}
        try:
            with ws_connect(server.ws_url("/ws"), additional_headers=headers) as ws:
                ws.send(json.dumps({"type": "subscribe", "task_id": task_id, "filter": filter, "after_seq": 0}))
                self._subscribed.set()
                for text in ws:
                    msg = json.loads(text)
                    if msg["type"] == "logs":
                        self.entries.extend(msg["entries"])
                    elif msg["type"] == "error":
                        self.errors.append(msg)
                    elif msg["type"] == "task" and msg["task"]["status"] in FINAL:
                        self.status = msg["task"]["status"]
                        return
        except Exception as e:  # noqa: BLE001 - reported by wait()
            self.errors.append(e)
        finally:
            self._done.set()

    def wait(self, timeout: float = 30) -> List[Dict[str, Any]]:
        assert self._done.wait(timeout), "the /ws subscription never saw the task end"
        assert not self.errors, self.errors
        return self.entries


@contextlib.contextmanager
def running(worker: Worker, server: Server, plugins: List[str]) -> Iterator[Worker]:
    """Runs ``worker`` on a thread until the block ends; starts once the server lists ``plugins``."""
    failure: List[BaseException] = []

    def run() -> None:
        try:
            worker.run()
        except BaseException as e:  # noqa: BLE001 - reported below
            failure.append(e)

    thread = threading.Thread(target=run, name="worker-under-test", daemon=True)
    thread.start()
    try:
        eventually(
            lambda: failure or set(plugins) <= set(server.plugin_names()),
            20,
            f"the server to list {plugins}",
        )
        if failure:
            raise failure[0]
        yield worker
    finally:
        worker.stop()
        thread.join(30)
        assert not thread.is_alive(), "the worker did not stop"
    if failure:
        raise failure[0]


class WorkerProcess:
    """``python -m tasklens worker module:worker`` in a subprocess, its output collected."""

    def __init__(self, directory: Path, target: str, server: Server, extra_env: Optional[Dict[str, str]] = None) -> None:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": os.pathsep.join([str(SRC), str(directory)]),
            "PYTHONUNBUFFERED": "1",
            "TASKLENS_SERVER": server.url,
            "TASKLENS_TOKEN": server.worker_token,
            **(extra_env or {}),
        }
        self.stdout: List[str] = []
        self.stderr: List[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tasklens", "worker", target],
            cwd=directory,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for stream, lines in ((self.proc.stdout, self.stdout), (self.proc.stderr, self.stderr)):
            threading.Thread(target=self._collect, args=(stream, lines), daemon=True).start()

    @staticmethod
    def _collect(stream: Any, lines: List[str]) -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))

    def wait_connected(self, timeout: float = 20) -> None:
        eventually(
            lambda: any("connected to" in line for line in self.stderr) or self.proc.poll() is not None,
            timeout,
            "the worker process to connect",
        )
        assert self.proc.poll() is None, "the worker exited:\n" + "\n".join(self.stderr)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class CuttingProxy:
    """A TCP proxy on 127.0.0.1 to ``upstream``; :meth:`cut` drops every open connection
    at once and keeps accepting new ones."""

    def __init__(self, upstream: Tuple[str, int]) -> None:
        self.upstream = upstream
        self.accepted = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: List[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self._lock:
                self.accepted += 1
                self._open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        with self._lock:
            sockets, self._open = self._open, []
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.cut()
