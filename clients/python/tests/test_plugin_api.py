"""The plugin's side, without a server: loggers, belief_scope, logging capture, and how
a plugin's return or exception becomes its ``finish``."""

import json
import logging
import threading

import pytest

from tasklens import TaskCancelled, Worker
from tasklens import capture
from tasklens.context import TaskContext
from tasklens.protocol import Level, LogSettings
from tasklens.records import ByteBudget, TaskLog
from tasklens.tasks import execute

DEBUG = LogSettings(task_log_level=Level.DEBUG)


def context(settings=DEBUG):
    log = TaskLog("t1", settings, ByteBudget(1 << 30))
    return TaskContext("t1", "p", {"n": 1}, log), log


def records(log):
    out = []
    while True:
        batch = log.take_batch(1000, 1 << 20, 1 << 30)
        if batch is None:
            return out
        out.extend(json.loads(e) for e in batch.entries)


def test_keyword_arguments_become_metadata_and_sources_carry_over():
    ctx, log = context()
    ctx.logger.info("starting", dashboard_id=7)
    api = ctx.logger.with_source("superset_api")
    api.warning("slow response", elapsed_ms=950)
    api.log("warn", "as text", message="a metadata key named message")
    got = [(r["level"], r["source"], r["message"], r.get("metadata")) for r in records(log)]
    assert got == [
        ("INFO", "plugin", "starting", {"dashboard_id": 7}),
        ("WARNING", "superset_api", "slow response", {"elapsed_ms": 950}),
        ("WARNING", "superset_api", "as text", {"message": "a metadata key named message"}),
    ]


def test_belief_scope_writes_entry_coherence_exit_at_debug_only_when_enabled():
    ctx, log = context()
    with ctx.belief_scope("plan") as scope:
        scope.coherence(True)
        scope.coherence(False)
    got = [(r["level"], r["message"], r["metadata"]) for r in records(log)]
    assert got == [
        ("DEBUG", "Entry", {"scope": "plan"}),
        ("DEBUG", "Coherence:OK", {"scope": "plan"}),
        ("DEBUG", "Coherence:FAILED", {"scope": "plan"}),
        ("DEBUG", "Exit", {"scope": "plan"}),
    ]
    for settings in (LogSettings(task_log_level=Level.INFO), LogSettings(task_log_level=Level.DEBUG, belief_scope_enabled=False)):
        ctx, log = context(settings)
        with ctx.belief_scope("plan") as scope:
            scope.coherence(True)
        assert records(log) == []


def test_logging_inside_the_task_is_captured_with_the_logger_name_as_source():
    ctx, log = context()
    logging.getLogger("superset_api.capture_test").setLevel(logging.DEBUG)
    elsewhere = threading.Thread(target=lambda: logging.getLogger("x").error("another thread"))

    def plugin(ctx, params):
        logging.getLogger("superset_api.capture_test").debug("debug %s", "formatted")
        logging.getLogger().critical("from root")
        logging.getLogger("tasklens.worker").error("the SDK's own log stays out")
        elsewhere.start()
        elsewhere.join()
        try:
            raise KeyError("k")
        except KeyError:
            logging.getLogger("api").exception("with traceback")
        return {"ok": True}

    capture.install()
    try:
        finish = execute(plugin, ctx)
    finally:
        capture.uninstall()
    assert json.loads(finish)["status"] == "success"
    got = records(log)
    assert [(r["level"], r["source"], r["message"]) for r in got] == [
        ("DEBUG", "superset_api.capture_test", "debug formatted"),
        ("ERROR", "plugin", "from root"),
        ("ERROR", "api", "with traceback"),
    ]
    assert "KeyError" in got[2]["metadata"]["traceback"]


def test_an_exception_fails_the_task_with_its_text_and_traceback():
    ctx, log = context()

    def plugin(ctx, params):
        raise ValueError("bad row")

    finish = json.loads(execute(plugin, ctx))
    assert finish == {"type": "finish", "task_id": "t1", "status": "failed", "error": "ValueError: bad row"}
    (record,) = records(log)
    assert record["level"] == "ERROR" and record["source"] == "plugin" and record["message"] == "ValueError: bad row"
    assert "Traceback (most recent call last)" in record["metadata"]["traceback"]
    assert 'raise ValueError("bad row")' in record["metadata"]["traceback"]


def test_a_result_that_is_not_json_fails_the_task_clearly():
    ctx, log = context()
    finish = json.loads(execute(lambda ctx, params: {"when": {1, 2}}, ctx))
    assert finish["status"] == "failed" and "not JSON" in finish["error"]
    assert "not JSON" in records(log)[0]["message"]


def test_cancel_makes_a_return_or_task_cancelled_a_cancelled_finish():
    ctx, _ = context()
    ctx.cancel()
    assert ctx.cancelled and ctx.wait(10) is True
    assert json.loads(execute(lambda ctx, params: {"partial": 1}, ctx))["status"] == "cancelled"
    ctx, _ = context()

    def plugin(ctx, params):
        raise TaskCancelled()

    assert json.loads(execute(plugin, ctx))["status"] == "cancelled"


def test_a_plain_return_succeeds_with_the_result():
    ctx, _ = context()
    assert json.loads(execute(lambda ctx, params: {"synced": params["n"]}, ctx))["result"] == {"synced": 1}


def test_plugins_register_with_their_hello_fields():
    worker = Worker("http://127.0.0.1:1", token="t", capacity=2)

    @worker.plugin("sync_dashboards", description="Copies.", params_schema={"type": "object"}, example_params={"a": 1})
    def sync(ctx, params):
        return None

    assert sync(None, None) is None  # the decorator returns the function
    (spec,) = worker.plugins
    assert (spec.name, spec.description, spec.params_schema, dict(spec.example_params)) == (
        "sync_dashboards",
        "Copies.",
        {"type": "object"},
        {"a": 1},
    )
    with pytest.raises(ValueError):
        worker.add_plugin("sync_dashboards", sync)
    assert len(worker.worker_id) == 32 and worker.worker_id != Worker().worker_id


def test_a_worker_is_named_for_its_host_and_process_unless_told() -> None:
    import os
    import socket

    from tasklens import Worker

    assert Worker("http://127.0.0.1:1", token="t").name == f"{socket.gethostname()}:{os.getpid()}"
    assert Worker("http://127.0.0.1:1", token="t", name="ci-runner").name == "ci-runner"
