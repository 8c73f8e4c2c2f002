"""Plugins, and running one task of a plugin to its ``finish`` message.

:func:`execute` (a blocking plugin, on the task's own thread) and
:func:`execute_async` (an ``async def`` plugin, on the worker's event loop) run the
plugin function with the task's log as the current one for :mod:`logging` capture,
and turn how it ended into the ``finish`` message:

- a return value → ``success`` with it as the ``result`` (it must be JSON; otherwise
  ``failed``, with an ERROR record saying why);
- a return after the task was cancelled, or :class:`TaskCancelled` → ``cancelled``;
- any other exception → ``failed`` with ``error`` = ``"ExcType: message"``, after an
  ERROR record from ``plugin`` with that text and the traceback in metadata.
"""

from __future__ import annotations

import asyncio
import traceback
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Optional, Union

from . import capture, protocol
from .context import TaskCancelled, TaskContext
from .protocol import PluginSpec, ProtocolError
from .records import TaskLog

PluginFunction = Callable[[TaskContext, Any], Union[Any, Awaitable[Any]]]


@dataclass(frozen=True)
class Plugin:
    spec: PluginSpec
    function: PluginFunction

    @property
    def is_async(self) -> bool:
        return asyncio.iscoroutinefunction(self.function)


class RemoteTask:
    """A task the server gave this worker, from ``run`` until ``done``.

    Owned by the worker's event loop; only :attr:`log` and :attr:`context` are
    touched by the task's thread.
    """

    def __init__(self, task_id: str, plugin: str, params: Any, log: TaskLog) -> None:
        self.id = task_id
        self.plugin = plugin
        self.log = log
        self.context = TaskContext(task_id, plugin, params, log)
        self.running = False
        """The plugin function has not returned yet."""
        self.finish: Optional[str] = None
        """The ``finish`` message, once the plugin has returned."""
        self.finish_sent = False
        """``finish`` went out on the current connection."""
        self.handle: Optional["asyncio.Task[None]"] = None
        """The asyncio task of an ``async`` plugin."""

    @property
    def forgotten(self) -> bool:
        """The server has ended the task (``done`` or ``gone``): nothing more to send."""
        return self.log.discarded

    def __repr__(self) -> str:
        return f"RemoteTask({self.id!r}, plugin={self.plugin!r}, running={self.running})"


def execute(function: PluginFunction, ctx: TaskContext) -> str:
    """Runs a blocking plugin function; the ``finish`` message."""
    token = capture.current_task.set(ctx._log)
    try:
        result = function(ctx, ctx.params)
    except TaskCancelled:
        return protocol.finish_cancelled(ctx.task_id)
    except BaseException as exc:  # noqa: BLE001 - whatever the plugin raised fails its task
        return failed(ctx, exc)
    finally:
        capture.current_task.reset(token)
    return returned(ctx, result)


async def execute_async(function: PluginFunction, ctx: TaskContext) -> str:
    """Runs an ``async def`` plugin function; the ``finish`` message."""
    capture.current_task.set(ctx._log)  # this asyncio task's own context
    try:
        result = await function(ctx, ctx.params)  # type: ignore[misc]
    except TaskCancelled:
        return protocol.finish_cancelled(ctx.task_id)
    except asyncio.CancelledError:
        raise
    except BaseException as exc:  # noqa: BLE001
        return failed(ctx, exc)
    return returned(ctx, result)


def returned(ctx: TaskContext, result: Any) -> str:
    if ctx.cancelled:
        return protocol.finish_cancelled(ctx.task_id)
    try:
        return protocol.finish_success(ctx.task_id, result)
    except ProtocolError as e:
        error = f"The plugin returned a result that is not JSON: {e}"
        ctx.logger.error(error, result_type=type(result).__name__)
        return protocol.finish_failed(ctx.task_id, error)


def failed(ctx: TaskContext, exc: BaseException) -> str:
    error = protocol.cap_message(describe(exc))
    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    ctx.logger.error(error, traceback=trace)
    return protocol.finish_failed(ctx.task_id, error)


def describe(exc: BaseException) -> str:
    """``"ValueError: bad row"`` (just the type when the exception has no text)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
