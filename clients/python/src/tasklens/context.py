"""What a plugin function receives: :class:`TaskContext`.

Cancellation is cooperative, as for the server's own plugins: the worker sets the
context's cancel flag when the server sends ``cancel`` (or the worker stops); the
plugin polls :attr:`TaskContext.cancelled`, sleeps with :meth:`TaskContext.wait`, and
returns (or raises :class:`TaskCancelled`), which finishes the task as ``cancelled``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from .logger import BeliefScope, TaskLogger
from .protocol import LogSettings
from .records import TaskLog


class TaskCancelled(Exception):
    """Raise it (or call :meth:`TaskContext.raise_if_cancelled`) to end a task as ``cancelled``."""


class TaskContext:
    """One running task, as its plugin sees it."""

    def __init__(self, task_id: str, plugin: str, params: Any, log: TaskLog) -> None:
        self.task_id = task_id
        self.plugin = plugin
        self.params = params
        self.logger = TaskLogger(log)
        self._log = log
        self._cancel = threading.Event()

    @property
    def cancelled(self) -> bool:
        """True once the task has been asked to stop."""
        return self._cancel.is_set()

    def raise_if_cancelled(self) -> None:
        if self._cancel.is_set():
            raise TaskCancelled()

    def wait(self, seconds: float) -> bool:
        """Sleeps up to ``seconds``; True (early) as soon as the task is cancelled."""
        return self._cancel.wait(max(0.0, seconds))

    async def sleep(self, seconds: float) -> bool:
        """:meth:`wait` for ``async def`` plugins: True as soon as the task is cancelled."""
        deadline = time.monotonic() + max(0.0, seconds)
        while not self._cancel.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            await asyncio.sleep(min(left, 0.05))
        return True

    @property
    def settings(self) -> LogSettings:
        """The logging settings in force for this task (they change at runtime)."""
        return self._log.settings

    @property
    def acked_seq(self) -> int:
        """Every record of this task up to this seq is durable on the server."""
        return self._log.acked_seq

    def belief_scope(self, name: str) -> BeliefScope:
        """``ctx.logger.belief_scope(name)``: DEBUG Entry / Exit records around a block."""
        return BeliefScope(self.logger, name)

    def cancel(self) -> None:
        """Asks the plugin to stop (what a ``cancel`` from the server does)."""
        self._cancel.set()

    def __repr__(self) -> str:
        return f"TaskContext(task_id={self.task_id!r}, plugin={self.plugin!r}, cancelled={self.cancelled})"
