"""Tasklens workers in Python: run tasks of your own plugins with per-task logs.

::

    from tasklens import Worker

    worker = Worker("http://127.0.0.1:8080", token="tlk_…", capacity=4)

    @worker.plugin("sync_dashboards", description="Copies dashboards from the BI tool.")
    def sync(ctx, params):
        ctx.logger.info("starting", dashboard_id=7)
        return {"synced": 3}

    worker.run()

See docs/python.md; the wire protocol is :mod:`tasklens.protocol`.
"""

from .connection import WorkerRefused
from .context import TaskCancelled, TaskContext
from .logger import BeliefScope, Group, TaskLogger
from .protocol import Level, LogSettings, PluginSpec, ProtocolError
from .worker import Worker

__version__ = "0.1.0"

__all__ = [
    "Worker",
    "WorkerRefused",
    "TaskContext",
    "TaskCancelled",
    "TaskLogger",
    "BeliefScope",
    "Group",
    "Level",
    "LogSettings",
    "PluginSpec",
    "ProtocolError",
]
