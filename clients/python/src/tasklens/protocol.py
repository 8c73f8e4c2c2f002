"""The worker protocol of ``/ws/worker``, version 1, as plain values.

Builders turn Python values into the JSON text of worker → server messages;
:func:`parse_server_message` turns the text of a server → worker message into one of
the frozen dataclasses below. Nothing here does I/O, so the rules of the protocol
(docs/api.md, "Workers: WebSocket ``/ws/worker``") can be tested on their own.

The record rules mirror the server's (``protocol/src/entry.rs``): a message is cut at
64 KiB with a note of what was cut, NUL becomes U+FFFD, metadata over 64 KiB becomes
``{"truncated_bytes": N}``, a source is at most 64 characters without commas or
control characters, and ``system`` (the engine's own source) becomes ``plugin``.
Applying them here keeps a record's size, and so the unacknowledged-bytes budget and
the frame size, what the worker thinks it is.
"""

from __future__ import annotations

import enum
import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union
from urllib.parse import urlsplit, urlunsplit

PROTOCOL_VERSION = 1
WORKER_PATH = "/ws/worker"

MAX_FRAME_BYTES = 8 * 1024 * 1024
"""The largest message either side accepts."""
MAX_ENTRIES_PER_MESSAGE = 10_000
MAX_PLUGINS = 100
MAX_CAPACITY = 1024
MAX_SCHEMA_BYTES = 64 * 1024
MAX_SOURCE_CHARS = 64
MAX_MESSAGE_BYTES = 64 * 1024
MAX_METADATA_BYTES = 64 * 1024

DEFAULT_SOURCE = "plugin"
RESERVED_SOURCE = "system"

_WORKER_ID = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_PLUGIN_NAME = re.compile(r"[a-z0-9_.\-]{1,64}")


class ProtocolError(ValueError):
    """A message that does not follow the protocol (or a value that could not)."""


class Level(enum.IntEnum):
    """A record's level. The values are those of :mod:`logging`, so the two compare."""

    DEBUG = 10
    INFO = 20
    WARNING = 30
    ERROR = 40

    @classmethod
    def parse(cls, value: Union[str, int, "Level"]) -> "Level":
        """``"warning"``, ``"WARN"``, ``Level.WARNING`` or ``logging.WARNING``."""
        if isinstance(value, Level):
            return value
        if isinstance(value, int):
            return cls.from_logging(value)
        name = str(value).strip().upper()
        if name == "WARN":
            name = "WARNING"
        try:
            return cls[name]
        except KeyError:
            raise ProtocolError(f"unknown level {value!r} (DEBUG, INFO, WARNING, ERROR)") from None

    @classmethod
    def from_logging(cls, levelno: int) -> "Level":
        """A :mod:`logging` level number: CRITICAL is ERROR, NOTSET is DEBUG."""
        if levelno >= cls.ERROR:
            return cls.ERROR
        if levelno >= cls.WARNING:
            return cls.WARNING
        if levelno >= cls.INFO:
            return cls.INFO
        return cls.DEBUG


@dataclass(frozen=True)
class LogSettings:
    """The logging settings in force on the server (``GET /api/settings/logging``)."""

    app_log_level: Level = Level.INFO
    task_log_level: Level = Level.INFO
    belief_scope_enabled: bool = True

    def keeps(self, level: Level) -> bool:
        """Whether a task record at ``level`` is sent at all."""
        return level >= self.task_log_level

    @property
    def keeps_belief_scope(self) -> bool:
        """Whether ``belief_scope`` records (DEBUG) are sent."""
        return self.belief_scope_enabled and self.keeps(Level.DEBUG)

    @classmethod
    def from_json(cls, value: Any) -> "LogSettings":
        obj = _object(value, "settings")
        return cls(
            app_log_level=Level.parse(obj.get("app_log_level", "INFO")),
            task_log_level=Level.parse(obj.get("task_log_level", "INFO")),
            belief_scope_enabled=bool(obj.get("belief_scope_enabled", True)),
        )

    def to_json(self) -> Dict[str, Any]:
        return {
            "app_log_level": self.app_log_level.name,
            "task_log_level": self.task_log_level.name,
            "belief_scope_enabled": self.belief_scope_enabled,
        }


