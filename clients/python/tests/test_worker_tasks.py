"""A worker in this process runs tasks of the real server: records, belief_scope,
runtime level changes, cancel, logging capture and failures."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Dict, Iterator, List

import pytest

from support import Follower, Server, eventually, running
from tasklens import Worker

cancel_seen = threading.Event()


def records_and_scope(ctx, params):
    ctx.logger.debug("debug record", step=1)
    ctx.logger.info("starting", dashboard_id=7)
    api = ctx.logger.with_source("superset_api")
    for i in range(params["n"]):
        api.warning("slow response", elapsed_ms=900 + i, dashboard_id=i % 3)
        api.info("GET /api/v1/dashboard", i=i)
    api.error("gave up", dashboard_id=7)
    with ctx.belief_scope("plan") as scope:
        scope.coherence(True)
    ctx.logger.with_source("db").error("lost connection", host="db1")
    return {"synced": params["n"]}


def ticking(ctx, params):
    ctx.logger.info("started")
    i = 0
    while not ctx.cancelled:
        ctx.logger.debug("tick", i=i)
        i += 1
        ctx.wait(0.02)
    cancel_seen.set()
    return {"ticks": i}


def logging_then_failing(ctx, params):
    logging.getLogger("superset_api").warning("slow %s", "response")
    logging.getLogger().error("from the root logger")
    other = threading.Thread(target=lambda: logging.getLogger("elsewhere").error("not this task's"))
    other.start()
    other.join()
    raise ValueError("bad row")


def grouped(ctx, params):
    ctx.logger.info("before")
    with ctx.logger.group("Install dependencies"):
        ctx.logger.debug("below the gate")
        with ctx.logger.group("pip"):
            ctx.logger.error("no matching distribution")
        print_like = ctx.logger.with_source("stdout")
        print_like.info("::group::from a printed line")
        print_like.warning("inside the printed group")
        print_like.info("::endgroup::")
    ctx.logger.info("after")
    return {}


PLUGINS = {
    "py_grouped": grouped,
    "py_records": records_and_scope,
    "py_ticking": ticking,
    "py_failing": logging_then_failing,
}


@pytest.fixture(scope="module")
def worker(server: Server) -> Iterator[Worker]:
    worker = Worker(server.url, token=server.worker_token, capacity=4, name="pytest-in-process")
    for name, function in PLUGINS.items():
        worker.add_plugin(name, function, description=f"test plugin {name}", example_params={})
    with running(worker, server, list(PLUGINS)):
        yield worker


def fields(records: List[Dict[str, Any]]) -> List[tuple]:
    return [(r["seq"], r["level"], r["source"], r["message"], r.get("metadata")) for r in records]


def test_records_are_stored_in_seq_order_and_streamed_live_through_filters(worker, default_logging: Server):
    server = default_logging
    server.set_logging("DEBUG", True)
    task_id = server.start_task("py_records", {"n": 50})
    follower = Follower(server, task_id, {"level": "WARNING", "sources": ["superset_api"]})
    live = follower.wait()

    task = server.wait_final(task_id)
    assert task["status"] == "success", task
    assert task["result"] == {"synced": 50}
    stored = server.logs(task_id)
    assert [r["seq"] for r in stored] == list(range(1, len(stored) + 1))
    assert {r["level"] for r in stored} == {"DEBUG", "INFO", "WARNING", "ERROR"}
    assert ("INFO", "plugin", "starting", {"dashboard_id": 7}) in [f[1:] for f in fields(stored)]
    assert ("ERROR", "db", "lost connection", {"host": "db1"}) in [f[1:] for f in fields(stored)]
    belief = [(r["message"], r["metadata"]) for r in stored if r["level"] == "DEBUG" and r["message"] != "debug record"]
    assert belief == [("Entry", {"scope": "plan"}), ("Coherence:OK", {"scope": "plan"}), ("Exit", {"scope": "plan"})]

    filtered = server.logs(task_id, level="WARNING", source="superset_api")
    assert len(filtered) == 51  # 50 warnings and the error
    assert fields(live) == fields(filtered)
    assert fields(filtered) == [f for f in fields(stored) if f[2] == "superset_api" and f[1] in ("WARNING", "ERROR")]


def test_belief_scope_records_are_absent_at_info_or_when_disabled(worker, default_logging: Server):
    server = default_logging
    at_info = server.start_task("py_records", {"n": 1})
    assert server.wait_final(at_info)["status"] == "success"
    stored = server.logs(at_info)
    assert stored and all(r["level"] != "DEBUG" for r in stored)

    server.set_logging("DEBUG", False)
    disabled = server.start_task("py_records", {"n": 1})
    assert server.wait_final(disabled)["status"] == "success"
    stored = server.logs(disabled)
    assert [r["message"] for r in stored if r["level"] == "DEBUG"] == ["debug record"]
    assert [r["seq"] for r in stored] == list(range(1, len(stored) + 1))


def test_a_runtime_level_change_reaches_a_running_task_and_cancel_stops_it(worker, default_logging: Server):
    server = default_logging
    cancel_seen.clear()
    task_id = server.start_task("py_ticking", {})
    eventually(lambda: server.logs(task_id, q="started"), 10, "the task to start")
    time.sleep(0.3)  # ticking at INFO: every tick dropped
    assert not server.logs(task_id, q="tick")

    server.set_logging("DEBUG", True)
    changed = time.monotonic()
    eventually(lambda: server.logs(task_id, q="tick"), 5, "DEBUG ticks to be stored", interval=0.02)
    assert time.monotonic() - changed < 1.0

    status, answer = server.request("POST", f"/api/tasks/{task_id}/cancel")
    assert status == 202, answer
    assert cancel_seen.wait(5), "cancel did not reach ctx.cancelled"
    task = server.wait_final(task_id)
    assert task["status"] == "cancelled", task
    stored = server.logs(task_id)
    assert [r["seq"] for r in stored] == list(range(1, len(stored) + 1))


def test_logging_inside_a_task_is_captured_and_an_exception_fails_it(worker, default_logging: Server):
    server = default_logging
    task_id = server.start_task("py_failing", {})
    task = server.wait_final(task_id)
    assert task["status"] == "failed", task
    assert task["error"] == "ValueError: bad row"
    stored = server.logs(task_id)
    assert [r["seq"] for r in stored] == list(range(1, len(stored) + 1))
    by_message = {r["message"]: r for r in stored}
    assert (by_message["slow response"]["level"], by_message["slow response"]["source"]) == ("WARNING", "superset_api")
    assert (by_message["from the root logger"]["level"], by_message["from the root logger"]["source"]) == ("ERROR", "plugin")
    assert "not this task's" not in by_message
    failure = by_message["ValueError: bad row"]
    assert (failure["level"], failure["source"]) == ("ERROR", "plugin")
    trace = failure["metadata"]["traceback"]
    assert trace.startswith("Traceback (most recent call last)") and 'raise ValueError("bad row")' in trace


def test_groups_nest_pass_the_level_gate_and_carry_their_worst_level(worker, default_logging: Server):
    server = default_logging
    server.set_logging("WARNING", False)
    task_id = server.start_task("py_grouped", {})
    follower = Follower(server, task_id, {})
    assert server.wait_final(task_id)["status"] == "success"
    stored = server.logs(task_id)
    placed = [(r["seq"], r["message"], r.get("group"), r.get("mark"), r.get("worst")) for r in stored]
    live = follower.wait()
    assert [(r["seq"], r["message"], r.get("group"), r.get("mark"), r.get("worst")) for r in live] == placed
    # INFO lines are gated away, the marks are not; "below the gate" never numbered.
    assert placed == [
        (1, "::group::Install dependencies", None, "open", None),
        (2, "::group::pip", 1, "open", None),
        (3, "no matching distribution", 2, None, None),
        (4, "::endgroup::", 2, "close", "ERROR"),
        (5, "::group::from a printed line", 1, "open", None),
        (6, "inside the printed group", 5, None, None),
        (7, "::endgroup::", 5, "close", "WARNING"),
        (8, "::endgroup::", 1, "close", "ERROR"),
    ]
    groups = server.api("GET", f"/api/tasks/{task_id}/logs/groups")
    assert groups["truncated"] is False
    assert [(g["seq"], g.get("parent"), g["name"], g["end_seq"], g["lines"], g["worst"]) for g in groups["groups"]] == [
        (1, None, "Install dependencies", 8, 6, "ERROR"),
        (2, 1, "pip", 4, 1, "ERROR"),
        (5, 1, "from a printed line", 7, 1, "WARNING"),
    ]
    assert all(g["ended"] >= g["started"] for g in groups["groups"])
