"""Standard :mod:`logging` records emitted inside a task go into that task's log.

A context variable names the task whose code is running: the worker sets it at the
start of each task's thread (or ``async`` plugin's asyncio task), so records from
other threads, and from the worker itself, are not captured. One handler on the root
logger serves every :class:`~tasklens.Worker` in the process; it is installed by the
first worker that starts and removed when the last one stops.

A captured record keeps the logger's name as its source (the root logger's is
``plugin``) and its level mapped to the four of Tasklens (CRITICAL is ERROR, below
INFO is DEBUG). The loggers' own levels still apply first: the root logger's default
is WARNING, so lower records reach a task only where a level has been set lower.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from typing import Optional

from .protocol import DEFAULT_SOURCE, Level
from .records import TaskLog

current_task: contextvars.ContextVar[Optional[TaskLog]] = contextvars.ContextVar("tasklens_task", default=None)
"""The log of the task whose code runs in this context."""

_SDK_LOGGER = "tasklens"


class TaskLogHandler(logging.Handler):
    """Sends records of the current task's context to its :class:`TaskLog`."""

    def handle(self, record: logging.LogRecord) -> bool:
        # No handler lock: TaskLog.emit is thread-safe and may block on the byte budget,
        # and a blocked task must not hold up logging in the other threads.
        log = current_task.get()
        if log is None or _is_sdk(record.name):
            return False
        if not self.filter(record):
            return False
        self.emit_into(log, record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        log = current_task.get()
        if log is not None:
            self.emit_into(log, record)

    def emit_into(self, log: TaskLog, record: logging.LogRecord) -> None:
        level = Level.from_logging(record.levelno)
        if not log.enabled(level):
            return
        try:
            message = record.getMessage()
            metadata = {}
            if record.exc_info and record.exc_info[0] is not None:
                metadata["traceback"] = logging.Formatter().formatException(record.exc_info)
            if record.stack_info:
                metadata["stack"] = record.stack_info
            source = DEFAULT_SOURCE if record.name == "root" else record.name
            log.emit(level, source, message, metadata)
        except Exception:
            self.handleError(record)


def _is_sdk(name: str) -> bool:
    return name == _SDK_LOGGER or name.startswith(_SDK_LOGGER + ".")


_lock = threading.Lock()
_handler: Optional[TaskLogHandler] = None
_users = 0


def install() -> None:
    """Adds the handler to the root logger (counted: see :func:`uninstall`)."""
    global _handler, _users
    with _lock:
        _users += 1
        if _handler is None:
            _handler = TaskLogHandler(logging.DEBUG)
            logging.getLogger().addHandler(_handler)


def uninstall() -> None:
    global _handler, _users
    with _lock:
        _users = max(0, _users - 1)
        if _users == 0 and _handler is not None:
            logging.getLogger().removeHandler(_handler)
            _handler = None