@dataclass(frozen=True)
class PluginSpec:
    """What ``hello`` says about one plugin."""

    name: str
    description: str = ""
    params_schema: Optional[Mapping[str, Any]] = None
    example_params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _PLUGIN_NAME.fullmatch(self.name):
            raise ProtocolError(
                f"plugin name {self.name!r} must be 1-64 characters of a-z, 0-9, '_', '.', '-'"
            )
        if self.params_schema is not None:
            size = len(dumps(self.params_schema).encode())
            if size > MAX_SCHEMA_BYTES:
                raise ProtocolError(f"params_schema of {self.name!r} is {size} bytes (at most 64 KiB)")

    def to_json(self) -> Dict[str, Any]:
        spec: Dict[str, Any] = {"name": self.name, "description": self.description}
        if self.params_schema is not None:
            spec["params_schema"] = self.params_schema
        spec["example_params"] = self.example_params
        return spec


# ---------------------------------------------------------------------------
# Server → worker


@dataclass(frozen=True)
class Resumed:
    task_id: str
    acked_seq: int
    last_seq: int


@dataclass(frozen=True)
class Welcome:
    protocol: int
    worker_id: str
    max_unacked_bytes: int
    settings: LogSettings
    resumed: Tuple[Resumed, ...] = ()
    gone: Tuple[str, ...] = ()


@dataclass(frozen=True)
class Run:
    task_id: str
    plugin: str
    params: Any
    settings: LogSettings


@dataclass(frozen=True)
class Cancel:
    task_id: str


@dataclass(frozen=True)
class SettingsChanged:
    """New settings for one task, or for all when ``task_id`` is None."""

    task_id: Optional[str]
    settings: LogSettings


@dataclass(frozen=True)
class Ack:
    task_id: str
    seq: int


@dataclass(frozen=True)
class Done:
    task_id: str
    status: str


@dataclass(frozen=True)
class ServerError:
    message: str
    task_id: Optional[str] = None
    fatal: bool = False


ServerMessage = Union[Welcome, Run, Cancel, SettingsChanged, Ack, Done, ServerError]


def parse_server_message(text: Union[str, bytes]) -> ServerMessage:
    """Parses one server → worker frame; :class:`ProtocolError` when it is not one."""
    try:
        msg = _object(json.loads(text), "message")
    except json.JSONDecodeError as e:
        raise ProtocolError(f"not JSON: {e}") from None
    kind = msg.get("type")
    try:
        if kind == "welcome":
            return Welcome(
                protocol=_int(msg, "protocol"),
                worker_id=_str(msg, "worker_id"),
                max_unacked_bytes=_int(msg, "max_unacked_bytes"),
                settings=LogSettings.from_json(msg.get("settings", {})),
                resumed=tuple(_resumed(r) for r in msg.get("resumed") or []),
                gone=tuple(str(t) for t in msg.get("gone") or []),
            )
        if kind == "run":
            return Run(
                task_id=_str(msg, "task_id"),
                plugin=_str(msg, "plugin"),
                params=msg.get("params"),
                settings=LogSettings.from_json(msg.get("settings", {})),
            )
        if kind == "cancel":
            return Cancel(_str(msg, "task_id"))
        if kind == "settings":
            task_id = msg.get("task_id")
            return SettingsChanged(
                None if task_id is None else str(task_id),
                LogSettings.from_json(msg.get("settings")),
            )
        if kind == "ack":
            return Ack(_str(msg, "task_id"), _int(msg, "seq"))
        if kind == "done":
            return Done(_str(msg, "task_id"), _str(msg, "status"))
        if kind == "error":
            task_id = msg.get("task_id")
            return ServerError(
                message=str(msg.get("message", "")),
                task_id=None if task_id is None else str(task_id),
                fatal=bool(msg.get("fatal", False)),
            )
    except (KeyError, TypeError) as e:
        raise ProtocolError(f"bad {kind} message: {e}") from None
    raise ProtocolError(f"unknown message type {kind!r}")


