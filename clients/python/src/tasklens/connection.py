"""One connection to ``/ws/worker``: the handshake, then a reader and a writer.

State: a :class:`Session` holds its WebSocket and, per task, the ``logs`` messages
it has sent that ``ack`` has not yet covered, as (last seq, frame bytes); their sum is
``unacked``. This is how the server counts ``max_unacked_bytes`` (a message's bytes
are freed once an ``ack`` reaches its last seq), so the two agree. Everything else
(tasks, their records, the byte budget) is the worker's and outlives the connection.

Messages: the reader hands ``ack`` to the task's log (and frees connection room),
every other server message to the worker. The writer is the only sender after
``hello``: woken when records are waiting, it lingers up to :data:`LINGER` seconds
for more (less when a task has a full batch or a ``finish``), then sends each task's
records in ``logs`` messages of at most :data:`BATCH_RECORDS` records and
:data:`BATCH_BYTES` bytes, round robin over the tasks, then each ended task's
``finish`` once all its records are out.

Backpressure: the writer never has more than the worker's byte limit of records
sent and unacknowledged on the connection; when that is reached it stops, and the
next ``ack`` wakes it. Emitting threads are held back earlier, by the byte budget
(see :mod:`tasklens.records`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Deque, Dict, Optional, Tuple

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from . import protocol
from .protocol import Ack, ProtocolError, ServerError, Welcome

if TYPE_CHECKING:
    from .worker import Worker

log = logging.getLogger("tasklens.connection")

LINGER = 0.05
"""Seconds a record may wait for others to share its ``logs`` message."""
BATCH_RECORDS = 1000
BATCH_BYTES = 1024 * 1024
"""Entries per ``logs`` message: well below the 8 MiB frame limit."""
FRAME_OVERHEAD = 2048
"""Room kept for a ``logs`` message's own bytes and the commas between its entries."""
WELCOME_TIMEOUT = 10.0


class WorkerRefused(Exception):
    """The server will not have this worker: a refused token, or a refused ``hello``
    (such as an unsupported protocol version). Reconnecting would not help."""


def open_websocket(url: str, token: str) -> "connect":
    """The websockets client connection (an async context manager)."""
    return connect(
        url,
        additional_headers={"Authorization": f"Bearer {token}"},
        max_size=protocol.MAX_FRAME_BYTES,
        open_timeout=WELCOME_TIMEOUT,
        close_timeout=2,
    )


class Session:
    """See the module documentation."""

    def __init__(self, ws: ClientConnection, worker: "Worker") -> None:
        self._ws = ws
        self._worker = worker
        self.welcomed = False
        self.limit = 0
        self.unacked = 0
        self._in_flight: Dict[str, Deque[Tuple[int, int]]] = {}
        self._starved = False

    async def run(self) -> None:
        """Says hello, waits for welcome, then serves until the connection closes."""
        await self._ws.send(self._worker._hello())
        welcome = await asyncio.wait_for(self._welcome(), WELCOME_TIMEOUT)
        self.limit = self._worker._on_welcome(welcome, self)
        self.welcomed = True
        reader = asyncio.ensure_future(self._read())
        writer = asyncio.ensure_future(self._write())
        try:
            done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
            for finished in done:
                error = finished.exception()
                if error is not None and not isinstance(error, ConnectionClosed):
                    raise error
        finally:
            for part in (reader, writer):
                part.cancel()
            await asyncio.gather(reader, writer, return_exceptions=True)

    async def _welcome(self) -> Welcome:
        while True:
            try:
                message = protocol.parse_server_message(await self._ws.recv())
            except ProtocolError as e:
                log.warning("ignoring a message before welcome: %s", e)
                continue
            if isinstance(message, Welcome):
                return message
            if isinstance(message, ServerError) and message.fatal:
                raise WorkerRefused(f"the server refused this worker's hello: {message.message}")
            log.warning("ignoring %s before welcome", type(message).__name__)

    async def _read(self) -> None:
        async for text in self._ws:
            try:
                message = protocol.parse_server_message(text)
            except ProtocolError as e:
                log.warning("ignoring a message from the server: %s", e)
                continue
            if isinstance(message, Ack):
                self._on_ack(message)
            else:
                self._worker._on_message(message)

    def _on_ack(self, ack: Ack) -> None:
        in_flight = self._in_flight.get(ack.task_id)
        while in_flight and in_flight[0][0] <= ack.seq:
            self.unacked -= in_flight.popleft()[1]
        task = self._worker._tasks.get(ack.task_id)
        if task is not None:
            task.log.ack(ack.seq)
        if self._starved:
            self._worker._wake_writer(urgent=True)

    async def _write(self) -> None:
        wake, urgent = self._worker._wake, self._worker._urgent
        while True:
            await wake.wait()
            if not urgent.is_set():
                try:
                    await asyncio.wait_for(urgent.wait(), LINGER)
                except asyncio.TimeoutError:
                    pass
            wake.clear()
            urgent.clear()
            await self._flush()

    async def _flush(self) -> None:
        progress = True
        while progress:
            progress = False
            for task in list(self._worker._tasks.values()):
                if task.forgotten:
                    continue
                batch = task.log.take_batch(
                    BATCH_RECORDS,
                    BATCH_BYTES,
                    self.limit - self.unacked - FRAME_OVERHEAD,
                    at_least_one=self.unacked == 0,
                )
                if batch is not None:
                    frame = protocol.logs(task.id, batch.entries)
                    size = len(frame.encode("utf-8"))
                    self._in_flight.setdefault(task.id, deque()).append((batch.last_seq, size))
                    self.unacked += size
                    await self._ws.send(frame)
                    progress = True
                elif task.finish is not None and not task.finish_sent and not task.log.has_pending:
                    task.finish_sent = True
                    await self._ws.send(task.finish)
                    progress = True
        self._starved = any(t.log.has_pending for t in self._worker._tasks.values())
        for task_id in [t for t in self._in_flight if t not in self._worker._tasks]:
            self.unacked -= sum(size for _, size in self._in_flight.pop(task_id))

    async def close(self) -> None:
        await self._ws.close()


def close_reason(error: BaseException) -> Optional[str]:
    """What a closed connection's close frame said, if anything."""
    if isinstance(error, ConnectionClosed) and error.rcvd is not None:
        return f"{error.rcvd.code} {error.rcvd.reason}".strip()
    return None
