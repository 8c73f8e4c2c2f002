"""Who may be a worker: a viewer token is refused on ``/ws/worker``, and a worker token
can do nothing else."""

from __future__ import annotations

import threading

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from support import Server
from tasklens import Worker, WorkerRefused


def test_a_viewer_token_is_refused_by_the_worker_endpoint(server: Server):
    viewer = server.make_token("viewer")
    with pytest.raises(InvalidStatus) as refused:
        with connect(server.ws_url("/ws/worker"), additional_headers={"Authorization": f"Bearer {viewer}"}):
            pass
    assert refused.value.response.status_code == 403

    worker = Worker(server.url, token=viewer)
    worker.add_plugin("py_viewer_refused", lambda ctx, params: None)
    failure = []
    thread = threading.Thread(target=lambda: _run(worker, failure), daemon=True)
    thread.start()
    thread.join(20)
    assert not thread.is_alive(), "Worker.run() kept retrying with a refused token"
    assert len(failure) == 1 and isinstance(failure[0], WorkerRefused), failure
    assert "403" in str(failure[0])


def test_a_worker_token_cannot_use_the_rest_api(server: Server):
    status, answer = server.request("GET", "/api/tasks", token=server.worker_token)
    assert status == 403, answer


def _run(worker: Worker, failure: list) -> None:
    try:
        worker.run()
    except BaseException as e:  # noqa: BLE001
        failure.append(e)
