"""A task's records: the level gate before numbering, batching, acks, resume, backpressure."""

import json
import threading
import time

from tasklens.protocol import Level, LogSettings
from tasklens.records import ByteBudget, TaskLog

INFO = LogSettings(task_log_level=Level.INFO)
DEBUG = LogSettings(task_log_level=Level.DEBUG)


def new_log(settings=INFO, limit=1 << 30, **kw):
    budget = ByteBudget(limit)
    return TaskLog("t", settings, budget, **kw), budget


def drain(log, max_records=1000, max_bytes=1 << 20, room=1 << 30):
    out = []
    while True:
        batch = log.take_batch(max_records, max_bytes, room)
        if batch is None:
            return out
        out.append(batch)


def test_records_below_the_gate_are_dropped_before_numbering():
    log, _ = new_log()
    seqs = [log.emit(level, "plugin", f"m{i}") for i, level in enumerate(["DEBUG", "INFO", "DEBUG", "ERROR"])]
    assert seqs == [None, 1, None, 2]
    log.settings = DEBUG
    assert log.emit("DEBUG", "plugin", "now kept") == 3
    entries = [json.loads(e) for b in drain(log) for e in b.entries]
    assert [(e["seq"], e["level"], e["message"]) for e in entries] == [
        (1, "INFO", "m1"),
        (2, "ERROR", "m3"),
        (3, "DEBUG", "now kept"),
    ]


def test_a_records_size_is_the_bytes_it_travels_as():
    log, budget = new_log()
    log.emit("INFO", "api", "héllo \"quoted\"", {"k": "ü" * 3, "n": 1})
    for i in range(120):
        log.emit("INFO", "plugin", "x")
    batches = drain(log)
    sizes = sum(len(e.encode()) for b in batches for e in b.entries)
    assert sum(b.size for b in batches) == sizes == budget.used


def test_batches_respect_record_and_byte_limits_and_keep_order():
    log, _ = new_log()
    for i in range(2500):
        log.emit("INFO", "plugin", "record %d" % i)
    batches = drain(log, max_records=1000)
    assert [len(b.entries) for b in batches] == [1000, 1000, 500]
    assert [(b.first_seq, b.last_seq) for b in batches] == [(1, 1000), (1001, 2000), (2001, 2500)]
    for i in range(100):
        log.emit("INFO", "plugin", "y" * 1000)
    small = drain(log, max_bytes=10_000)
    assert all(b.size <= 10_000 for b in small) and sum(len(b.entries) for b in small) == 100


def test_room_on_the_connection_limits_a_batch_but_one_record_always_goes_when_nothing_is_in_flight():
    log, _ = new_log()
    log.emit("INFO", "plugin", "z" * 500)
    assert log.take_batch(10, 1 << 20, room=100) is None
    batch = log.take_batch(10, 1 << 20, room=100, at_least_one=True)
    assert batch is not None and len(batch.entries) == 1


def test_acks_free_the_budget_and_resume_resends_only_what_is_not_durable():
    log, budget = new_log()
    for i in range(10):
        log.emit("INFO", "plugin", f"r{i + 1}")
    drain(log, max_records=4)  # all ten sent
    log.ack(4)
    assert log.acked_seq == 4 and log.held == 6
    used = budget.used
    # The connection drops; the server says 6 are durable and it has up to 8.
    log.rewind(6)
    assert budget.used < used and log.held == 4
    resent = [json.loads(e)["seq"] for b in drain(log) for e in b.entries]
    assert resent == [7, 8, 9, 10]
    log.ack(10)
    assert budget.used == 0 and log.held == 0 and not log.has_pending


def test_an_ack_may_cover_records_not_yet_resent():
    log, budget = new_log()
    for i in range(5):
        log.emit("INFO", "plugin", "r")
    drain(log)
    log.rewind(2)  # all of 3..5 pending again
    log.ack(4)  # the server already had them before the drop
    assert [json.loads(e)["seq"] for b in drain(log) for e in b.entries] == [5]


def test_a_full_budget_blocks_the_emitting_thread_until_an_ack():
    log, budget = new_log(limit=2_000)
    while budget.used < 1_500:
        log.emit("INFO", "plugin", "x" * 100)
    drain(log)
    emitted = threading.Event()

    def emit_more():
        log.emit("INFO", "plugin", "y" * 600)
        emitted.set()

    thread = threading.Thread(target=emit_more)
    thread.start()
    assert not emitted.wait(0.2)
    log.ack(log.last_seq)
    assert emitted.wait(2)
    thread.join()


def test_a_blocked_emitter_gives_up_when_the_task_is_discarded():
    log, budget = new_log(limit=1_000)
    log.emit("INFO", "plugin", "x" * 900)
    result = []
    thread = threading.Thread(target=lambda: result.append(log.emit("INFO", "plugin", "y" * 900)))
    thread.start()
    time.sleep(0.05)
    log.discard()
    thread.join(2)
    assert result == [None] and budget.used == 0


def test_emitting_never_blocks_where_blocking_is_not_allowed():
    log, budget = new_log(limit=100, may_block=lambda: False)
    assert log.emit("INFO", "plugin", "x" * 200) == 1
    assert log.emit("INFO", "plugin", "x" * 200) == 2
    assert budget.used > budget.limit


def test_a_closed_log_refuses_records_and_keeps_those_held():
    log, _ = new_log()
    log.emit("INFO", "plugin", "before")
    log.close()
    assert log.emit("ERROR", "plugin", "after") is None
    assert [json.loads(e)["message"] for b in drain(log) for e in b.entries] == ["before"]


def test_seqs_stay_contiguous_across_threads():
    log, _ = new_log()

    def emit(n):
        for i in range(n):
            log.emit("INFO", "plugin", "m")

    threads = [threading.Thread(target=emit, args=(500,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seqs = [json.loads(e)["seq"] for b in drain(log) for e in b.entries]
    assert seqs == list(range(1, 2001))


def test_ready_is_signalled_on_the_first_pending_record_and_on_a_full_batch():
    calls = []
    log, _ = new_log(on_ready=calls.append, batch_records=3)
    for i in range(4):
        log.emit("INFO", "plugin", "m")
    assert calls == [False, True]
    drain(log)
    log.emit("INFO", "plugin", "m")
    assert calls == [False, True, False]


def test_group_marks_pass_the_level_gate_and_nothing_else_does():
    log, _ = new_log(LogSettings(task_log_level=Level.ERROR))
    seqs = [
        log.emit("INFO", "plugin", "::group::build"),
        log.emit("INFO", "plugin", "compiling"),
        log.emit("INFO", "plugin", "  ::group::not a mark"),
        log.emit("INFO", "plugin", "::endgroup::  "),
    ]
    assert seqs == [1, None, None, 2]
