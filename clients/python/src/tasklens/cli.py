"""``python -m tasklens worker module:attr [--server URL] [--token T]``.

Imports ``module`` (the current directory is on the path, as for ``python -m``),
takes its ``attr`` (``worker`` when omitted), a :class:`~tasklens.Worker`, and runs
it until SIGINT or SIGTERM. ``--server`` and ``--token`` default to
``TASKLENS_SERVER`` and ``TASKLENS_TOKEN``, and when given (either way) replace what
the module set. The worker's own log goes to stderr.

Exit codes: 0 stopped by a signal; 2 bad arguments or a module without a worker;
3 the server refused the worker (token or hello).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import List, Optional

from .connection import WorkerRefused
from .worker import Worker


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        worker = load_worker(args.target)
    except (ImportError, AttributeError, TypeError, ValueError) as e:
        print(f"tasklens worker: {e}", file=sys.stderr)
        return 2
    if args.server:
        worker.server = args.server
    if args.token:
        worker.token = args.token
    if args.name:
        worker.name = args.name
    if args.capacity is not None:
        worker.capacity = args.capacity
    try:
        worker.run()
    except WorkerRefused as e:
        print(f"tasklens worker: {e}", file=sys.stderr)
        return 3
    except ValueError as e:
        print(f"tasklens worker: {e}", file=sys.stderr)
        return 2
    return 0


def load_worker(target: str) -> Worker:
    """``package.module:attr`` (``attr`` defaults to ``worker``) → that Worker."""
    module_name, _, attr = target.partition(":")
    if not module_name:
        raise ValueError(f"{target!r} is not module:attr")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    obj = module
    for part in (attr or "worker").split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, Worker):
        raise TypeError(f"{target} is a {type(obj).__name__}, not a tasklens.Worker")
    return obj


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tasklens", description="Tasklens workers in Python.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("worker", help="run the Worker object named module:attr")
    run.add_argument("target", metavar="module:attr", help="e.g. myjobs:worker")
    run.add_argument("--server", default=os.environ.get("TASKLENS_SERVER"), help="http(s)://host:port (TASKLENS_SERVER)")
    run.add_argument("--token", default=os.environ.get("TASKLENS_TOKEN"), help="a worker token (TASKLENS_TOKEN)")
    run.add_argument("--name", help="the worker's name shown to humans (default: its id)")
    run.add_argument("--capacity", type=int, help="tasks run at once (default: what the module set)")
    run.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="level of the worker's own log on stderr (default: info)",
    )
    return parser
