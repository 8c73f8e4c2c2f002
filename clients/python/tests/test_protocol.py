"""The protocol's builders and parser, and the record rules they share with the server."""

import json
import re

import pytest

from tasklens import protocol
from tasklens.protocol import (
    Ack,
    Cancel,
    Done,
    Level,
    LogSettings,
    PluginSpec,
    ProtocolError,
    Run,
    ServerError,
    SettingsChanged,
    Welcome,
)

TASK = "01a2129c-1929-7046-ae5c-63428612feb2"
SETTINGS = {"app_log_level": "INFO", "task_log_level": "DEBUG", "belief_scope_enabled": False}


def test_timestamps_are_rfc3339_utc_with_microseconds():
    assert protocol.format_timestamp(0) == "1970-01-01T00:00:00.000000Z"
    assert protocol.format_timestamp(1764502202.123456) == "2025-11-30T11:30:02.123456Z"
    assert protocol.format_timestamp(59.9999999) == "1970-01-01T00:01:00.000000Z"
    now = protocol.format_timestamp()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", now)
    assert len(now) == protocol.TIMESTAMP_CHARS


def test_levels_parse_any_case_and_warn_and_map_logging_levels():
    assert Level.parse("warn") is Level.WARNING
    assert Level.parse("Error") is Level.ERROR
    assert Level.parse(50) is Level.ERROR  # CRITICAL
    assert Level.parse(0) is Level.DEBUG  # NOTSET
    assert Level.parse(25) is Level.INFO
    assert Level.DEBUG < Level.INFO < Level.WARNING < Level.ERROR
    with pytest.raises(ProtocolError):
        Level.parse("verbose")


def test_settings_gate_records_and_belief_scope():
    info = LogSettings(task_log_level=Level.INFO)
    assert info.keeps(Level.INFO) and not info.keeps(Level.DEBUG)
    assert not info.keeps_belief_scope
    assert LogSettings(task_log_level=Level.DEBUG).keeps_belief_scope
    assert not LogSettings(task_log_level=Level.DEBUG, belief_scope_enabled=False).keeps_belief_scope
    assert LogSettings.from_json(SETTINGS).to_json() == {**SETTINGS}


def test_an_entry_is_compact_json_with_the_fields_the_server_reads():
    text = protocol.encode_entry(
        7, "2026-11-30T10:00:00.123456Z", Level.WARNING, "api", "slow \"résumé\"", '{"ms":950}'
    )
    assert json.loads(text) == {
        "seq": 7,
        "timestamp": "2026-11-30T10:00:00.123456Z",
        "level": "WARNING",
        "source": "api",
        "message": 'slow "résumé"',
        "metadata": {"ms": 950},
    }
    assert "metadata" not in json.loads(protocol.encode_entry(1, "t", Level.INFO, "plugin", "m"))


def test_logs_finish_and_submit_messages():
    logs = json.loads(protocol.logs(TASK, ['{"seq":1}', '{"seq":2}']))
    assert logs == {"type": "logs", "task_id": TASK, "entries": [{"seq": 1}, {"seq": 2}]}
    with pytest.raises(ProtocolError):
        protocol.logs(TASK, [])
    assert json.loads(protocol.finish_success(TASK, {"synced": 3})) == {
        "type": "finish",
        "task_id": TASK,
        "status": "success",
        "result": {"synced": 3},
    }
    assert json.loads(protocol.finish_failed(TASK, "ValueError: bad row"))["error"] == "ValueError: bad row"
    assert json.loads(protocol.finish_cancelled(TASK)) == {"type": "finish", "task_id": TASK, "status": "cancelled"}
    with pytest.raises(ProtocolError, match="not JSON"):
        protocol.finish_success(TASK, {1, 2})
    with pytest.raises(ProtocolError):
        protocol.finish_success(TASK, float("nan"))
    assert json.loads(protocol.submit("exec", {"argv": ["make"]})) == {
        "type": "submit",
        "plugin": "exec",
        "params": {"argv": ["make"]},
    }


