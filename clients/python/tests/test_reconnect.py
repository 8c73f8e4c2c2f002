"""A worker whose connection is cut mid-task reconnects, resumes, and loses or
repeats no record."""

from __future__ import annotations

import threading
import time
from typing import Callable

from support import CuttingProxy, Server, running
from tasklens import Worker

RECORDS = 20_000
CUT_AT = (5_000, 12_000)
reached = {at: threading.Event() for at in CUT_AT}
may_go_on = {at: threading.Event() for at in CUT_AT}


def many_records(ctx, params):
    log = ctx.logger.with_source("steady")
    for i in range(1, RECORDS + 1):
        log.info(f"record {i}", i=i)
        if i in reached:
            reached[i].set()
            may_go_on[i].wait(10)  # until the test has cut the connection
        elif i % 100 == 0:
            time.sleep(0.001)
    return {"records": RECORDS}


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_cut_connection_mid_task_loses_and_repeats_nothing(server: Server):
    host, port = server.url.rsplit("//", 1)[1].split(":")
    proxy = CuttingProxy((host, int(port)))
    worker = Worker(proxy.url, token=server.worker_token, capacity=1, name="pytest-behind-proxy")
    worker.add_plugin("py_reconnect", many_records)
    try:
        with running(worker, server, ["py_reconnect"]):
            task_id = server.start_task("py_reconnect", {})
            for cuts, at in enumerate(CUT_AT):
                assert reached[at].wait(30), f"the task never reached record {at}"
                # Records are emitted while the worker reconnects: a cut made before
                # it is back would find no connection to cut.
                assert wait_until(lambda: proxy.accepted > cuts, 30), (
                    f"the worker did not reconnect after cut {cuts}"
                )
                time.sleep(0.1)  # some records in flight, some acknowledged
                proxy.cut()
                may_go_on[at].set()
            task = server.wait_final(task_id, timeout=60)
        assert task["status"] == "success", task
        assert proxy.accepted >= 3, "the worker did not reconnect after each cut"
        stored = server.logs(task_id)
        assert [r["seq"] for r in stored] == list(range(1, RECORDS + 1))
        assert [r["message"] for r in stored] == [f"record {i}" for i in range(1, RECORDS + 1)]
        assert {r["source"] for r in stored} == {"steady"}
    finally:
        proxy.close()
