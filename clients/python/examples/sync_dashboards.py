"""A Tasklens worker offering one plugin, `sync_dashboards`.

    pip install ./clients/python
    export TASKLENS_SERVER=http://127.0.0.1:8080 TASKLENS_TOKEN=tlk_…   # a worker token
    python clients/python/examples/sync_dashboards.py
    # or: cd clients/python/examples && python -m tasklens worker sync_dashboards:worker

Then start a task: tasklens run sync_dashboards -p dashboards=5 --follow
"""

import logging
import os

from tasklens import Worker

worker = Worker(os.environ.get("TASKLENS_SERVER", "http://127.0.0.1:8080"), token=os.environ.get("TASKLENS_TOKEN"), capacity=4)


@worker.plugin(
    "sync_dashboards",
    description="Copies dashboards from the BI tool (an example of the Python SDK).",
    params_schema={
        "type": "object",
        "properties": {"dashboards": {"type": "integer"}, "fail_on": {"type": "integer"}},
        "additionalProperties": False,
    },
    example_params={"dashboards": 3},
)
def sync(ctx, params):
    count = params.get("dashboards", 3)
    ctx.logger.info("starting", dashboards=count)
    api = ctx.logger.with_source("superset_api")
    synced = 0
    for dashboard_id in range(1, count + 1):
        if ctx.cancelled:  # a cancel from the console or `tasklens cancel` lands here
            return {"synced": synced}
        with ctx.belief_scope("sync_dashboard") as scope:  # DEBUG Entry … Exit
            api.info(f"GET /api/v1/dashboard/{dashboard_id} 200", dashboard_id=dashboard_id)
            if dashboard_id == params.get("fail_on"):
                raise ValueError(f"dashboard {dashboard_id} has a broken chart")
            ctx.wait(0.2)  # sleeps, but wakes at once on cancel
            scope.coherence(True)
        if dashboard_id % 2 == 0:
            api.warning("slow response", elapsed_ms=950, dashboard_id=dashboard_id)
            # Standard logging inside a task goes into the task too, source "superset_api.http".
            logging.getLogger("superset_api.http").warning("retrying dashboard %d", dashboard_id)
        synced += 1
    return {"synced": synced}  # the task's result


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    worker.run()