def test_hello_carries_plugins_and_resume_and_checks_limits():
    spec = PluginSpec("sync_dashboards", "Copies.", {"type": "object"}, {"workspace": "sales"})
    hello = json.loads(protocol.hello("abc123", "", 4, [spec, PluginSpec("plain")], ["t1"]))
    assert hello == {
        "type": "hello",
        "protocol": 1,
        "worker_id": "abc123",
        "name": "abc123",
        "capacity": 4,
        "plugins": [
            {
                "name": "sync_dashboards",
                "description": "Copies.",
                "params_schema": {"type": "object"},
                "example_params": {"workspace": "sales"},
            },
            {"name": "plain", "description": "", "example_params": {}},
        ],
        "resume": ["t1"],
    }
    with pytest.raises(ProtocolError):
        protocol.hello("no spaces", "n", 1, [])
    with pytest.raises(ProtocolError):
        protocol.hello("w", "n", 1025, [])
    with pytest.raises(ProtocolError):
        PluginSpec("Upper")
    with pytest.raises(ProtocolError):
        PluginSpec("big", params_schema={"x": "y" * 70_000})


def test_server_messages_parse_into_their_types():
    welcome = protocol.parse_server_message(
        json.dumps(
            {
                "type": "welcome",
                "protocol": 1,
                "worker_id": "w",
                "max_unacked_bytes": 33554432,
                "settings": SETTINGS,
                "resumed": [{"task_id": TASK, "acked_seq": 120, "last_seq": 130}],
                "gone": ["t2"],
            }
        )
    )
    assert isinstance(welcome, Welcome)
    assert welcome.resumed[0].acked_seq == 120 and welcome.resumed[0].last_seq == 130
    assert welcome.gone == ("t2",)
    assert welcome.settings.task_log_level is Level.DEBUG

    run = protocol.parse_server_message(
        json.dumps({"type": "run", "task_id": TASK, "plugin": "p", "params": {"a": 1}, "settings": SETTINGS})
    )
    assert run == Run(TASK, "p", {"a": 1}, LogSettings.from_json(SETTINGS))
    assert protocol.parse_server_message('{"type":"cancel","task_id":"t"}') == Cancel("t")
    assert protocol.parse_server_message('{"type":"ack","task_id":"t","seq":130}') == Ack("t", 130)
    assert protocol.parse_server_message('{"type":"done","task_id":"t","status":"success"}') == Done("t", "success")
    changed = protocol.parse_server_message(json.dumps({"type": "settings", "task_id": "t", "settings": SETTINGS}))
    assert isinstance(changed, SettingsChanged) and changed.task_id == "t"
    error = protocol.parse_server_message('{"type":"error","message":"seq 17 does not follow 12","task_id":"t","fatal":true}')
    assert error == ServerError("seq 17 does not follow 12", "t", True)


@pytest.mark.parametrize(
    "text",
    ["not json", "[]", '{"type":"dance"}', '{"type":"ack","task_id":"t"}', '{"type":"ack","task_id":"t","seq":"1"}'],
)
def test_malformed_server_messages_are_protocol_errors(text):
    with pytest.raises(ProtocolError):
        protocol.parse_server_message(text)


def test_records_obey_the_servers_caps():
    assert protocol.clean_source("system") == "plugin"
    assert protocol.clean_source("  ") == "plugin"
    assert protocol.clean_source("a,b\nc") == "a_b_c"
    assert len(protocol.clean_source("x" * 100)) == 64
    long = "é" * 40_000  # 80,000 bytes
    capped = protocol.cap_message(long)
    assert capped.endswith("[truncated 14464 bytes]")
    assert len(capped.encode()) < protocol.MAX_MESSAGE_BYTES + 40
    assert protocol.cap_message("a\0b") == "a\ufffdb"
    assert protocol.encode_metadata({}) is None
    assert protocol.encode_metadata({"big": "x" * 70_000}) == '{"truncated_bytes":70010}'
    assert json.loads(protocol.encode_metadata({"when": object.__new__(object), "n": float("inf")}))["n"] == "inf"


def test_worker_url_follows_the_server_url():
    assert protocol.worker_url("http://127.0.0.1:8080") == "ws://127.0.0.1:8080/ws/worker"
    assert protocol.worker_url("https://tasks.example.com/") == "wss://tasks.example.com/ws/worker"
    assert protocol.worker_url("https://example.com/tasklens") == "wss://example.com/tasklens/ws/worker"
    with pytest.raises(ValueError):
        protocol.worker_url("127.0.0.1:8080")
