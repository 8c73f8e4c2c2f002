"""The :class:`Worker`: offers plugins to a Tasklens server and runs their tasks.

State: the plugins, and the tasks the server has given this worker and not yet
confirmed ``done`` (:class:`~tasklens.tasks.RemoteTask`, owned by the event loop).
Their records, held until acknowledged, and the byte budget outlive any one
connection.

Messages: ``run`` starts a task on a thread of its own (an ``async def`` plugin on
the event loop), ``cancel`` sets its context's cancel flag, ``settings`` changes its
level gate, ``done`` forgets it, ``error`` is logged on the ``tasklens`` logger. The
connection itself (hello, acks, batching) is :mod:`tasklens.connection`'s.

Reconnects: a dropped connection is reopened after 0.1 s, doubling to 5 s, jittered.
``hello`` names the same ``worker_id`` and ``resume``\\ s every task still held; on
``welcome`` each ``resumed`` task drops what is durable and resends the rest (and its
``finish``, if it has one); a ``gone`` task is cancelled and its records dropped.

Shutdown (:meth:`Worker.stop`, SIGINT or SIGTERM under :meth:`Worker.run`): new
``run``\\ s are refused as ``failed``, running tasks are cancelled, and the worker waits
up to ``grace`` seconds for every task to be ``done`` before it closes the
connection. A second signal closes at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import socket
import threading
import uuid
from typing import Any, Callable, Dict, List, Mapping, Optional

from websockets.exceptions import InvalidStatus, InvalidURI, WebSocketException

from . import capture, protocol
from .connection import Session, WorkerRefused, close_reason, open_websocket
from .protocol import (
    Cancel,
    Done,
    Level,
    LogSettings,
    PluginSpec,
    Run,
    ServerError,
    ServerMessage,
    SettingsChanged,
    Welcome,
)
from .records import ByteBudget, TaskLog
from .tasks import Plugin, PluginFunction, RemoteTask, execute, execute_async

log = logging.getLogger("tasklens.worker")

BACKOFF_FIRST = 0.1
BACKOFF_MAX = 5.0
DEFAULT_MAX_UNACKED_BYTES = 32 * 1024 * 1024


class Worker:
    """Connects to a Tasklens server and runs tasks of the plugins it registers.

    ``server`` is the server's ``http(s)://host:port`` and ``token`` a worker (or
    admin) token; either defaults to ``TASKLENS_SERVER`` / ``TASKLENS_TOKEN`` when the
    worker starts. ``capacity`` is how many tasks run at once, each on its own thread.
    ``grace`` is how long stopping waits for running tasks. ``capture_logging``
    sends standard :mod:`logging` records emitted inside a task into its log.
    """

    def __init__(
        self,
        server: Optional[str] = None,
        token: Optional[str] = None,
        *,
        capacity: int = 1,
        name: Optional[str] = None,
        grace: float = 10.0,
        capture_logging: bool = True,
    ) -> None:
        if not 0 <= capacity <= protocol.MAX_CAPACITY:
            raise ValueError(f"capacity must be 0-{protocol.MAX_CAPACITY}")
        self.server = server
        self.token = token
        self.capacity = capacity
        self.worker_id = uuid.uuid4().hex
        # What GET /api/workers shows: which machine and process this is.
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.grace = grace
        self.capture_logging = capture_logging
        self._plugins: Dict[str, Plugin] = {}
        self._tasks: Dict[str, RemoteTask] = {}
        self._budget = ByteBudget(DEFAULT_MAX_UNACKED_BYTES)
        self._settings = LogSettings()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._loop_thread: Optional[int] = None
        self._url = ""
        self._stop_early = False
        self._draining = False
        self._signals = 0

    # -- plugins ---------------------------------------------------------------

    def plugin(
        self,
        name: str,
        *,
        description: str = "",
        params_schema: Optional[Mapping[str, Any]] = None,
        example_params: Optional[Mapping[str, Any]] = None,
    ) -> Callable[[PluginFunction], PluginFunction]:
        """Registers the decorated ``function(ctx, params)`` as plugin ``name``."""

        def register(function: PluginFunction) -> PluginFunction:
            self.add_plugin(
                name,
                function,
                description=description,
                params_schema=params_schema,
                example_params=example_params,
            )
            return function

        return register

    def add_plugin(
        self,
        name: str,
        function: PluginFunction,
        *,
        description: str = "",
        params_schema: Optional[Mapping[str, Any]] = None,
        example_params: Optional[Mapping[str, Any]] = None,
    ) -> None:
        if name in self._plugins:
            raise ValueError(f"plugin {name!r} is already registered")
        if len(self._plugins) >= protocol.MAX_PLUGINS:
            raise ValueError(f"a worker offers at most {protocol.MAX_PLUGINS} plugins")
        if self._loop is not None:
            raise RuntimeError("register plugins before the worker starts")
        spec = PluginSpec(name, description, params_schema, dict(example_params or {}))
        self._plugins[name] = Plugin(spec, function)

    @property
    def plugins(self) -> List[PluginSpec]:
        return [p.spec for p in self._plugins.values()]

    # -- running ---------------------------------------------------------------

    def run(self) -> None:
        """Serves until stopped: by :meth:`stop`, or SIGINT / SIGTERM in the main thread.

        Raises :class:`WorkerRefused` when the server refuses the token or ``hello``.
        """
        asyncio.run(self._serve_with_signals())

    async def serve(self) -> None:
        """:meth:`run` as a coroutine, on the running event loop (no signal handling)."""
        if self._loop is not None:
            raise RuntimeError("this worker is already running")
        server = self.server or os.environ.get("TASKLENS_SERVER")
        token = self.token or os.environ.get("TASKLENS_TOKEN")
        if not server:
            raise ValueError("no server URL: pass server= or set TASKLENS_SERVER")
        if not token:
            raise ValueError("no token: pass token= or set TASKLENS_TOKEN")
        url = self._url = protocol.worker_url(server)
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._wake = asyncio.Event()
        self._urgent = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self._grace_over = asyncio.Event()
        self._idle = asyncio.Event()
        self._draining = False
        if self._stop_early:
            self._stop_requested.set()
        if self.capture_logging:
            capture.install()
        connection = asyncio.ensure_future(self._connect_forever(url, token))
        stop = asyncio.ensure_future(self._stop_requested.wait())
        try:
            await asyncio.wait({connection, stop}, return_when=asyncio.FIRST_COMPLETED)
            if connection.done():
                connection.result()
            await self._drain()
        finally:
            stop.cancel()
            connection.cancel()
            await asyncio.gather(connection, stop, return_exceptions=True)
            self._abandon_tasks()
            if self.capture_logging:
                capture.uninstall()
            self._loop = None
            self._stop_early = False

    def stop(self) -> None:
        """Stops the worker gracefully; callable from any thread."""
        loop = self._loop
        if loop is None:
            self._stop_early = True
            return
        try:
            loop.call_soon_threadsafe(self._request_stop)
        except RuntimeError:  # the loop has just closed
            pass

    async def _serve_with_signals(self) -> None:
        loop = asyncio.get_running_loop()
        installed = []
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    loop.add_signal_handler(sig, self._on_signal, sig)
                    installed.append(sig)
                except (NotImplementedError, RuntimeError):  # not on this platform
                    pass
        try:
            await self.serve()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    def _on_signal(self, sig: int) -> None:
        self._signals += 1
        if self._signals == 1:
            log.info(
                "%s: stopping; running tasks have %.0f s to end (again to stop at once)",
                signal.Signals(sig).name,
                self.grace,
            )
            self._request_stop()
        else:
            self._request_stop(at_once=True)

    def _request_stop(self, at_once: bool = False) -> None:
        self._stop_requested.set()
        if at_once:
            self._grace_over.set()

    async def _drain(self) -> None:
        self._draining = True
        for task in self._tasks.values():
            task.context.cancel()
        if not self._tasks:
            return
        log.info("waiting up to %.0f s for %d task(s) to end", self.grace, len(self._tasks))
        self._idle.clear()
        idle = asyncio.ensure_future(self._idle.wait())
        at_once = asyncio.ensure_future(self._grace_over.wait())
        await asyncio.wait({idle, at_once}, timeout=self.grace, return_when=asyncio.FIRST_COMPLETED)
        idle.cancel()
        at_once.cancel()
        if self._tasks:
            log.warning(
                "closing with %d task(s) not done; the server interrupts them after its grace period",
                len(self._tasks),
            )

    def _abandon_tasks(self) -> None:
        for task in self._tasks.values():
            task.context.cancel()
            if task.handle is not None:
                task.handle.cancel()
        self._tasks.clear()

    # -- the connection --------------------------------------------------------

    async def _connect_forever(self, url: str, token: str) -> None:
        delay = BACKOFF_FIRST
        while True:
            session: Optional[Session] = None
            try:
                async with open_websocket(url, token) as ws:
                    session = Session(ws, self)
                    await session.run()
                log.warning("connection to %s closed", url)
            except InvalidStatus as e:
                status = e.response.status_code
                if status in (401, 403):
                    raise WorkerRefused(
                        f"{url} refused the token with HTTP {status}"
                        + (" (a viewer token cannot run tasks: use a worker token)" if status == 403 else "")
                    ) from None
                log.warning("%s answered the upgrade with HTTP %s; retrying", url, status)
            except InvalidURI as e:
                raise ValueError(f"bad server URL: {e}") from None
            except (OSError, asyncio.TimeoutError, WebSocketException) as e:
                reason = close_reason(e) or f"{type(e).__name__}: {e}"
                if session is None:
                    log.warning("cannot connect to %s: %s", url, reason)
                else:
                    log.warning("connection to %s lost: %s", url, reason)
            if session is not None and session.welcomed:
                delay = BACKOFF_FIRST
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, BACKOFF_MAX)

    def _hello(self) -> str:
        return protocol.hello(
            self.worker_id,
            self.name,
            self.capacity,
            self.plugins,
            resume=list(self._tasks),
        )

    def _on_welcome(self, welcome: Welcome, session: Session) -> int:
        """Takes up the tasks again; the byte limit for the connection."""
        limit = welcome.max_unacked_bytes
        self._budget.set_limit(limit)
        self._settings = welcome.settings
        resumed = {r.task_id: r for r in welcome.resumed}
        for task in list(self._tasks.values()):
            entry = resumed.get(task.id)
            if entry is None:
                if task.id not in welcome.gone:
                    log.warning("task %s was neither resumed nor gone; dropping it", task.id)
                self._forget(task)
                continue
            task.log.settings = welcome.settings
            task.log.rewind(entry.acked_seq)
            task.finish_sent = False
        log.info(
            "connected to %s as %s (%s); %d task(s) resumed",
            self._url,
            self.name,
            self.worker_id,
            len(self._tasks),
        )
        self._wake_writer(urgent=True)
        return limit

    def _wake_writer(self, urgent: bool = False) -> None:
        self._wake.set()
        if urgent:
            self._urgent.set()

    def _records_ready(self, urgent: bool) -> None:
        """Called by a task's log, from any thread, when records wait to be sent."""
        loop = self._loop
        if loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            self._wake_writer(urgent)
            return
        try:
            loop.call_soon_threadsafe(self._wake_writer, urgent)
        except RuntimeError:  # the loop has closed
            pass

    def _on_loop_thread(self) -> bool:
        return threading.get_ident() == self._loop_thread

    # -- server messages -------------------------------------------------------

    def _on_message(self, message: ServerMessage) -> None:
        if isinstance(message, Run):
            self._on_run(message)
        elif isinstance(message, Cancel):
            task = self._tasks.get(message.task_id)
            if task is not None:
                task.context.cancel()
        elif isinstance(message, SettingsChanged):
            targets = self._tasks.values() if message.task_id is None else [self._tasks.get(message.task_id)]
            for task in targets:
                if task is not None:
                    task.log.settings = message.settings
            if message.task_id is None:
                self._settings = message.settings
        elif isinstance(message, Done):
            task = self._tasks.get(message.task_id)
            if task is not None:
                self._forget(task)
        elif isinstance(message, ServerError):
            where = f" (task {message.task_id})" if message.task_id else ""
            if message.fatal:
                log.error("the server closes the connection: %s%s", message.message, where)
            else:
                log.warning("the server says: %s%s", message.message, where)
        else:
            log.warning("unexpected %s", type(message).__name__)

    def _on_run(self, run: Run) -> None:
        if run.task_id in self._tasks:
            log.warning("task %s is already running here; ignoring a second run", run.task_id)
            return
        task_log = TaskLog(
            run.task_id,
            run.settings,
            self._budget,
            on_ready=self._records_ready,
            may_block=lambda: not self._on_loop_thread(),
        )
        task = RemoteTask(run.task_id, run.plugin, run.params, task_log)
        self._tasks[task.id] = task
        plugin = self._plugins.get(run.plugin)
        if self._draining:
            self._refuse(task, "the worker is stopping")
        elif plugin is None:
            offered = ", ".join(sorted(self._plugins)) or "none"
            self._refuse(task, f"this worker has no plugin {run.plugin!r} (it offers: {offered})")
        else:
            self._start(task, plugin)

    def _refuse(self, task: RemoteTask, error: str) -> None:
        task.log.emit(Level.ERROR, protocol.DEFAULT_SOURCE, error)
        self._task_returned(task, protocol.finish_failed(task.id, error))

    def _start(self, task: RemoteTask, plugin: Plugin) -> None:
        running = sum(1 for t in self._tasks.values() if t.running)
        if running >= max(self.capacity, 1):
            log.warning("the server sent task %s with %d already running (capacity %d)", task.id, running, self.capacity)
        task.running = True
        if plugin.is_async:
            task.handle = asyncio.ensure_future(self._run_async(task, plugin))
        else:
            thread = threading.Thread(
                target=self._run_thread,
                args=(task, plugin),
                name=f"tasklens-{plugin.spec.name}-{task.id[:8]}",
                daemon=True,
            )
            thread.start()

    def _run_thread(self, task: RemoteTask, plugin: Plugin) -> None:
        finish = execute(plugin.function, task.context)
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._task_returned, task, finish)
            except RuntimeError:  # the loop has closed: the worker is gone
                pass

    async def _run_async(self, task: RemoteTask, plugin: Plugin) -> None:
        finish = await execute_async(plugin.function, task.context)
        self._task_returned(task, finish)

    def _task_returned(self, task: RemoteTask, finish: str) -> None:
        task.running = False
        task.handle = None
        if task.forgotten:
            self._remove(task)
            return
        task.log.close()
        task.finish = finish
        self._wake_writer(urgent=True)

    def _forget(self, task: RemoteTask) -> None:
        """The server has ended the task: stop it, drop its records, and forget it
        once its plugin has returned."""
        task.context.cancel()
        task.log.discard()
        if not task.running:
            self._remove(task)

    def _remove(self, task: RemoteTask) -> None:
        if self._tasks.get(task.id) is task:
            del self._tasks[task.id]
        if not self._tasks and self._loop is not None:
            self._idle.set()

    def __repr__(self) -> str:
        return f"Worker(name={self.name!r}, plugins={sorted(self._plugins)}, capacity={self.capacity})"

