"""Workers as separate processes (``python -m tasklens worker``): killed mid-task,
and two sharing the tasks of one plugin."""

from __future__ import annotations

import re
import textwrap
import time
from pathlib import Path

import pytest

from support import Server, WorkerProcess, eventually

MODULE = textwrap.dedent(
    """
    import os
    import time

    from tasklens import Worker

    worker = Worker(capacity=int(os.environ.get("CAPACITY", "1")))


    @worker.plugin("py_until_killed", description="logs steadily, reporting what the server acknowledged")
    def until_killed(ctx, params):
        reported = 0
        for i in range(1, 10_000_000):
            ctx.logger.info(f"record {i}")
            if i % 20 == 0:
                time.sleep(0.01)
                if ctx.acked_seq > reported:
                    reported = ctx.acked_seq
                    print(f"acked {reported}", flush=True)
            if ctx.cancelled:
                return None


    @worker.plugin("py_shared", description="sleeps a little, says which process ran it")
    def shared(ctx, params):
        ctx.logger.info("running", pid=os.getpid())
        ctx.wait(0.3)
        return {"pid": os.getpid()}
    """
)


@pytest.fixture
def module_dir(tmp_path: Path) -> Path:
    (tmp_path / "py_test_workers.py").write_text(MODULE)
    return tmp_path


def test_a_killed_worker_leaves_its_acknowledged_records_and_an_interrupted_task(server: Server, module_dir: Path):
    proc = WorkerProcess(module_dir, "py_test_workers:worker", server)
    try:
        proc.wait_connected()
        task_id = server.start_task("py_until_killed", {})

        def acked() -> int:
            seqs = [int(m.group(1)) for m in map(re.compile(r"acked (\d+)").fullmatch, list(proc.stdout)) if m]
            return max(seqs, default=0)

        eventually(lambda: acked() >= 300, 30, "300 acknowledged records")
        proc.proc.kill()
        proc.proc.wait()
        killed = time.monotonic()
        last_acked = acked()
        assert server.task(task_id)["status"] == "running"  # the grace period has begun

        task = server.wait_final(task_id, timeout=30)
        assert task["status"] == "interrupted", task
        assert time.monotonic() - killed >= 2.0, "interrupted before the grace period (3 s) was over"
    finally:
        proc.stop()
    stored = server.logs(task_id)
    assert [r["seq"] for r in stored] == list(range(1, len(stored) + 1))
    plugin = [r for r in stored if r["source"] == "plugin"]
    system = [r for r in stored if r["source"] == "system"]
    assert [r["message"] for r in plugin] == [f"record {i}" for i in range(1, len(plugin) + 1)]
    assert len(plugin) >= last_acked
    assert system and system[-1]["seq"] == len(stored), "no system record says why the task was interrupted"
    assert system[-1]["message"]


def test_two_worker_processes_share_the_tasks_of_one_plugin(server: Server, module_dir: Path):
    procs = [WorkerProcess(module_dir, "py_test_workers:worker", server, {"CAPACITY": "2"}) for _ in range(2)]
    try:
        for proc in procs:
            proc.wait_connected()
        task_ids = [server.start_task("py_shared", {}) for _ in range(10)]
        tasks = [server.wait_final(task_id, timeout=60) for task_id in task_ids]
    finally:
        for proc in procs:
            proc.stop()
    assert [t["status"] for t in tasks] == ["success"] * 10, tasks
    pids = {t["result"]["pid"] for t in tasks}
    assert pids == {p.proc.pid for p in procs}, "each worker process should have run some of the tasks"
