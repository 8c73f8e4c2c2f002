"""A task's records on their way to the server: numbering, batching, acknowledgement.

State: a :class:`TaskLog` holds the records of one task that the server has not yet
acknowledged, in seq order, in two queues: ``pending`` (not sent on the current
connection) and ``sent`` (sent on it, waiting for ``ack``). The worker's
:class:`ByteBudget` counts the bytes of every record held by any task.

Hand-off: the task's threads call :meth:`TaskLog.emit`, which applies the level gate
*before* numbering (so seqs stay contiguous), numbers and timestamps the record and
encodes it once, on the emitting thread. The worker's event loop takes batches with
:meth:`TaskLog.take_batch`, drops acknowledged records with :meth:`TaskLog.ack`, and
after a reconnect :meth:`TaskLog.rewind`\\ s to what the server says it keeps.

Backpressure: a record's bytes are reserved from the budget before it is numbered,
and released only when ``ack`` covers it. While the budget is full, ``emit`` blocks
the emitting thread (never the event loop: on the loop it goes over, and the sender
keeps the connection under the server's limit instead). Since everything held is
counted, whatever is resent after a reconnect also fits.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Deque, List, Mapping, Optional, Union

from . import protocol
from .protocol import Level, LogSettings

_SEQ_PREFIX = len('{"seq":')
_TIMESTAMP_PREFIX = len(',"timestamp":"')


def _never() -> bool:
    return False


def _always() -> bool:
    return True


def _ignore(urgent: bool) -> None:
    pass


class ByteBudget:
    """Bytes of records held and not acknowledged, shared by a worker's tasks.

    :meth:`reserve` waits while taking ``n`` more would pass the limit, unless
    nothing is held (a record larger than the whole budget still goes, alone).
    """

    def __init__(self, limit: int) -> None:
        self._cond = threading.Condition()
        self._limit = limit
        self._used = 0

    @property
    def used(self) -> int:
        return self._used

    @property
    def limit(self) -> int:
        return self._limit

    def set_limit(self, limit: int) -> None:
        with self._cond:
            self._limit = limit
            self._cond.notify_all()

    def reserve(self, n: int, *, wait: bool = True, give_up: Callable[[], bool] = _never) -> bool:
        """Takes ``n`` bytes; False (nothing taken) if ``give_up()`` turned true while waiting."""
        with self._cond:
            while wait and self._used > 0 and self._used + n > self._limit:
                if give_up():
                    return False
                self._cond.wait()
            self._used += n
            return True

    def release(self, n: int) -> None:
        if n:
            with self._cond:
                self._used -= n
                self._cond.notify_all()

    def wake(self) -> None:
        """Lets waiters check their ``give_up`` again."""
        with self._cond:
            self._cond.notify_all()


@dataclass
class Record:
    seq: int
    text: str
    size: int


@dataclass(frozen=True)
class Batch:
    entries: List[str]
    size: int
    first_seq: int
    last_seq: int


class TaskLog:
    """The records of one task: see the module documentation."""

    def __init__(
        self,
        task_id: str,
        settings: LogSettings,
        budget: ByteBudget,
        *,
        on_ready: Callable[[bool], None] = _ignore,
        may_block: Callable[[], bool] = _always,
        batch_records: int = 1000,
    ) -> None:
        self.task_id = task_id
        self.settings = settings
        self._budget = budget
        self._on_ready = on_ready
        self._may_block = may_block
        self._batch_records = batch_records
        self._lock = threading.Lock()
        self._next_seq = 1
        self._acked_seq = 0
        self._pending: Deque[Record] = deque()
        self._sent: Deque[Record] = deque()
        self._discarded = False
        self._closed = False

    # -- emitting (any thread) ---------------------------------------------

    def enabled(self, level: Level) -> bool:
        """Whether a record at ``level`` would be kept now."""
        return not self._closed and self.settings.keeps(level)

    def emit(
        self,
        level: Union[Level, str, int],
        source: Optional[str],
        message: Any,
        metadata: Optional[Mapping[str, Any]] = None,
    ) -> Optional[int]:
        """Numbers and queues one record; its seq, or None when the gate dropped it."""
        level = Level.parse(level)
        if not self.enabled(level):
            # A group's marks pass the level gate (the server keeps the sections).
            if self._closed or not (isinstance(message, str) and protocol.is_group_mark(message)):
                return None
        tail = protocol.entry_tail(
            level,
            protocol.clean_source(source),
            protocol.cap_message(message if isinstance(message, str) else str(message)),
            protocol.encode_metadata(metadata),
        )
        size_without_seq = _SEQ_PREFIX + _TIMESTAMP_PREFIX + protocol.TIMESTAMP_CHARS + len(tail.encode("utf-8"))
        # One digit of slack: other threads may take seqs meanwhile (9 → 10).
        reserved = size_without_seq + len(str(self._next_seq)) + 1
        if not self._budget.reserve(reserved, wait=self._may_block(), give_up=self._is_discarded):
            return None
        with self._lock:
            if self._closed:
                seq = None
            else:
                seq = self._next_seq
                self._next_seq += 1
                text = protocol.entry_head(seq, protocol.format_timestamp()) + tail
                record = Record(seq, text, size_without_seq + len(str(seq)))
                self._pending.append(record)
                queued = len(self._pending)
        if seq is None:
            self._budget.release(reserved)
            return None
        if record.size > reserved:
            self._budget.reserve(record.size - reserved, wait=False)
        else:
            self._budget.release(reserved - record.size)
        if queued == 1 or queued == self._batch_records:
            self._on_ready(queued >= self._batch_records)
        return seq

    # -- sending (the event loop) ------------------------------------------

    def take_batch(self, max_records: int, max_bytes: int, room: int, *, at_least_one: bool = False) -> Optional[Batch]:
        """Moves up to ``max_records`` pending records (``max_bytes``, and ``room`` left
        on the connection) to the sent queue; ``at_least_one`` takes the first
        record whatever its size. None when there is nothing to send."""
        entries: List[str] = []
        size = 0
        with self._lock:
            while self._pending and len(entries) < max_records:
                record = self._pending[0]
                fits = size + record.size <= min(max_bytes, room)
                if not fits and (entries or not at_least_one):
                    break
                self._sent.append(self._pending.popleft())
                entries.append(record.text)
                size += record.size
            if not entries:
                return None
            return Batch(entries, size, self._sent[-len(entries)].seq, self._sent[-1].seq)

    def ack(self, seq: int) -> int:
        """Drops records up to ``seq``; the bytes of those that were sent on this connection."""
        freed = freed_sent = 0
        with self._lock:
            if seq <= self._acked_seq:
                return 0
            self._acked_seq = seq
            while self._sent and self._sent[0].seq <= seq:
                size = self._sent.popleft().size
                freed += size
                freed_sent += size
            while self._pending and self._pending[0].seq <= seq:
                freed += self._pending.popleft().size
        self._budget.release(freed)
        return freed_sent

    def rewind(self, acked_seq: int) -> None:
        """A new connection: drop what the server has made durable, send the rest again."""
        freed = 0
        with self._lock:
            self._acked_seq = max(self._acked_seq, acked_seq)
            held = self._sent + self._pending
            while held and held[0].seq <= self._acked_seq:
                freed += held.popleft().size
            self._pending = held
            self._sent = deque()
        self._budget.release(freed)

    def close(self) -> None:
        """The task has ended: refuse new records, keep sending those held."""
        with self._lock:
            self._closed = True

    def discard(self) -> None:
        """The server no longer wants this task's records: drop them and refuse new ones."""
        with self._lock:
            self._discarded = self._closed = True
            freed = sum(r.size for r in self._sent) + sum(r.size for r in self._pending)
            self._sent.clear()
            self._pending.clear()
        self._budget.release(freed)
        self._budget.wake()

    # -- state ---------------------------------------------------------------

    @property
    def discarded(self) -> bool:
        return self._discarded

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    @property
    def held(self) -> int:
        """Records not yet acknowledged."""
        return len(self._pending) + len(self._sent)

    @property
    def last_seq(self) -> int:
        """The seq of the newest record (0 before the first)."""
        return self._next_seq - 1

    @property
    def acked_seq(self) -> int:
        """Every record up to this seq is durable on the server."""
        return self._acked_seq

    def _is_discarded(self) -> bool:
        return self._discarded
