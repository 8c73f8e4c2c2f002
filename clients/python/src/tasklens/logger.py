"""What a plugin writes its task's log with: :class:`TaskLogger`, :class:`Group` and
:class:`BeliefScope`.

A logger is a task's :class:`~tasklens.records.TaskLog` plus a source name; it is
cheap, immutable and safe to share between threads. Keyword arguments become the
record's metadata::

    ctx.logger.info("starting", dashboard_id=7)
    api = ctx.logger.with_source("superset_api")
    api.warning("slow response", elapsed_ms=950)
"""

from __future__ import annotations

import sys
import traceback
from types import TracebackType
from typing import Any, Optional, Type, Union

from .protocol import (
    DEFAULT_SOURCE,
    GROUP_CLOSE_LINE,
    GROUP_OPEN_PREFIX,
    Level,
    LogSettings,
    clean_source,
)
from .records import TaskLog


class TaskLogger:
    """Writes records into one task's log, from one source (``plugin`` by default)."""

    __slots__ = ("_log", "_source")

    def __init__(self, log: TaskLog, source: str = DEFAULT_SOURCE) -> None:
        self._log = log
        self._source = clean_source(source)

    @property
    def source(self) -> str:
        return self._source

    @property
    def task_id(self) -> str:
        return self._log.task_id

    @property
    def settings(self) -> LogSettings:
        return self._log.settings

    def with_source(self, source: str) -> "TaskLogger":
        """A logger of the same task whose records carry ``source``."""
        return TaskLogger(self._log, source)

    def enabled(self, level: Union[Level, str, int]) -> bool:
        """Whether a record at ``level`` would be kept (to skip building costly messages)."""
        return self._log.enabled(Level.parse(level))

    def log(self, level: Union[Level, str, int], message: Any, /, **metadata: Any) -> Optional[int]:
        """Writes one record; its seq, or None when the level gate dropped it.

        Blocks while the worker holds ``max_unacked_bytes`` of unacknowledged records.
        """
        return self._log.emit(level, self._source, message, metadata)

    def debug(self, message: Any, /, **metadata: Any) -> Optional[int]:
        return self._log.emit(Level.DEBUG, self._source, message, metadata)

    def info(self, message: Any, /, **metadata: Any) -> Optional[int]:
        return self._log.emit(Level.INFO, self._source, message, metadata)

    def warning(self, message: Any, /, **metadata: Any) -> Optional[int]:
        return self._log.emit(Level.WARNING, self._source, message, metadata)

    def error(self, message: Any, /, **metadata: Any) -> Optional[int]:
        return self._log.emit(Level.ERROR, self._source, message, metadata)

    def exception(self, message: Any, /, **metadata: Any) -> Optional[int]:
        """An ERROR record with the exception being handled in metadata ``traceback``."""
        if sys.exc_info()[0] is not None:
            metadata.setdefault("traceback", traceback.format_exc())
        return self._log.emit(Level.ERROR, self._source, message, metadata)

    def group(self, name: str) -> "Group":
        """A foldable section of the log, open while the ``with`` block runs.

        ::

            with ctx.logger.group("Install dependencies"):
                ctx.logger.info("resolving")

        Writes ``::group::NAME`` on entering and ``::endgroup::`` on leaving (also
        when an exception leaves the block); groups nest. See :class:`Group`.
        """
        return Group(self, name)

    def belief_scope(self, name: str) -> "BeliefScope":
        """See :class:`BeliefScope`."""
        return BeliefScope(self, name)

    def __repr__(self) -> str:
        return f"TaskLogger(task_id={self.task_id!r}, source={self._source!r})"


class Group:
    """A section of the log: the console shows it folded, with its line count,
    duration and worst level, and opens it by itself when it holds an ERROR.

    Both marks are INFO records from the logger's source that pass the level gate;
    the name is one line (line breaks become spaces). Printing the same lines,
    ``::group::NAME`` and ``::endgroup::``, does the same from any process.
    """

    __slots__ = ("_logger", "name")

    def __init__(self, logger: TaskLogger, name: str) -> None:
        self._logger = logger
        self.name = " ".join(str(name).splitlines()).strip()

    def __enter__(self) -> "Group":
        self._logger.info(GROUP_OPEN_PREFIX + self.name)
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self._logger.info(GROUP_CLOSE_LINE)


class BeliefScope:
    """Brackets a piece of work in the log, as the Rust ``belief_scope`` does.

    Entering writes DEBUG ``Entry``, leaving writes DEBUG ``Exit`` (also when an
    exception leaves the block), and :meth:`coherence` writes ``Coherence:OK`` or
    ``Coherence:FAILED``; all with metadata ``{"scope": name}`` and the logger's
    source. Nothing is written unless the settings in force have
    ``belief_scope_enabled`` and a ``task_log_level`` of DEBUG.

    ::

        with ctx.belief_scope("plan") as scope:
            ...
            scope.coherence(rows == expected)
    """

    __slots__ = ("_logger", "name")

    def __init__(self, logger: TaskLogger, name: str) -> None:
        self._logger = logger
        self.name = name

    def coherence(self, ok: bool) -> None:
        """Records whether what the scope believed held."""
        self._write("Coherence:OK" if ok else "Coherence:FAILED")

    def __enter__(self) -> "BeliefScope":
        self._write("Entry")
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self._write("Exit")

    def _write(self, what: str) -> None:
        if self._logger.settings.keeps_belief_scope:
            self._logger.debug(what, scope=self.name)