# ---------------------------------------------------------------------------
# Worker → server


def hello(
    worker_id: str,
    name: str,
    capacity: int,
    plugins: Sequence[PluginSpec],
    resume: Sequence[str] = (),
) -> str:
    if not _WORKER_ID.fullmatch(worker_id):
        raise ProtocolError(f"worker_id {worker_id!r} must be 1-64 characters of A-Za-z0-9_.-")
    if not 0 <= capacity <= MAX_CAPACITY:
        raise ProtocolError(f"capacity {capacity} is outside 0-{MAX_CAPACITY}")
    if len(plugins) > MAX_PLUGINS:
        raise ProtocolError(f"{len(plugins)} plugins (at most {MAX_PLUGINS})")
    return dumps(
        {
            "type": "hello",
            "protocol": PROTOCOL_VERSION,
            "worker_id": worker_id,
            "name": name or worker_id,
            "capacity": capacity,
            "plugins": [p.to_json() for p in plugins],
            "resume": list(resume),
        }
    )


def logs(task_id: str, entries: Sequence[str]) -> str:
    """A ``logs`` message from entries already encoded by :func:`encode_entry`."""
    if not 1 <= len(entries) <= MAX_ENTRIES_PER_MESSAGE:
        raise ProtocolError(f"a logs message carries 1-{MAX_ENTRIES_PER_MESSAGE} records, not {len(entries)}")
    return '{"type":"logs","task_id":%s,"entries":[%s]}' % (dumps(task_id), ",".join(entries))


def finish_success(task_id: str, result: Any = None) -> str:
    """Raises :class:`ProtocolError` when ``result`` is not JSON."""
    try:
        result_json = json.dumps(result, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ProtocolError(f"the result is not JSON-serialisable: {type(e).__name__}: {e}") from None
    return '{"type":"finish","task_id":%s,"status":"success","result":%s}' % (dumps(task_id), result_json)


def finish_failed(task_id: str, error: str) -> str:
    return dumps({"type": "finish", "task_id": task_id, "status": "failed", "error": error})


def finish_cancelled(task_id: str) -> str:
    return dumps({"type": "finish", "task_id": task_id, "status": "cancelled"})


def submit(plugin: str, params: Mapping[str, Any]) -> str:
    if not isinstance(params, Mapping):
        raise ProtocolError("submit params must be an object")
    return dumps({"type": "submit", "plugin": plugin, "params": dict(params)})


# ---------------------------------------------------------------------------
# Records


def encode_entry(
    seq: int,
    timestamp: str,
    level: Level,
    source: str,
    message: str,
    metadata_json: Optional[str] = None,
) -> str:
    """One record as the JSON text it travels as (``metadata_json`` from :func:`encode_metadata`)."""
    return entry_head(seq, timestamp) + entry_tail(level, source, message, metadata_json)


def entry_head(seq: int, timestamp: str) -> str:
    """The start of an encoded record: what is known only once it is numbered."""
    return '{"seq":%d,"timestamp":"%s' % (seq, timestamp)


def entry_tail(level: Level, source: str, message: str, metadata_json: Optional[str] = None) -> str:
    """The rest of an encoded record, after :func:`entry_head`."""
    tail = "" if metadata_json is None else ',"metadata":' + metadata_json
    return '","level":"%s","source":%s,"message":%s%s}' % (level.name, dumps(source), dumps(message), tail)


TIMESTAMP_CHARS = len("2026-11-25T11:30:02.123456Z")


def format_timestamp(seconds: Optional[float] = None) -> str:
    """RFC 3339 UTC with microseconds: ``2026-11-25T11:30:02.123456Z``."""
    if seconds is None:
        seconds = time.time()
    whole = int(seconds)
    micros = int(round((seconds - whole) * 1_000_000))
    if micros == 1_000_000:
        whole, micros = whole + 1, 0
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + ".%06dZ" % micros


def clean_source(name: Optional[str]) -> str:
    """A source name as the server keeps it (see the module documentation)."""
    name = (name or "").strip()
    if not name or name == RESERVED_SOURCE:
        return DEFAULT_SOURCE
    if len(name) > MAX_SOURCE_CHARS or any(c == "," or _is_control(c) for c in name):
        name = "".join("_" if c == "," or _is_control(c) else c for c in name[:MAX_SOURCE_CHARS])
    return name


GROUP_OPEN_PREFIX = "::group::"
GROUP_CLOSE_LINE = "::endgroup::"


def is_group_mark(message: str) -> bool:
    """Whether a line opens (``::group::NAME``) or closes (``::endgroup::``) a group.

    The server folds the records between them into a section and keeps both marks
    whatever the task's level, so the worker sends them past its level gate too.
    """
    return message.startswith(GROUP_OPEN_PREFIX) or message.rstrip() == GROUP_CLOSE_LINE


def cap_message(message: str) -> str:
    """At most 64 KiB of UTF-8 (cut on a character), noting how many bytes were cut."""
    if "\0" in message:
        message = message.replace("\0", "\ufffd")
    if len(message) * 4 <= MAX_MESSAGE_BYTES:
        return message
    data = message.encode("utf-8", "replace")
    if len(data) <= MAX_MESSAGE_BYTES:
        return message
    kept = data[:MAX_MESSAGE_BYTES].decode("utf-8", "ignore")
    dropped = len(data) - len(kept.encode("utf-8"))
    return f"{kept} … [truncated {dropped} bytes]"


def encode_metadata(metadata: Optional[Mapping[str, Any]]) -> Optional[str]:
    """Metadata as JSON text, or None when there is none.

    Values JSON cannot hold become their ``str()``, and NaN or infinite numbers
    become strings, so that logging never raises; more than 64 KiB becomes
    ``{"truncated_bytes": N}``.
    """
    if not metadata:
        return None
    try:
        text = json.dumps(metadata, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=str)
    except ValueError:
        text = dumps(_finite(metadata))
    size = len(text.encode("utf-8"))
    if size > MAX_METADATA_BYTES:
        return '{"truncated_bytes":%d}' % size
    return text


def worker_url(server: str) -> str:
    """``http(s)://host:port[/prefix]`` (or ``ws(s)://…``) → the ``/ws/worker`` URL."""
    parts = urlsplit(server.strip())
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ValueError(f"server URL {server!r} must look like http://host:port or https://host")
    path = parts.path.rstrip("/")
    if not path.endswith(WORKER_PATH):
        path += WORKER_PATH
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def dumps(value: Any) -> str:
    """Compact JSON, UTF-8 left as it is (the size counted is the size sent)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# ---------------------------------------------------------------------------


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _resumed(value: Any) -> Resumed:
    entry = _object(value, "resumed entry")
    return Resumed(_str(entry, "task_id"), _int(entry, "acked_seq"), _int(entry, "last_seq"))


def _is_control(c: str) -> bool:
    return c < " " or "\x7f" <= c <= "\x9f"


def _object(value: Any, what: str) -> Dict[str, Any]:
    if not isinstance(value, dict):
        raise ProtocolError(f"{what} is not a JSON object")
    return value


def _str(obj: Mapping[str, Any], key: str) -> str:
    value = obj[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} is not a string")
    return value


def _int(obj: Mapping[str, Any], key: str) -> int:
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{key} is not an integer")
    return value


__all__ = [
    "PROTOCOL_VERSION",
    "Level",
    "LogSettings",
    "PluginSpec",
    "ProtocolError",
    "Welcome",
    "Resumed",
    "Run",
    "Cancel",
    "SettingsChanged",
    "Ack",
    "Done",
    "ServerError",
    "ServerMessage",
    "parse_server_message",
    "hello",
    "logs",
    "finish_success",
    "finish_failed",
    "finish_cancelled",
    "submit",
    "encode_entry",
    "encode_metadata",
    "format_timestamp",
    "clean_source",
    "cap_message",
    "worker_url",
]
