//! Every storage query against a real SQLite file and, when configured, a real
//! PostgreSQL database (see `testkit::backends`).

use std::sync::Arc;

use protocol::entry::encode_metadata;
use protocol::{
    Body, FilterSpec, LogEntry, LogFilter, LogLevel, LogSettings, Role, TaskId, TaskInfo,
    TaskStatus, Timestamp,
};
use storage::logs::{
    insert_log_batches, matching_runs, matching_seqs, page_logs, source_counts, SeqRuns,
};
use storage::nodes;
use storage::tasks::{self, TaskListQuery, TaskOutcome};
use storage::{DatabaseSettings, Db, LogBatchRef, LogQuery};
use testkit::{backends, FreshDb};

fn open(fresh: &FreshDb) -> Db {
    Db::connect(&DatabaseSettings::new(fresh.url.clone())).expect("database opens and migrates")
}

fn new_task(created_at: i64) -> TaskInfo {
    TaskInfo {
        id: TaskId(uuid::Uuid::new_v4()),
        plugin: "synthetic".into(),
        params: serde_json::json!({"count": 10}),
        status: TaskStatus::Queued,
        created_at: Timestamp(created_at),
        started_at: None,
        finished_at: None,
        result: None,
        error: None,
        created_by: Some("tester".into()),
        params_omitted: false,
        node: None,
        priority: 0,
    }
}

/// Records shaped like the synthetic plugin's, plus a few awkward messages.
fn records(count: u64) -> Vec<LogEntry> {
    let sources = ["plugin", "superset_api", "system"];
    (0..count)
        .map(|i| {
            let message = match i % 7 {
                3 => format!("Timeout after {i} ms: 50%_done \\ path"),
                5 => format!("ünïcode ÄÖ record {i}"),
                _ => format!("synthetic record {i}"),
            };
            LogEntry {
                seq: i + 1,
                timestamp: Timestamp(1_700_000_000_000_000 + i as i64 * 1000),
                level: LogLevel::ALL[(i % 4) as usize],
                source: Arc::from(sources[(i % 3) as usize]),
                body: Body::new(
                    message,
                    encode_metadata(serde_json::json!({"i": i, "dashboard_id": i % 10, "db": format!("db-{}", i % 2)}))
                        .as_deref()
                        .filter(|_| i % 11 != 10),
                ),
                group: None,
                mark: None,
                worst: None,
            }
        })
        .collect()
}

/// [`records`] with lines of 60 KiB.
fn long_records(count: u64) -> Vec<LogEntry> {
    let mut entries = records(count);
    for e in &mut entries {
        let metadata = e.metadata().map(str::to_owned);
        e.body =
            Body::with_metadata_text(format!("{:0>61440}", e.seq), metadata.as_deref()).unwrap();
    }
    entries
}

fn store(db: &Db, task: TaskId, entries: &[LogEntry]) {
    for chunk in entries.chunks(333) {
        assert_eq!(store_batch(db, task, chunk), chunk.len());
    }
}

/// Stores one batch; how many rows were new.
fn store_batch(db: &Db, task: TaskId, entries: &[LogEntry]) -> usize {
    db.run_blocking(|c| {
        insert_log_batches(
            c,
            &[LogBatchRef {
                task_id: task,
                entries,
            }],
        )
    })
    .unwrap()
}

/// A fresh database of `backend` with one task stored.
fn database_with_a_task(backend: &'static str) -> (FreshDb, Db, TaskInfo) {
    let fresh = FreshDb::new(backend);
    let db = open(&fresh);
    let task = new_task(1);
    db.run_blocking(|c| tasks::insert_task(c, &task, None))
        .unwrap();
    (fresh, db, task)
}

fn collect_forward(db: &Db, task: TaskId, filter: &LogFilter, limit: usize) -> Vec<LogEntry> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = db
            .run_blocking(|c| {
                page_logs(
                    c,
                    task,
                    filter,
                    &LogQuery {
                        after_seq: after,
                        before_seq: None,
                        limit,
                    },
                )
            })
            .unwrap();
        assert!(page.logs.len() <= limit);
        assert!(
            page.logs.iter().all(|e| e.seq > after),
            "page went backwards"
        );
        out.extend(page.logs);
        if !page.has_more {
            return out;
        }
        assert!(page.next_after_seq > after, "paging must advance");
        after = page.next_after_seq;
    }
}

fn collect_backward(db: &Db, task: TaskId, filter: &LogFilter, limit: usize) -> Vec<LogEntry> {
    let mut out = Vec::new();
    let mut before = u64::MAX >> 1;
    loop {
        let page = db
            .run_blocking(|c| {
                page_logs(
                    c,
                    task,
                    filter,
                    &LogQuery {
                        after_seq: 0,
                        before_seq: Some(before),
                        limit,
                    },
                )
            })
            .unwrap();
        assert!(
            page.logs.windows(2).all(|w| w[0].seq < w[1].seq),
            "pages are oldest first"
        );
        let mut logs = page.logs;
        logs.reverse();
        out.extend(logs);
        if !page.has_more {
            out.reverse();
            return out;
        }
        before = page
            .next_before_seq
            .expect("backward pages say where to continue");
    }
}

fn spec(json: serde_json::Value) -> LogFilter {
    LogFilter::parse(&serde_json::from_value::<FilterSpec>(json).unwrap()).unwrap()
}

/// Metadata holding a NUL (`\u0000` in its JSON text; PostgreSQL refuses NUL in
/// text) is stored as it is, the indexes pass over it without stalling, and filters
/// find it: on its other members through the index, on the NUL value on the rows.
#[test]
fn metadata_with_a_nul_is_stored_indexed_past_and_found() {
    for backend in backends() {
        let (_fresh, db, task) = database_with_a_task(backend);
        let entries: Vec<LogEntry> = (1..=40u64)
            .map(|seq| LogEntry {
                seq,
                timestamp: Timestamp(seq as i64),
                level: LogLevel::Info,
                source: Arc::from("api"),
                body: Body::emitted(
                    format_args!("record {seq}"),
                    Some(&match seq % 4 {
                        0 => serde_json::json!({"k": "a\u{0}b", "n": seq % 2}),
                        1 => {
                            serde_json::json!({"k\u{0}x": "v", "n": seq % 2, "m": {"k": "a\u{0}"}})
                        }
                        _ => serde_json::json!({"k": "ab", "n": seq % 2}),
                    }),
                ),
                group: None,
                mark: None,
                worst: None,
            })
            .collect();
        store(&db, task.id, &entries);
        let stored = collect_forward(&db, task.id, &LogFilter::default(), 1000);
        assert_eq!(stored, entries, "{backend}");
        index_pending(&db, usize::MAX);
        assert_eq!(
            db.run_blocking(storage::text_index::backlog).unwrap(),
            0,
            "{backend}: the indexer stopped at a NUL"
        );
        for json in [
            serde_json::json!({"meta": {"k": "a\u{0}b"}}),
            serde_json::json!({"meta": {"m.k": "a\u{0}"}}),
            serde_json::json!({"meta": {"n": "1"}}),
            serde_json::json!({"meta": {"k": "ab", "n": "0"}}),
            serde_json::json!({"q": "record 1", "meta": {"n": "1"}}),
        ] {
            let filter = spec(json.clone());
            let expected: Vec<&LogEntry> = entries.iter().filter(|e| filter.matches(e)).collect();
            assert!(!expected.is_empty(), "{json}");
            for limit in [3, 1000] {
                let got = collect_forward(&db, task.id, &filter, limit);
                assert_eq!(
                    got.iter().collect::<Vec<_>>(),
                    expected,
                    "{backend} {json} limit {limit}"
                );
            }
        }
    }
}

#[test]
fn filtered_pages_hold_exactly_the_matching_records() {
    for backend in backends() {
        let fresh = FreshDb::new(backend);
        let db = open(&fresh);
        let task = new_task(1);
        let other = new_task(2);
        db.run_blocking(|c| tasks::insert_task(c, &task, None))
            .unwrap();
        db.run_blocking(|c| tasks::insert_task(c, &other, None))
            .unwrap();
        let all = records(2000);
        store(&db, task.id, &all);
        // Another task with the same seqs must never leak into the first one's pages.
        store(&db, other.id, &records(500));

        let filters = [
            serde_json::json!({}),
            serde_json::json!({"level": "INFO"}),
            serde_json::json!({"level": "WARNING"}),
            serde_json::json!({"level": "error"}),
            serde_json::json!({"sources": ["superset_api"]}),
            serde_json::json!({"sources": ["plugin", "system"]}),
            serde_json::json!({"level": "WARNING", "sources": ["superset_api"]}),
            serde_json::json!({"q": "TIMEOUT"}),
            serde_json::json!({"q": "50%_done \\"}),
            serde_json::json!({"q": "record 1"}),
            serde_json::json!({"q": "äö"}),
            serde_json::json!({"re": "record \\d*7$"}),
            serde_json::json!({"meta": {"dashboard_id": "5"}}),
            serde_json::json!({"meta": {"dashboard_id": 5, "db": "db-1"}}),
            serde_json::json!({"meta": {"db": "db-0"}, "level": "ERROR", "sources": ["system"]}),
            serde_json::json!({"meta": {"i": "1999"}}),
            serde_json::json!({"meta": {"missing": "x"}}),
            serde_json::json!({"since": "2023-11-14T22:13:20.500000Z", "until": "2023-11-14T22:13:21Z"}),
            serde_json::json!({"q": "record", "re": "^synthetic", "level": "INFO", "sources": ["system"], "meta": {"dashboard_id": "2"}}),
            // PostgreSQL refuses a NUL in a text parameter; no stored text holds one.
            serde_json::json!({"q": "record\u{0} 1"}),
            serde_json::json!({"q": "\u{0}"}),
            serde_json::json!({"re": "\u{0}a"}),
            serde_json::json!({"re": "rec\u{0}ord"}),
            serde_json::json!({"meta": {"db": "db\u{0}0"}}),
        ];
        for json in filters {
            let filter = spec(json.clone());
            let expected: Vec<&LogEntry> = all.iter().filter(|e| filter.matches(e)).collect();
            for limit in [7, 1000] {
                let got = collect_forward(&db, task.id, &filter, limit);
                assert_eq!(
                    got.iter().collect::<Vec<_>>(),
                    expected,
                    "{backend} forward {json} limit {limit}"
                );
            }
            let got = collect_backward(&db, task.id, &filter, 13);
            assert_eq!(
                got.iter().collect::<Vec<_>>(),
                expected,
                "{backend} backward {json}"
            );
            let seqs = db
                .run_blocking(|c| matching_seqs(c, task.id, &filter, usize::MAX))
                .unwrap();
            let want: Vec<u64> = expected.iter().map(|e| e.seq).collect();
            assert_eq!(seqs, want, "{backend} index {json}");
            let runs = db
                .run_blocking(|c| matching_runs(c, task.id, &filter, usize::MAX))
                .unwrap();
            assert_eq!(
                runs.seqs().collect::<Vec<_>>(),
                want,
                "{backend} runs {json}"
            );
            assert_eq!(runs.count, want.len() as u64);
            assert_eq!(runs, SeqRuns::from_seqs(&want), "{backend} runs {json}");
            // A bounded index reads one past its bound and no further.
            if want.len() > 3 {
                let capped = db
                    .run_blocking(|c| matching_seqs(c, task.id, &filter, 3))
                    .unwrap();
                assert_eq!(capped, want[..4], "{backend} capped index {json}");
            }
        }
        // Sanity: the filters above are not all trivially empty or full.
        assert_eq!(
            collect_forward(
                &db,
                task.id,
                &spec(serde_json::json!({"level": "ERROR"})),
                1000
            )
            .len(),
            500
        );
    }
}

/// Pages are bounded in bytes as well as rows: 10,000 lines of 60 KiB come back in
/// pages of about MAX_PAGE_BYTES, forwards and backwards, and together they are all
/// the lines, in order, each once.
#[test]
fn pages_of_long_lines_are_bounded_in_bytes() {
    for backend in backends() {
        let fresh = FreshDb::new(backend);
        let db = open(&fresh);
        let task = new_task(1);
        db.run_blocking(|c| tasks::insert_task(c, &task, None))
            .unwrap();
        store(&db, task.id, &long_records(400));
        let all = LogFilter::default();
        let first = db
            .run_blocking(|c| {
                page_logs(
                    c,
                    task.id,
                    &all,
                    &LogQuery {
                        after_seq: 0,
                        before_seq: None,
                        limit: 10_000,
                    },
                )
            })
            .unwrap();
        let bytes: usize = first.logs.iter().map(|e| e.message().len()).sum();
        assert!(first.has_more, "{backend}");
        assert!(
            first.logs.len() < 400,
            "{backend}: {} lines",
            first.logs.len()
        );
        assert!(
            (storage::logs::MAX_PAGE_BYTES..storage::logs::MAX_PAGE_BYTES + 2 * 65_536)
                .contains(&bytes),
            "{backend}: {bytes} bytes"
        );
        let seqs = |v: &[LogEntry]| v.iter().map(|e| e.seq).collect::<Vec<_>>();
        let want: Vec<u64> = (1..=400).collect();
        assert_eq!(
            seqs(&collect_forward(&db, task.id, &all, 10_000)),
            want,
            "{backend}"
        );
        assert_eq!(
            seqs(&collect_backward(&db, task.id, &all, 10_000)),
            want,
            "{backend}"
        );
        let errors = spec(serde_json::json!({"level": "ERROR"}));
        assert_eq!(
            seqs(&collect_forward(&db, task.id, &errors, 10_000)),
            want.iter()
                .copied()
                .filter(|s| s % 4 == 0)
                .collect::<Vec<_>>(),
            "{backend}"
        );
    }
}

#[test]
fn a_retried_batch_is_stored_once_and_counts_stay_exact() {
    for backend in backends() {
        let fresh = FreshDb::new(backend);
        let db = open(&fresh);
        let task = new_task(1);
        db.run_blocking(|c| tasks::insert_task(c, &task, None))
            .unwrap();
        let all = records(100);
        store(&db, task.id, &all[..60]);
        // The retry carries rows 41..100: 41..60 are already there.
        let n = db
            .run_blocking(|c| {
                insert_log_batches(
                    c,
                    &[LogBatchRef {
                        task_id: task.id,
                        entries: &all[40..],
                    }],
                )
            })
            .unwrap();
        assert_eq!(n, 40, "{backend}");
        let got = collect_forward(&db, task.id, &LogFilter::default(), 1000);
        assert_eq!(got, all, "{backend}");
        let counts = db.run_blocking(|c| source_counts(c, task.id)).unwrap();
        assert_eq!(
            counts.iter().map(|s| s.count).sum::<u64>(),
            100,
            "{backend}"
        );
        let api = counts.iter().find(|s| s.source == "superset_api").unwrap();
        let expected_api = all.iter().filter(|e| &*e.source == "superset_api").count() as u64;
        assert_eq!(api.count, expected_api);
        let expected_api_errors = all
            .iter()
            .filter(|e| &*e.source == "superset_api" && e.level == LogLevel::Error)
            .count() as u64;
        assert_eq!(
            api.levels.get(&LogLevel::Error).copied().unwrap_or(0),
            expected_api_errors
        );
    }
}

#[test]
fn deleting_a_task_removes_its_logs_and_counts() {
    type Delete = fn(&mut storage::Conn, TaskId) -> storage::Result<bool>;
    let at_once: Delete = tasks::delete_task;
    let in_steps: Delete = |c, id| tasks::delete_task_in_steps(c, id, 64);
    for (backend, delete) in backends()
        .into_iter()
        .flat_map(|b| [(b, at_once), (b, in_steps)])
    {
        let fresh = FreshDb::new(backend);
        let db = open(&fresh);
        let (task, keep) = (new_task(1), new_task(2));
        db.run_blocking(|c| tasks::insert_task(c, &task, None))
            .unwrap();
        db.run_blocking(|c| tasks::insert_task(c, &keep, None))
            .unwrap();
        store(&db, task.id, &records(700));
        store(&db, keep.id, &records(10));
        assert!(db.run_blocking(|c| delete(c, task.id)).unwrap());
        assert!(!db.run_blocking(|c| delete(c, task.id)).unwrap());
        assert!(
            collect_forward(&db, task.id, &LogFilter::default(), 1000).is_empty(),
            "{backend}"
        );
        assert!(db
            .run_blocking(|c| source_counts(c, task.id))
            .unwrap()
            .is_empty());
        assert_eq!(
            collect_forward(&db, keep.id, &LogFilter::default(), 1000).len(),
            10
        );
    }
}

#[test]
fn task_lifecycle_and_listing() {
    for backend in backends() {
        let fresh = FreshDb::new(backend);
        let db = open(&fresh);
        let made: Vec<TaskInfo> = (0..12).map(|i| new_task(1_000 + i)).collect();
        for t in &made {
            db.run_blocking(|c| tasks::insert_task(c, t, None)).unwrap();
        }
        assert!(db
            .run_blocking(|c| tasks::mark_running(c, made[0].id, Timestamp(5)))
            .unwrap());
        assert!(!db
            .run_blocking(|c| tasks::mark_running(c, made[0].id, Timestamp(6)))
            .unwrap());
        let outcome = TaskOutcome {
            status: TaskStatus::Success,
            finished_at: Timestamp(9),
            result: Some(serde_json::json!({"records": 3})),
            error: None,
        };
        assert!(db
            .run_blocking(|c| tasks::finish_task(c, made[0].id, &outcome))
            .unwrap());
        assert!(
            !db.run_blocking(|c| tasks::finish_task(c, made[0].id, &outcome))
                .unwrap(),
            "a finished task stays finished"
        );
        let got = db
            .run_blocking(|c| tasks::get_task(c, made[0].id))
            .unwrap()
            .unwrap();
        assert_eq!(got.status, TaskStatus::Success);
        assert_eq!(got.result, Some(serde_json::json!({"records": 3})));
        assert_eq!(got.started_at, Some(Timestamp(5)));

        // Newest first, paged by keyset.
        let mut seen = Vec::new();
        let mut before = None;
        loop {
            let page = db
                .run_blocking(|c| {
                    tasks::list_tasks(
                        c,
                        &TaskListQuery {
                            before,
                            limit: 5,
                            ..TaskListQuery::default()
                        },
                    )
                })
                .unwrap();
            seen.extend(page.tasks.iter().map(|t| t.id));
            match page.next_before {
                Some(id) => before = Some(id),
                None => break,
            }
        }
        let expected: Vec<TaskId> = made.iter().rev().map(|t| t.id).collect();
        assert_eq!(seen, expected, "{backend}");
        let done = db
            .run_blocking(|c| {
                tasks::list_tasks(
                    c,
                    &TaskListQuery {
                        statuses: vec![TaskStatus::Success],
                        limit: 50,
                        ..TaskListQuery::default()
                    },
                )
            })
            .unwrap();
        assert_eq!(done.tasks.len(), 1);

        for t in &made[1..4] {
            assert!(db
                .run_blocking(|c| tasks::mark_running(c, t.id, Timestamp(7)))
                .unwrap());
        }
        // Running tasks end; queued ones wait on for the next node to claim them.
        let interrupted = db
            .run_blocking(|c| tasks::interrupt_unfinished(c, "this-node", Timestamp(99)))
            .unwrap();
        assert_eq!(interrupted, 3);
        let t = db
            .run_blocking(|c| tasks::get_task(c, made[4].id))
            .unwrap()
            .unwrap();
        assert_eq!(t.status, TaskStatus::Queued);
        let t = db
            .run_blocking(|c| tasks::get_task(c, made[3].id))
            .unwrap()
            .unwrap();
        assert_eq!(t.status, TaskStatus::Interrupted);
        assert!(t.error.unwrap().contains("stopped"));

        let old = db
            .run_blocking(|c| tasks::finished_before(c, Timestamp(50), 100))
            .unwrap();
        // Age counts from the end: only made[0] had finished (at 9) by 50.
        assert_eq!(old, vec![made[0].id]);
        let all = db
            .run_blocking(|c| tasks::finished_before(c, Timestamp(100), 100))
            .unwrap();
        assert_eq!(all.len(), 4);
        assert_eq!(all[0], made[0].id, "oldest end first");
        assert!(db
            .run_blocking(|c| tasks::get_task(c, TaskId(uuid::Uuid::new_v4())))
            .unwrap()
            .is_none());
    }
}

/// Every page of `query` (three tasks a page), newest first.
fn all_listed(db: &Db, query: &TaskListQuery) -> Vec<TaskId> {
    let mut seen = Vec::new();
    let mut query = TaskListQuery {
        limit: 3,
        ..query.clone()
    };
    loop {
        let page = db.run_blocking(|c| tasks::list_tasks(c, &query)).unwrap();
        assert!(page.tasks.len() <= 3);
        seen.extend(page.tasks.iter().map(|t| t.id));
        match page.next_before {
            Some(id) => query.before = Some(id),
            None => return seen,
        }
    }
}

#[test]
fn task_lists_filter_by_status_plugin_creator_time_and_text() {
    for backend in backends() {
        let fresh = FreshDb::new(backend);
        let db = open(&fresh);
        let plugins = ["synthetic", "shell", "etl"];
        let creators = ["ada", "bob"];
        let params = [
            serde_json::json!({"table": "Orders_2026", "note": "50%_done \\ ok"}),
            serde_json::json!({"command": "echo secret-Token", "env": {"KEY": "hunter2"}}),
            serde_json::json!({"count": 10, "label": "ünïcode ÄÖ"}),
            serde_json::json!({}),
        ];
        let made: Vec<TaskInfo> = (0..24)
            .map(|i| TaskInfo {
                plugin: plugins[i % 3].into(),
                created_by: (i % 5 != 4).then(|| creators[i % 2].to_owned()),
                params: params[i % 4].clone(),
                status: [TaskStatus::Queued, TaskStatus::Running, TaskStatus::Failed]
                    [i % 3 / 2 + i % 2],
                ..new_task(10_000 + (i as i64 / 2) * 10)
            })
            .collect();
        for t in &made {
            db.run_blocking(|c| tasks::insert_task(c, t, None)).unwrap();
        }
        let newest_first = |keep: &dyn Fn(&TaskInfo) -> bool| -> Vec<TaskId> {
            let mut kept: Vec<&TaskInfo> = made.iter().filter(|t| keep(t)).collect();
            kept.sort_by_key(|t| std::cmp::Reverse((t.created_at, *t.id.as_bytes())));
            kept.into_iter().map(|t| t.id).collect()
        };
        let text = |text: &str, sealed: &[&str]| TaskListQuery {
            text: Some(tasks::TaskText {
                text: text.to_owned(),
                sealed_plugins: sealed.iter().map(|s| s.to_string()).collect(),
            }),
            ..TaskListQuery::default()
        };
        let cases: Vec<(TaskListQuery, Vec<TaskId>)> = vec![
            (
                TaskListQuery {
                    statuses: vec![TaskStatus::Running, TaskStatus::Failed],
                    ..TaskListQuery::default()
                },
                newest_first(&|t| t.status != TaskStatus::Queued),
            ),
            (
                TaskListQuery {
                    plugins: vec!["etl".into(), "shell".into()],
                    created_by: vec!["bob".into()],
                    ..TaskListQuery::default()
                },
                newest_first(&|t| {
                    t.plugin != "synthetic" && t.created_by.as_deref() == Some("bob")
                }),
            ),
            (
                TaskListQuery {
                    created_since: Some(Timestamp(10_030)),
                    created_until: Some(Timestamp(10_070)),
                    ..TaskListQuery::default()
                },
                newest_first(&|t| (10_030..10_070).contains(&t.created_at.as_micros())),
            ),
            // Case folds; LIKE's own characters are plain text.
            (
                text("orders_2026", &[]),
                newest_first(&|t| t.params == params[0]),
            ),
            (
                text("50%_done \\\\", &[]),
                newest_first(&|t| t.params == params[0]),
            ),
            (text("0%d", &[]), vec![]),
            (
                text("ünïcode ÄÖ", &[]),
                newest_first(&|t| t.params == params[2]),
            ),
            (
                text("hunter2", &[]),
                newest_first(&|t| t.params == params[1]),
            ),
            // A sealed plugin's params are not searched (its id still is).
            (
                text("hunter2", &["shell"]),
                newest_first(&|t| t.params == params[1] && t.plugin != "shell"),
            ),
            // Params are compact JSON text.
            (
                text("\"command\":\"echo", &[]),
                newest_first(&|t| t.params == params[1]),
            ),
            (text("\"command\": \"echo", &[]), vec![]),
        ];
        for (query, expected) in &cases {
            assert!(!expected.is_empty() || query.text.is_some());
            assert_eq!(&all_listed(&db, query), expected, "{backend}: {query:?}");
        }
        // An id by its whole text, with or without dashes, or by a prefix of it.
        let target = &made[7];
        let full = target.id.to_string();
        for given in [
            full.clone(),
            full.to_uppercase(),
            full.replace('-', ""),
            full[..13].to_owned(),
        ] {
            let found = all_listed(&db, &text(&given, &["shell"]));
            assert!(found.contains(&target.id), "{backend}: {given}");
            assert!(found.iter().all(|id| id
                .to_string()
                .replace('-', "")
                .starts_with(&given.to_lowercase().replace('-', ""))
                || made.iter().any(|t| t.id == *id
                    && t.params
                        .to_string()
                        .to_lowercase()
                        .contains(&given.to_lowercase()))));
        }
        assert_eq!(all_listed(&db, &text(&full, &[])), vec![target.id]);
    }
}

#[test]
fn settings_and_tokens_round_trip() {
    for backend in backends() {
        let fresh = FreshDb::new(backend);
        let db = open(&fresh);
        assert_eq!(
            db.run_blocking(storage::settings::load_log_settings)
                .unwrap(),
            LogSettings::default()
        );
        let changed = LogSettings {
            app_log_level: LogLevel::Warning,
            task_log_level: LogLevel::Debug,
            belief_scope_enabled: false,
        };
        db.run_blocking(|c| storage::settings::save_log_settings(c, &changed))
            .unwrap();
        db.run_blocking(|c| storage::settings::save_log_settings(c, &changed))
            .unwrap();
        assert_eq!(
            db.run_blocking(storage::settings::load_log_settings)
                .unwrap(),
            changed
        );

        use storage::tokens::*;
        assert!(db
            .run_blocking(|c| insert_token(c, "ops", Role::Viewer, "secret-1", Timestamp(1)))
            .unwrap());
        assert!(!db
            .run_blocking(|c| insert_token(c, "ops", Role::Admin, "secret-2", Timestamp(1)))
            .unwrap());
        db.run_blocking(|c| upsert_token(c, "env-admin", Role::Admin, "secret-3", Timestamp(2)))
            .unwrap();
        db.run_blocking(|c| upsert_token(c, "env-admin", Role::Admin, "secret-4", Timestamp(3)))
            .unwrap();
        let all = db.run_blocking(list_tokens).unwrap();
        assert_eq!(all.len(), 2);
        let admin = all.iter().find(|t| t.name == "env-admin").unwrap();
        assert_eq!(admin.token_hash, hash_token("secret-4"));
        assert_ne!(admin.token_hash, "secret-4");
        assert!(db.run_blocking(|c| delete_token(c, "ops")).unwrap());
        assert!(!db.run_blocking(|c| delete_token(c, "ops")).unwrap());
    }
}

#[test]
fn reopening_keeps_everything_and_migrations_are_idempotent() {
    for backend in backends() {
        let fresh = FreshDb::new(backend);
        let task = new_task(1);
        {
            let db = open(&fresh);
            db.run_blocking(|c| tasks::insert_task(c, &task, None))
                .unwrap();
            store(&db, task.id, &records(50));
        }
        let db = open(&fresh);
        assert_eq!(
            collect_forward(&db, task.id, &LogFilter::default(), 1000),
            records(50),
            "{backend}"
        );
    }
}

#[test]
fn nodes_starting_together_on_an_empty_postgresql_database_migrate_it_once() {
    if !backends().contains(&"postgres") {
        eprintln!("skipped: no PostgreSQL for tests");
        return;
    }
    let fresh = FreshDb::new("postgres");
    let barrier = Arc::new(std::sync::Barrier::new(4));
    let nodes: Vec<_> = (0..4)
        .map(|_| {
            let (url, barrier) = (fresh.url.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                Db::connect(&DatabaseSettings::new(url)).map(|_| ())
            })
        })
        .collect();
    for node in nodes {
        node.join().unwrap().expect("every node starts");
    }
    let db = open(&fresh);
    let task = new_task(1);
    db.run_blocking(|c| tasks::insert_task(c, &task, None))
        .unwrap();
    store(&db, task.id, &records(10));
    assert_eq!(
        collect_forward(&db, task.id, &LogFilter::default(), 100),
        records(10)
    );
}

#[test]
fn a_dead_nodes_tasks_are_interrupted_by_a_survivor_and_nobody_elses() {
    const SECOND: i64 = 1_000_000;
    for backend in backends() {
        let fresh = FreshDb::new(backend);
        let db = open(&fresh);
        let start = Timestamp(1_000 * SECOND);
        for node in ["a", "b"] {
            db.run_blocking(|c| nodes::register(c, node, "all", start))
                .unwrap();
        }
        let running = |status| TaskInfo {
            status,
            ..new_task(1)
        };
        let (of_a, of_b, done_of_a, legacy) = (
            running(TaskStatus::Running),
            running(TaskStatus::Running),
            running(TaskStatus::Success),
            running(TaskStatus::Running),
        );
        let claimed_by_a = new_task(1);
        for (task, node) in [
            (&claimed_by_a, Some("a")),
            (&of_a, Some("a")),
            (&of_b, Some("b")),
            (&done_of_a, Some("a")),
            (&legacy, None),
        ] {
            db.run_blocking(|c| tasks::insert_task(c, task, node))
                .unwrap();
        }
        store(&db, of_a.id, &records(3));
        // b goes on beating; a stopped at the start.
        let now = Timestamp(start.as_micros() + 20 * SECOND);
        db.run_blocking(|c| nodes::heartbeat(c, "b", now, 1))
            .unwrap();
        let reaped = db
            .run_blocking(|c| nodes::reap_dead(c, "b", now, 15 * SECOND))
            .unwrap();
        assert_eq!(
            reaped,
            [nodes::Reaped {
                node: "a".into(),
                task: of_a.id
            }],
            "{backend}"
        );
        let task = |id| {
            db.run_blocking(|c| tasks::get_task(c, id))
                .unwrap()
                .unwrap()
        };
        let ended = task(of_a.id);
        assert_eq!(ended.status, TaskStatus::Interrupted, "{backend}");
        assert!(
            ended
                .error
                .as_deref()
                .unwrap()
                .contains("node a stopped answering (no heartbeat for 20 s)"),
            "{backend}: {ended:?}"
        );
        let stored = collect_forward(&db, of_a.id, &LogFilter::default(), 100);
        assert_eq!(stored.len(), 4, "{backend}");
        let last = stored.last().unwrap();
        assert_eq!(
            (last.seq, last.level, &*last.source),
            (4, LogLevel::Error, "system"),
            "{backend}"
        );
        assert_eq!(task(of_b.id).status, TaskStatus::Running, "{backend}");
        assert_eq!(task(done_of_a.id).status, TaskStatus::Success, "{backend}");
        assert_eq!(task(legacy.id).status, TaskStatus::Running, "{backend}");
        assert_eq!(
            db.run_blocking(|c| storage::queue::whereabouts(c, claimed_by_a.id))
                .unwrap(),
            storage::queue::Whereabouts::Unclaimed,
            "{backend}: what a claimed and never started is back in the queue"
        );
        // Once is enough.
        let again = db
            .run_blocking(|c| nodes::reap_dead(c, "b", now, 15 * SECOND))
            .unwrap();
        assert!(again.is_empty(), "{backend}");
        let listed = db
            .run_blocking(|c| nodes::list(c, now, 15 * SECOND))
            .unwrap();
        let alive: Vec<(&str, bool)> = listed.iter().map(|n| (n.id.as_str(), n.alive)).collect();
        assert_eq!(alive, [("b", true), ("a", false)], "{backend}");
        // b restarting resolves its own task and those of no node, not a's.
        let resolved = db
            .run_blocking(|c| tasks::interrupt_unfinished(c, "b", now))
            .unwrap();
        assert_eq!(resolved, 2, "{backend}");
        assert_eq!(task(legacy.id).status, TaskStatus::Interrupted, "{backend}");
    }
}

/// Records made to trip SQL narrowing: LIKE wildcards and escapes, mixed case and
/// non-ASCII letters in messages, metadata of several JSON types and nesting.
fn awkward_records(count: u64) -> Vec<LogEntry> {
    let words = [
        "a%b", "A_b", "x\\y", "Äpfel", "äpfel", "ab", "AB", "b", "50%", "_", "[x]", "'q'", "\"d\"",
    ];
    let sources = ["api", "API", "db", "plugin"];
    (0..count)
        .map(|i| {
            let w = |k: u64| words[((i * 7 + k * 3) % words.len() as u64) as usize];
            LogEntry {
                seq: i + 1,
                timestamp: Timestamp(1_000 + i as i64 * 10),
                level: LogLevel::ALL[(i % 4) as usize],
                source: Arc::from(sources[(i % 4) as usize]),
                body: Body::new(
                    format!("{} {} {}", w(0), w(1), i % 13),
                    match i % 5 {
                        0 => None,
                        1 => encode_metadata(serde_json::json!({"k": w(2), "n": i % 3})),
                        2 => encode_metadata(
                            serde_json::json!({"n": (i % 3).to_string(), "b": i % 2 == 0}),
                        ),
                        3 => encode_metadata(serde_json::json!({"x": {"y": w(3)}, "k": null})),
                        _ => encode_metadata(serde_json::json!({"k": i % 3, "x.y": "1"})),
                    }
                    .as_deref(),
                ),
                group: None,
                mark: None,
                worst: None,
            }
        })
        .collect()
}

fn filter_specs() -> impl proptest::strategy::Strategy<Value = FilterSpec> {
    use proptest::prelude::*;
    let text = prop::sample::select(vec![
        "a", "A", "%", "_", "\\", "ä", "Ä", "pf", "b ", " 1", "a%b", "x\\y", "[x", "'", "\"", "50%",
    ]);
    let pattern = prop::sample::select(vec![
        "^a",
        "b$",
        "[0-9]{2}",
        "(?i)äpfel",
        "%",
        "_b",
        "\\\\",
        "x|y",
    ]);
    let meta_key = prop::sample::select(vec!["k", "n", "b", "x.y", "x", "missing"]);
    let meta_value = prop::sample::select(vec![
        "a%b", "0", "1", "2", "true", "false", "ab", "", "null",
    ]);
    (
        prop::option::of(prop::sample::select(LogLevel::ALL.to_vec())),
        prop::sample::subsequence(vec!["api", "API", "db", "plugin", "none"], 0..3),
        prop::option::of(text),
        prop::option::of(pattern),
        prop::collection::btree_map(meta_key, meta_value, 0..3),
        prop::option::of(0i64..8_000),
        prop::option::of(0i64..8_000),
    )
        .prop_map(|(level, sources, q, re, meta, since, until)| FilterSpec {
            level,
            sources: sources.into_iter().map(str::to_owned).collect(),
            q: q.map(str::to_owned),
            re: re.map(str::to_owned),
            meta: meta
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            since: since.map(Timestamp),
            until: until.map(Timestamp),
        })
}

/// A filter's forward pages, backward pages and seq index, each as the seqs read.
fn every_read(db: &Db, task: TaskId, filter: &LogFilter) -> [Vec<u64>; 3] {
    let seqs = |page: Vec<LogEntry>| page.iter().map(|e| e.seq).collect::<Vec<_>>();
    [
        seqs(collect_forward(db, task, filter, 97)),
        seqs(collect_backward(db, task, filter, 89)),
        db.run_blocking(|c| matching_seqs(c, task, filter, 10_000))
            .unwrap(),
    ]
}

/// Each level alone and with the conditions that change how it is read (sources, a
/// time range, text, a regex with no literal), which random specs seldom leave alone.
fn level_specs() -> Vec<FilterSpec> {
    LogLevel::ALL
        .into_iter()
        .flat_map(|level| {
            let alone = FilterSpec {
                level: Some(level),
                ..FilterSpec::default()
            };
            [
                FilterSpec {
                    sources: vec!["db".into(), "api".into()],
                    ..alone.clone()
                },
                FilterSpec {
                    since: Some(Timestamp(2_000)),
                    until: Some(Timestamp(6_000)),
                    ..alone.clone()
                },
                FilterSpec {
                    sources: vec!["plugin".into()],
                    since: Some(Timestamp(3_000)),
                    ..alone.clone()
                },
                FilterSpec {
                    q: Some("a".into()),
                    ..alone.clone()
                },
                FilterSpec {
                    re: Some("[0-9]{2}".into()),
                    ..alone.clone()
                },
                alone,
            ]
        })
        .collect()
}

/// Level filters read through the index of WARNING and ERROR records when those
/// are few (here one record in twenty), alone or with other conditions, and return
/// exactly what `LogFilter::matches` selects, nothing of another task.
#[test]
fn level_filters_over_rare_warnings_select_exactly_the_matching_records() {
    for backend in backends() {
        let fresh = FreshDb::new(backend);
        let db = open(&fresh);
        let (task, other) = (new_task(1), new_task(2));
        for t in [&task, &other] {
            db.run_blocking(|c| tasks::insert_task(c, t, None)).unwrap();
        }
        let rare = |count: u64| -> Vec<LogEntry> {
            awkward_records(count)
                .into_iter()
                .map(|mut e| {
                    e.level = match e.seq % 20 {
                        0 => LogLevel::Error,
                        7 => LogLevel::Warning,
                        n => LogLevel::ALL[(n % 2) as usize],
                    };
                    e
                })
                .collect()
        };
        let entries = rare(2_500);
        store(&db, task.id, &entries);
        store(&db, other.id, &rare(400));
        for spec in level_specs() {
            let filter = LogFilter::parse(&spec).unwrap();
            let want: Vec<u64> = entries
                .iter()
                .filter(|e| filter.matches(e))
                .map(|e| e.seq)
                .collect();
            assert_eq!(
                every_read(&db, task.id, &filter),
                [want.clone(), want.clone(), want],
                "{backend}: {spec:?}"
            );
        }
    }
}

/// For random filters, what the database returns (SQL narrowing, then
/// `LogFilter::matches`) is exactly what `LogFilter::matches` alone selects:
/// forwards, backwards and in the console's seq index, through whichever index
/// the filter uses (a WARNING or ERROR level reads `task_log_warnings`).
#[test]
fn sql_narrowing_never_changes_what_a_filter_selects() {
    use proptest::test_runner::{Config, TestRunner};
    for backend in backends() {
        let fresh = FreshDb::new(backend);
        let db = open(&fresh);
        let task = new_task(1);
        let other = new_task(2);
        for t in [&task, &other] {
            db.run_blocking(|c| tasks::insert_task(c, t, None)).unwrap();
        }
        let entries = awkward_records(700);
        store(&db, task.id, &entries);
        store(&db, other.id, &awkward_records(300));
        let mut runner = TestRunner::new(Config {
            cases: 128,
            failure_persistence: None,
            ..Config::default()
        });
        let check = |spec: FilterSpec| {
            let Ok(filter) = LogFilter::parse(&spec) else {
                return Ok(());
            };
            let want: Vec<u64> = entries
                .iter()
                .filter(|e| filter.matches(e))
                .map(|e| e.seq)
                .collect();
            let [forward, backward, index] = every_read(&db, task.id, &filter);
            proptest::prop_assert_eq!(&forward, &want, "forward {:?}", spec);
            proptest::prop_assert_eq!(&backward, &want, "backward {:?}", spec);
            proptest::prop_assert_eq!(&index, &want, "index {:?}", spec);
            Ok(())
        };
        for spec in level_specs() {
            if let Err(e) = check(spec) {
                panic!("{backend}: {e}");
            }
        }
        if let Err(e) = runner.run(&filter_specs(), check) {
            panic!("{backend}: {e}");
        }
    }
}

/// The shared queue: oldest first, only the plugins asked for, each task claimed
/// once however many nodes claim at the same time; an unclaimed task can be
/// cancelled, a claimed one not (its node cancels it); released tasks go back.
#[test]
fn queued_tasks_are_claimed_once_oldest_first_and_only_for_plugins_a_node_runs() {
    use storage::queue::{self, Admission, Refusal};
    let open_admission = Admission {
        max_waiting: 100,
        max_per_creator: None,
    };
    for backend in backends() {
        let fresh = FreshDb::new(backend);
        let db = open(&fresh);
        let mut queued = Vec::new();
        for i in 0..40 {
            let mut task = new_task(1_000 + i);
            if i % 4 == 3 {
                task.plugin = "remote".into();
            }
            db.run_blocking(|c| queue::enqueue(c, &task, open_admission))
                .unwrap()
                .unwrap();
            queued.push(task);
        }
        let synthetic = ["synthetic".to_owned()];
        let first = db
            .run_blocking(|c| queue::claim(c, "a", &synthetic, 3))
            .unwrap();
        let ids = |tasks: &[TaskInfo]| tasks.iter().map(|t| t.id).collect::<Vec<_>>();
        assert_eq!(
            ids(&first),
            [queued[0].id, queued[1].id, queued[2].id],
            "{backend}: oldest first, only synthetic"
        );
        // Four nodes claim the rest at once: each task goes to exactly one.
        let claimed: Vec<Vec<TaskId>> = std::thread::scope(|s| {
            let handles: Vec<_> = ["b", "c", "d", "e"]
                .into_iter()
                .map(|node| {
                    let (db, synthetic) = (&db, &synthetic);
                    s.spawn(move || {
                        let mut got = Vec::new();
                        loop {
                            let batch = db
                                .run_blocking(|c| queue::claim(c, node, synthetic, 2))
                                .unwrap();
                            if batch.is_empty() {
                                return got;
                            }
                            got.extend(ids(&batch));
                        }
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut all: Vec<TaskId> = claimed.concat();
        all.extend(ids(&first));
        all.sort();
        let mut expected: Vec<TaskId> = queued
            .iter()
            .filter(|t| t.plugin == "synthetic")
            .map(|t| t.id)
            .collect();
        expected.sort();
        assert_eq!(all, expected, "{backend}: every task claimed exactly once");
        let remote = &queued[3];
        let outcome = TaskOutcome {
            status: TaskStatus::Cancelled,
            finished_at: Timestamp(5_000),
            result: None,
            error: Some("cancelled before it started".into()),
        };
        assert!(
            !db.run_blocking(|c| queue::end_unclaimed(c, queued[0].id, &outcome))
                .unwrap(),
            "{backend}: a claimed task is its node's to cancel"
        );
        assert_eq!(
            db.run_blocking(|c| queue::whereabouts(c, queued[0].id))
                .unwrap(),
            queue::Whereabouts::ClaimedBy("a".to_owned())
        );
        assert_eq!(
            db.run_blocking(|c| queue::whereabouts(c, remote.id))
                .unwrap(),
            queue::Whereabouts::Unclaimed
        );
        assert!(db
            .run_blocking(|c| queue::end_unclaimed(c, remote.id, &outcome))
            .unwrap());
        assert_eq!(
            db.run_blocking(|c| queue::whereabouts(c, remote.id))
                .unwrap(),
            queue::Whereabouts::Ended(TaskStatus::Cancelled)
        );
        // Released, a claimed task is the next one claimed again.
        assert_eq!(
            db.run_blocking(|c| queue::release(c, "a", &[queued[1].id]))
                .unwrap(),
            1
        );
        let again = db
            .run_blocking(|c| queue::claim(c, "b", &synthetic, 5))
            .unwrap();
        assert_eq!(ids(&again), [queued[1].id], "{backend}");
        // A higher priority goes first, whatever its age.
        let (old, urgent) = (
            new_task(100),
            TaskInfo {
                priority: 7,
                ..new_task(9_500)
            },
        );
        for task in [&old, &urgent] {
            db.run_blocking(|c| queue::enqueue(c, task, open_admission))
                .unwrap()
                .unwrap();
        }
        let next = db
            .run_blocking(|c| queue::claim(c, "b", &synthetic, 1))
            .unwrap();
        assert_eq!(ids(&next), [urgent.id], "{backend}");
        let next = db
            .run_blocking(|c| queue::claim(c, "b", &synthetic, 1))
            .unwrap();
        assert_eq!(ids(&next), [old.id], "{backend}");
        assert_eq!(next[0].priority, 0);
        // Bounds: the unclaimed tasks (9 remote ones left), and a creator's share.
        let full = Admission {
            max_waiting: 9,
            max_per_creator: None,
        };
        let refused = db
            .run_blocking(|c| queue::enqueue(c, &new_task(9_000), full))
            .unwrap();
        assert_eq!(refused, Err(Refusal::QueueFull { waiting: 9 }), "{backend}");
        let limited = Admission {
            max_waiting: 100,
            max_per_creator: Some(41),
        };
        let refused = db
            .run_blocking(|c| queue::enqueue(c, &new_task(9_000), limited))
            .unwrap();
        assert_eq!(
            refused,
            Err(Refusal::TooManyTasks { active: 41 }),
            "{backend}: 42 queued less the cancelled one"
        );
    }
}

/// A task created at `ms` (Unix milliseconds), finished at `finished` (µs) or running.
fn task_created_at(ms: i64, finished: Option<i64>) -> TaskInfo {
    let ts = uuid::Timestamp::from_unix(uuid::NoContext, (ms / 1000) as u64, 0);
    TaskInfo {
        id: TaskId(uuid::Uuid::new_v7(ts)),
        status: if finished.is_some() {
            TaskStatus::Success
        } else {
            TaskStatus::Running
        },
        finished_at: finished.map(Timestamp),
        ..new_task(ms * 1000)
    }
}

/// Which table holds a task's records on PostgreSQL (`None` when it has none).
fn partition_holding(db: &Db, task: TaskId) -> Option<String> {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Holder {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    let mut conn = db.get().unwrap();
    let storage::Conn::Postgres(c) = &mut conn else {
        panic!("PostgreSQL only")
    };
    diesel::sql_query(
        "SELECT DISTINCT tableoid::regclass::text AS name FROM task_logs WHERE task_id = $1",
    )
    .bind::<diesel::sql_types::Binary, _>(task.as_bytes().as_slice())
    .get_results::<Holder>(&mut **c)
    .unwrap()
    .pop()
    .map(|h| h.name)
}

#[test]
fn retention_drops_whole_days_and_a_task_still_kept_keeps_its_day() {
    use storage::partitions;
    if !backends().contains(&"postgres") {
        eprintln!("skipped: no PostgreSQL for tests");
        return;
    }
    const DAY_MS: i64 = 86_400_000;
    const HOUR_US: i64 = 3_600_000_000;
    let fresh = FreshDb::new("postgres");
    let db = open(&fresh);
    // Four days in 2030: no partition covers them until they are asked for.
    let day0 = chrono::NaiveDate::from_ymd_opt(2030, 1, 10).unwrap();
    let days: Vec<_> = day0.iter_days().take(4).collect();
    let start_ms = |i: usize| {
        days[i]
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis()
    };
    let finished_on = |i: usize| Some(start_ms(i) * 1000 + HOUR_US);
    let expired_a = task_created_at(start_ms(0) + 1, finished_on(0));
    let expired_b = task_created_at(start_ms(0) + DAY_MS - 1, finished_on(1));
    let expired_c = task_created_at(start_ms(1) + 5, finished_on(1));
    let long_running = task_created_at(start_ms(1) + 10, None);
    let expired_d = task_created_at(start_ms(2), finished_on(2));
    let recent = task_created_at(start_ms(3) + 7, Some(start_ms(3) * 1000 + 30 * HOUR_US));
    let all = [
        &expired_a,
        &expired_b,
        &expired_c,
        &long_running,
        &expired_d,
        &recent,
    ];
    for task in all {
        db.run_blocking(|c| tasks::insert_task(c, task, None))
            .unwrap();
    }
    // Day 0's records arrive before its partition exists: the default partition
    // takes them, and creating the day moves them in.
    store(&db, expired_a.id, &records(40));
    assert_eq!(
        partition_holding(&db, expired_a.id).as_deref(),
        Some("task_logs_default")
    );
    let created = db
        .run_blocking(|c| partitions::ensure_days(c, &days))
        .unwrap();
    assert_eq!(
        created,
        [
            "task_logs_20300110",
            "task_logs_20300111",
            "task_logs_20300112",
            "task_logs_20300113"
        ]
    );
    assert!(db
        .run_blocking(|c| partitions::ensure_days(c, &days))
        .unwrap()
        .is_empty());
    assert_eq!(
        partition_holding(&db, expired_a.id).as_deref(),
        Some("task_logs_20300110")
    );
    for task in &all[1..] {
        store(&db, task.id, &records(30));
    }
    assert_eq!(
        partition_holding(&db, recent.id).as_deref(),
        Some("task_logs_20300113")
    );

    index_pending(&db, usize::MAX);
    for task in all {
        assert!(pg_entries_of(&db, task.id).iter().all(|n| *n > 0));
    }

    // Everything that finished before day 3 has expired: day 0 and day 2 go whole;
    // day 1 stays for the task still running, and day 3 holds a task finished after.
    let cutoff = Timestamp(start_ms(3) * 1000);
    let dropped = db
        .run_blocking(|c| partitions::drop_expired(c, cutoff))
        .unwrap();
    // (Today's empty partitions, before the cutoff in 2030, go too.)
    let summary: Vec<_> = dropped
        .iter()
        .map(|d| (d.partition.as_str(), d.tasks))
        .filter(|(name, _)| name.starts_with("task_logs_2030"))
        .collect();
    assert_eq!(
        summary,
        [("task_logs_20300110", 2), ("task_logs_20300112", 1)]
    );
    let names: Vec<String> = db
        .run_blocking(partitions::list)
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .filter(|n| n.starts_with("task_logs_2030"))
        .collect();
    assert_eq!(names, ["task_logs_20300111", "task_logs_20300113"]);
    for gone in [&expired_a, &expired_b, &expired_d] {
        assert!(db
            .run_blocking(|c| tasks::get_task(c, gone.id))
            .unwrap()
            .is_none());
        assert!(collect_forward(&db, gone.id, &LogFilter::default(), 100).is_empty());
        assert_eq!(
            pg_entries_of(&db, gone.id),
            [0, 0, 0],
            "their index entries went too"
        );
    }
    // The expired task of the kept day is there until retention deletes it by itself.
    for kept in [&expired_c, &long_running, &recent] {
        assert_eq!(
            collect_forward(&db, kept.id, &LogFilter::default(), 100),
            records(30)
        );
        assert_eq!(pg_pairs_of(&db, kept.id), index_entries(&records(30)));
    }
    assert!(db
        .run_blocking(|c| partitions::drop_expired(c, cutoff))
        .unwrap()
        .is_empty());
    // Once the long task has finished and expired too, its day goes.
    db.run_blocking(|c| tasks::delete_task_in_steps(c, expired_c.id, 7))
        .unwrap();
    let done = TaskOutcome {
        status: TaskStatus::Success,
        finished_at: Timestamp(start_ms(2) * 1000),
        result: None,
        error: None,
    };
    assert!(db
        .run_blocking(|c| tasks::finish_task(c, long_running.id, &done))
        .unwrap());
    let dropped = db
        .run_blocking(|c| partitions::drop_expired(c, cutoff))
        .unwrap();
    assert_eq!(dropped.len(), 1);
    assert_eq!(
        (dropped[0].partition.as_str(), dropped[0].tasks),
        ("task_logs_20300111", 1)
    );
    assert_eq!(
        collect_forward(&db, recent.id, &LogFilter::default(), 100),
        records(30)
    );
}

#[test]
fn partitioning_an_existing_log_table_keeps_every_record() {
    use diesel::connection::SimpleConnection;
    if !backends().contains(&"postgres") {
        eprintln!("skipped: no PostgreSQL for tests");
        return;
    }
    let fresh = FreshDb::new("postgres");
    let db = open(&fresh);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let old = task_created_at(now_ms - 3 * 86_400_000, Some(1));
    // An id that is not time-ordered and sorts after every day: the default's.
    let odd = TaskInfo {
        id: TaskId(uuid::Uuid::from_bytes([0xff; 16])),
        ..new_task(1)
    };
    let migration = "../migrations/postgres/2026-12-01-000002_partition_logs";
    // Migrations after it are reverted first and applied again after it, as
    // `diesel migration redo` would: groups add columns and indexes to every
    // partition, and so does the index of warnings.
    let later = [
        "../migrations/postgres/2026-12-02-000001_log_groups",
        "../migrations/postgres/2026-12-02-000002_warning_index",
    ];
    let sql = |migration: &str, file: &str| {
        std::fs::read_to_string(format!("{migration}/{file}")).unwrap()
    };
    let run = |script: &str| {
        let mut conn = db.get().unwrap();
        let storage::Conn::Postgres(c) = &mut conn else {
            panic!("PostgreSQL only")
        };
        c.batch_execute(script).unwrap();
    };
    // The table as it was before partitioning, holding records (in its columns of
    // then: the writer of today writes the group columns too).
    for later in later.iter().rev() {
        run(&sql(later, "down.sql"));
    }
    run(&sql(migration, "down.sql"));
    for task in [&old, &odd] {
        db.run_blocking(|c| tasks::insert_task(c, task, None))
            .unwrap();
        let mut conn = db.get().unwrap();
        let storage::Conn::Postgres(c) = &mut conn else {
            panic!("PostgreSQL only")
        };
        for e in records(25) {
            use diesel::sql_types::{BigInt, Binary, Nullable, SmallInt, Text};
            use diesel::RunQueryDsl;
            diesel::sql_query(
                "INSERT INTO task_logs (task_id, seq, ts, level, source, message, metadata) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind::<Binary, _>(task.id.as_bytes().as_slice())
            .bind::<BigInt, _>(e.seq as i64)
            .bind::<BigInt, _>(e.timestamp.as_micros())
            .bind::<SmallInt, _>(e.level.as_i16())
            .bind::<Text, _>(&*e.source)
            .bind::<Text, _>(e.message())
            .bind::<Nullable<Text>, _>(e.metadata())
            .execute(c)
            .unwrap();
        }
    }
    run(&sql(migration, "up.sql"));
    for later in later {
        run(&sql(later, "up.sql"));
    }
    let holder = partition_holding(&db, old.id).unwrap();
    assert!(holder.starts_with("task_logs_until_"), "{holder}");
    assert_eq!(
        partition_holding(&db, odd.id).as_deref(),
        Some("task_logs_default")
    );
    for task in [&old, &odd] {
        assert_eq!(
            collect_forward(&db, task.id, &LogFilter::default(), 100),
            records(25)
        );
    }
    // Days after the bound get partitions of their own; the record path still works.
    let now = Timestamp(now_ms * 1000);
    let created = db
        .run_blocking(|c| storage::partitions::ensure(c, now))
        .unwrap();
    assert_eq!(
        created.len(),
        storage::partitions::DAYS_AHEAD as usize,
        "{created:?}"
    );
    let fresh_task = task_created_at(now_ms + 86_400_000, None);
    db.run_blocking(|c| tasks::insert_task(c, &fresh_task, None))
        .unwrap();
    store(&db, fresh_task.id, &records(5));
    assert_eq!(
        partition_holding(&db, fresh_task.id),
        Some(created[0].clone())
    );
    // Once all it holds has expired, the old table goes whole like any day; the
    // running task keeps its own day.
    let dropped = db
        .run_blocking(|c| storage::partitions::drop_expired(c, Timestamp(i64::MAX / 2)))
        .unwrap();
    let summary: Vec<_> = dropped
        .iter()
        .map(|d| (d.partition.as_str(), d.tasks))
        .collect();
    assert!(summary.contains(&(holder.as_str(), 1)), "{summary:?}");
    assert!(
        !summary.iter().any(|(name, _)| *name == created[0]),
        "{summary:?}"
    );
    assert!(db
        .run_blocking(|c| tasks::get_task(c, old.id))
        .unwrap()
        .is_none());
    assert_eq!(
        collect_forward(&db, odd.id, &LogFilter::default(), 100),
        records(25)
    );
    assert_eq!(
        collect_forward(&db, fresh_task.id, &LogFilter::default(), 100),
        records(5)
    );
}

#[test]
fn nodes_storing_the_same_admin_token_at_once_all_succeed() {
    for backend in backends() {
        let fresh = FreshDb::new(backend);
        let db = open(&fresh);
        for round in 0..10 {
            let barrier = Arc::new(std::sync::Barrier::new(6));
            let storing: Vec<_> = (0..6)
                .map(|_| {
                    let (db, barrier) = (db.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        let mut conn = db.get().unwrap();
                        barrier.wait();
                        storage::tokens::upsert_token(
                            &mut conn,
                            "admin",
                            Role::Admin,
                            &format!("admin-token-of-round-{round}-0123456789"),
                            Timestamp(round),
                        )
                    })
                })
                .collect();
            for s in storing {
                s.join()
                    .unwrap()
                    .unwrap_or_else(|e| panic!("{backend}: {e:?}"));
            }
        }
        let stored = db.run_blocking(storage::tokens::list_tokens).unwrap();
        assert_eq!(stored.len(), 1, "{backend}");
    }
}

#[test]
fn batches_of_any_length_are_stored_whole() {
    // Lengths around every statement size the SQLite writer uses (1,024 … 1 rows).
    let lengths = [
        1, 3, 4, 5, 17, 63, 64, 65, 255, 1_023, 1_024, 1_025, 1_365, 2_500,
    ];
    for backend in backends() {
        let (_fresh, db, task) = database_with_a_task(backend);
        let all = records(lengths.iter().sum());
        let mut at = 0;
        for n in lengths {
            let batch = &all[at..at + n as usize];
            assert_eq!(
                store_batch(&db, task.id, batch),
                n as usize,
                "{backend}: a batch of {n}"
            );
            at += n as usize;
        }
        assert_eq!(
            collect_forward(&db, task.id, &LogFilter::default(), 10_000),
            all,
            "{backend}"
        );
        let counted: u64 = db
            .run_blocking(|c| source_counts(c, task.id))
            .unwrap()
            .iter()
            .map(|s| s.count)
            .sum();
        assert_eq!(counted, all.len() as u64, "{backend}");
    }
}

/// Records for the text index: ASCII and Unicode case, ANSI colours, long lines,
/// quotes, LIKE wildcards, nested metadata; and three records past the index's seq
/// range, which reads take directly.
fn indexed_records(salt: u64) -> Vec<LogEntry> {
    let phrases = [
        "timeout after 120 ms",
        "Timeout After 7 MS",
        "Deadlock detected on \"orders\"",
        "ÄPFEL und äpfel",
        "\x1b[31mred alert\x1b[0m done",
        "straße STRASSE",
        "Kelvin \u{212A} k K",
        "50%_off a%b_c",
        "connection reset by peer",
        "tab\tseparated\tline",
    ];
    let long = "xyzzy ".repeat(900) + "needle at the end";
    let mut seqs: Vec<u64> = (1..=600).collect();
    seqs.extend([1u64 << 32, (1 << 32) + 7, (1 << 32) + 9]);
    seqs.iter()
        .enumerate()
        .map(|(i, &seq)| {
            let i = i as u64 + salt;
            let message = match i % 13 {
                12 => long.clone(),
                k => format!("{} #{}", phrases[(k as usize) % phrases.len()], i % 17),
            };
            LogEntry {
                seq,
                timestamp: Timestamp(1_000 + seq as i64),
                level: LogLevel::ALL[(i % 4) as usize],
                source: Arc::from(["api", "db"][(i % 2) as usize]),
                body: Body::new(
                    message,
                    match i % 7 {
                        0 => None,
                        1 => encode_metadata(serde_json::json!({"http": {"status": 500 + i % 2}})),
                        2 => encode_metadata(serde_json::json!({"k": "v", "n": i % 5})),
                        // A dotted key at the top and nesting three deep.
                        3 => encode_metadata(serde_json::json!({
                            "http.status": 500, "a": {"b": {"c": "x"}}, "tags": [1, "x"]
                        })),
                        // Values longer than the index keeps, alike in their first 128 bytes.
                        4 => encode_metadata(serde_json::json!({
                            "long": format!("{}{}", "z".repeat(200), i % 2), "n": null
                        })),
                        5 => encode_metadata(serde_json::json!({
                            "ключ": "значение", "a.b": {"c": "x"}, "http": {"status": "500"}
                        })),
                        _ => encode_metadata(serde_json::json!({"k": "V", "n": i % 5})),
                    }
                    .as_deref(),
                ),
                group: None,
                mark: None,
                worst: None,
            }
        })
        .collect()
}

fn indexed_filter_specs() -> impl proptest::strategy::Strategy<Value = FilterSpec> {
    use proptest::prelude::*;
    let text = prop::sample::select(vec![
        "TIMEOUT",
        "mEoUt aF",
        "ter 12",
        "äpf",
        "ÄPF",
        "pfel",
        "\x1b[31m",
        "31mred",
        "STRASSE",
        "straße",
        "traß",
        "\u{212A} k",
        "k k",
        "\"orders\"",
        "a%b_c",
        "%_o",
        "needle",
        "xyzzy x",
        "nothing like it",
        "#1",
        "ab",
        "\tsep",
    ]);
    let pattern = prop::sample::select(vec![
        r"timeout after \d+ ms",
        r"(?i)deadlock",
        r"^\x1b\[31m",
        r"äpfel und",
        r"(?i)straße",
        r"reset by \w+",
        r"needle at the end$",
        r"(after|reset)",
        r"#1[0-6]",
    ]);
    let long = |last: &str| format!("{}{last}", "z".repeat(200));
    let meta = prop::sample::select(vec![
        ("http.status".to_owned(), "500".to_owned()),
        ("http.status".into(), "501".into()),
        ("http".into(), r#"{"status":500}"#.into()),
        ("a.b.c".into(), "x".into()),
        ("a.b".into(), r#"{"c":"x"}"#.into()),
        ("k".into(), "v".into()),
        ("n".into(), "3".into()),
        ("n".into(), "null".into()),
        ("long".into(), long("1")),
        ("long".into(), "z".repeat(128)),
        ("ключ".into(), "значение".into()),
        ("tags".into(), r#"[1,"x"]"#.into()),
    ]);
    (
        prop::option::of(prop::sample::select(LogLevel::ALL.to_vec())),
        prop::option::of(text),
        prop::option::of(pattern),
        prop::option::of(prop::sample::select(vec!["api", "db"])),
        prop::collection::vec(meta, 0..=2),
    )
        .prop_map(|(level, q, re, source, meta)| FilterSpec {
            level,
            sources: source.into_iter().map(str::to_owned).collect(),
            q: q.map(str::to_owned),
            re: re.map(str::to_owned),
            meta: meta.into_iter().collect(),
            ..FilterSpec::default()
        })
}

/// For random records and filters, reads through the text and metadata indexes
/// (the metadata index alone on PostgreSQL; forwards and backwards, in pages, and
/// the console's seq index) return exactly what `LogFilter::matches` selects, and
/// nothing of another task.
#[test]
fn the_text_index_returns_exactly_what_a_filter_selects() {
    for backend in backends() {
        let (_fresh, db, task) = database_with_a_task(backend);
        let other = new_task(2);
        db.run_blocking(|c| tasks::insert_task(c, &other, None))
            .unwrap();
        let entries = indexed_records(0);
        store(&db, task.id, &entries);
        store(&db, other.id, &indexed_records(5));
        // Nothing indexed yet, then part of it (the indexer's step leaves ranges half
        // done), then all of it.
        for step in [0, 150, usize::MAX] {
            index_pending(&db, step);
            check_indexed_reads(&db, &task, &entries, backend);
        }
    }
}

/// Runs the indexer until it has covered `records` seqs (on PostgreSQL, records
/// with metadata) or nothing is pending.
fn index_pending(db: &Db, records: usize) {
    let mut left = records;
    while left > 0 {
        let mut conn = db.get().unwrap();
        let done = storage::text_index::index_step(&mut conn, left.min(97)).unwrap();
        if done == 0 {
            return;
        }
        left = left.saturating_sub(done);
    }
}

fn check_indexed_reads(db: &Db, task: &TaskInfo, entries: &[LogEntry], backend: &str) {
    use proptest::test_runner::{Config, TestRunner};
    {
        let mut runner = TestRunner::new(Config {
            cases: 64,
            failure_persistence: None,
            ..Config::default()
        });
        let result = runner.run(&indexed_filter_specs(), |spec| {
            let filter = LogFilter::parse(&spec).expect("valid spec");
            let want: Vec<u64> = entries
                .iter()
                .filter(|e| filter.matches(e))
                .map(|e| e.seq)
                .collect();
            let seqs = |page: Vec<LogEntry>| page.iter().map(|e| e.seq).collect::<Vec<_>>();
            let forward = seqs(collect_forward(db, task.id, &filter, 37));
            proptest::prop_assert_eq!(&forward, &want, "forward {:?}", spec);
            let backward = seqs(collect_backward(db, task.id, &filter, 41));
            proptest::prop_assert_eq!(&backward, &want, "backward {:?}", spec);
            let index = db
                .run_blocking(|c| matching_seqs(c, task.id, &filter, 10_000))
                .unwrap();
            proptest::prop_assert_eq!(&index, &want, "index {:?}", spec);
            Ok(())
        });
        if let Err(e) = result {
            panic!("{backend}: {e}");
        }
    }
}

/// SQLite's trigram table: records wait in ranges until the indexer takes them, a
/// retried batch's records are indexed once, a task's entries go with the task
/// whichever way it is deleted, and records stored before the index existed are
/// listed by its migration and indexed like new ones.
#[test]
fn sqlite_text_index_follows_the_records() {
    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let (_fresh, db, task) = database_with_a_task("sqlite");
    let entries = indexed_records(0);
    let migrations = [
        "../migrations/sqlite/2026-12-01-000005_text_index",
        "../migrations/sqlite/2026-12-01-000006_meta_index",
    ];
    let sql = |migration: &str, file: &str| {
        std::fs::read_to_string(format!("{migration}/{file}")).unwrap()
    };
    let run = |script: &str| {
        let mut conn = db.get().unwrap();
        let storage::Conn::Sqlite(c) = &mut conn else {
            panic!("SQLite only")
        };
        c.batch_execute(script).unwrap();
    };
    let entries_of = |task: &TaskInfo| -> i64 {
        let mut conn = db.get().unwrap();
        let storage::Conn::Sqlite(c) = &mut conn else {
            panic!("SQLite only")
        };
        diesel::sql_query(
            "SELECT count(*) AS n FROM task_log_text WHERE rowid >= \
             (SELECT key << 32 FROM task_log_keys WHERE task_id = ?) AND rowid < \
             (SELECT (key + 1) << 32 FROM task_log_keys WHERE task_id = ?)",
        )
        .bind::<diesel::sql_types::Binary, _>(task.id.as_bytes().as_slice())
        .bind::<diesel::sql_types::Binary, _>(task.id.as_bytes().as_slice())
        .get_result::<Count>(c)
        .unwrap()
        .n
    };
    let all_entries = || -> i64 {
        let mut conn = db.get().unwrap();
        let storage::Conn::Sqlite(c) = &mut conn else {
            panic!("SQLite only")
        };
        diesel::sql_query("SELECT count(*) AS n FROM task_log_text")
            .get_result::<Count>(c)
            .unwrap()
            .n
    };
    let count = |query: &str, task: Option<&TaskInfo>| -> i64 {
        let mut conn = db.get().unwrap();
        let storage::Conn::Sqlite(c) = &mut conn else {
            panic!("SQLite only")
        };
        let q = diesel::sql_query(query);
        match task {
            Some(task) => q
                .bind::<diesel::sql_types::Binary, _>(task.id.as_bytes().as_slice())
                .get_result::<Count>(c),
            None => q.get_result::<Count>(c),
        }
        .unwrap()
        .n
    };
    let pairs_of = |task: &TaskInfo| {
        count(
            "SELECT count(*) AS n FROM task_log_pairs WHERE key = \
             (SELECT key FROM task_log_keys WHERE task_id = ?)",
            Some(task),
        )
    };
    let all_pairs = || count("SELECT count(*) AS n FROM task_log_pairs", None);
    // Each record's members as the index enters them: nested ones under their
    // dotted path, objects whole as well, long values cut, nulls left out.
    let want_pairs = entries
        .iter()
        .filter(|e| e.seq < 1 << 32)
        .filter_map(|e| e.metadata())
        .map(|raw| {
            let object: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(raw).unwrap();
            protocol::filter::meta_pairs(&object)
                .into_iter()
                .map(|(path, value)| storage::text_index::pair_key(&path, &value).unwrap())
                .collect::<std::collections::BTreeSet<_>>()
                .len() as i64
        })
        .sum::<i64>();
    assert!(want_pairs > 600, "{want_pairs}");
    // Stored as before the indexes (rows only), then listed when they come.
    for migration in migrations.iter().rev() {
        run(&sql(migration, "down.sql"));
    }
    {
        let mut conn = db.get().unwrap();
        let storage::Conn::Sqlite(c) = &mut conn else {
            panic!("SQLite only")
        };
        for e in &entries {
            diesel::insert_into(storage::schema::task_logs::table)
                .values(storage::models::NewLogRow {
                    task_id: task.id.as_bytes(),
                    seq: e.seq as i64,
                    ts: e.timestamp.as_micros(),
                    level: e.level.as_i16(),
                    source: &e.source,
                    message: e.message(),
                    metadata: e.metadata(),
                    group_seq: None,
                    group_mark: None,
                    group_worst: None,
                })
                .execute(c)
                .unwrap();
        }
    }
    for migration in migrations {
        run(&sql(migration, "up.sql"));
    }
    let indexed = entries.iter().filter(|e| e.seq < 1 << 32).count() as i64;
    let pending = || {
        let mut conn = db.get().unwrap();
        let storage::Conn::Sqlite(c) = &mut conn else {
            panic!("SQLite only")
        };
        storage::text_index::pending_records(c).unwrap() as i64
    };
    assert_eq!((entries_of(&task), pending()), (0, indexed));
    index_pending(&db, usize::MAX);
    assert_eq!((entries_of(&task), pending()), (indexed, 0));
    assert_eq!(pairs_of(&task), want_pairs);
    let filter = spec(serde_json::json!({"q": "needle"}));
    let want: Vec<u64> = entries
        .iter()
        .filter(|e| filter.matches(e))
        .map(|e| e.seq)
        .collect();
    let got: Vec<u64> = collect_forward(&db, task.id, &filter, 5)
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(got, want);

    // A retried batch adds no entry twice.
    assert_eq!(store_batch(&db, task.id, &entries[..50]), 0);
    assert_eq!(pending(), 50);
    index_pending(&db, usize::MAX);
    assert_eq!((entries_of(&task), pending()), (indexed, 0));
    assert_eq!(pairs_of(&task), want_pairs);

    let stepped = new_task(2);
    let cascaded = new_task(3);
    for other in [&stepped, &cascaded] {
        db.run_blocking(|c| tasks::insert_task(c, other, None))
            .unwrap();
        store(&db, other.id, &entries);
        index_pending(&db, usize::MAX);
        assert_eq!(entries_of(other), indexed);
        assert_eq!(pairs_of(other), want_pairs);
    }
    assert_eq!(all_entries(), 3 * indexed);
    assert_eq!(all_pairs(), 3 * want_pairs);
    db.run_blocking(|c| tasks::delete_task_in_steps(c, stepped.id, 100))
        .unwrap();
    db.run_blocking(|c| tasks::delete_task(c, cascaded.id))
        .unwrap();
    assert_eq!(all_entries(), indexed, "deleted tasks leave no entries");
    assert_eq!(entries_of(&task), indexed);
    assert_eq!(all_pairs(), want_pairs, "deleted tasks leave no pairs");
}

/// A count from a PostgreSQL query taking at most one task id.
fn pg_count(db: &Db, query: &str, task: Option<TaskId>) -> i64 {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = db.get().unwrap();
    let storage::Conn::Postgres(c) = &mut conn else {
        panic!("PostgreSQL only")
    };
    let q = diesel::sql_query(query);
    match task {
        Some(task) => q
            .bind::<diesel::sql_types::Binary, _>(task.as_bytes().as_slice())
            .get_result::<Count>(&mut **c),
        None => q.get_result::<Count>(&mut **c),
    }
    .unwrap()
    .n
}

/// The metadata index entries of one task on PostgreSQL.
fn pg_pairs_of(db: &Db, task: TaskId) -> i64 {
    pg_count(
        db,
        "SELECT count(*) AS n FROM task_log_pairs WHERE task_id = $1",
        Some(task),
    )
}

/// The entries the metadata index holds for `entries`: each record's members,
/// nested ones under their dotted path, objects whole as well, long values cut,
/// nulls left out, a member listed twice once.
fn index_entries(entries: &[LogEntry]) -> i64 {
    entries
        .iter()
        .filter_map(|e| e.metadata())
        .map(|raw| {
            let object: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(raw).unwrap();
            protocol::filter::meta_pairs(&object)
                .into_iter()
                .map(|(path, value)| storage::text_index::pair_key(&path, &value).unwrap())
                .collect::<std::collections::BTreeSet<_>>()
                .len() as i64
        })
        .sum()
}

/// The rows PostgreSQL's text and metadata indexes hold for one task.
fn pg_entries_of(db: &Db, task: TaskId) -> [i64; 3] {
    [
        "task_log_pairs",
        "task_log_trigrams",
        "task_log_trigram_counts",
    ]
    .map(|table| {
        pg_count(
            db,
            &format!("SELECT count(*) AS n FROM {table} WHERE task_id = $1"),
            Some(task),
        )
    })
}

/// How many of the task's records PostgreSQL's trigram index counts as holding
/// `trigram`, and how many of its blocks list them (0 when none).
fn pg_trigram_count(db: &Db, task: TaskId, trigram: &str) -> (i64, i64) {
    let key = storage::text_index::postgres::trigram_keys([trigram])[0];
    let count = |query: &str| pg_count(db, &query.replace("KEY", &key.to_string()), Some(task));
    (
        count("SELECT coalesce(sum(records), 0)::bigint AS n FROM task_log_trigram_counts WHERE task_id = $1 AND trigram = KEY"),
        count("SELECT count(*) AS n FROM task_log_trigrams WHERE task_id = $1 AND trigram = KEY"),
    )
}

/// PostgreSQL's text and metadata indexes: records wait in ranges until an indexer
/// takes them, trigrams are counted per record, a retried batch adds no metadata
/// entry, records stored before the indexes existed are listed by their migration,
/// two indexers at once each take what the other does not hold, a read chooses the
/// rarest lookup, and a task's entries go with it whichever way it is deleted.
#[test]
fn postgresql_text_and_metadata_indexes_follow_the_records() {
    use diesel::connection::SimpleConnection;
    use storage::text_index::{postgres, Candidates};
    if !backends().contains(&"postgres") {
        eprintln!("skipped: no PostgreSQL for tests");
        return;
    }
    let (_fresh, db, task) = database_with_a_task("postgres");
    let pending = || db.run_blocking(storage::text_index::backlog).unwrap();
    let all_pairs = || pg_count(&db, "SELECT count(*) AS n FROM task_log_pairs", None);
    let entries = indexed_records(0);
    let want_pairs = index_entries(&entries);
    assert!(want_pairs > 600, "{want_pairs}");
    // "Timeout After", "timeout after" and "connection reset" hold "tim" (and the
    // long line "xyzzy ... needle at the end" does not), whatever the case.
    let holding = |entries: &[LogEntry], text: &str| {
        entries
            .iter()
            .filter(|e| e.message().to_ascii_lowercase().contains(text))
            .count() as i64
    };
    let want_tim = holding(&entries, "tim");
    assert!(want_tim > 50, "{want_tim}");
    // Blocks of 4,096 seqs listing them.
    let blocks_of = |entries: &[LogEntry], text: &str| {
        entries
            .iter()
            .filter(|e| e.message().to_ascii_lowercase().contains(text))
            .map(|e| e.seq >> 12)
            .collect::<std::collections::BTreeSet<_>>()
            .len() as i64
    };
    let want_tim_blocks = blocks_of(&entries, "tim");
    assert!(want_tim_blocks >= 1);

    store(&db, task.id, &entries);
    // Each batch's runs of consecutive seqs.
    assert_eq!(pending(), entries.len() as u64);
    assert_eq!(pg_entries_of(&db, task.id), [0, 0, 0]);
    index_pending(&db, usize::MAX);
    assert_eq!((pg_pairs_of(&db, task.id), pending()), (want_pairs, 0));
    assert_eq!(
        pg_trigram_count(&db, task.id, "tim"),
        (want_tim, want_tim_blocks)
    );
    let want_xyzzy = (holding(&entries, "xyzzy"), blocks_of(&entries, "xyzzy"));
    assert_eq!(pg_trigram_count(&db, task.id, "yzz"), want_xyzzy);

    // Records without metadata are indexed for their text alone.
    let plain = new_task(2);
    db.run_blocking(|c| tasks::insert_task(c, &plain, None))
        .unwrap();
    let without: Vec<LogEntry> = records(500)
        .into_iter()
        .map(|e| LogEntry {
            body: Body::new(e.message().to_owned(), None),
            ..e
        })
        .collect();
    store(&db, plain.id, &without);
    assert_eq!(pending(), 500);
    index_pending(&db, usize::MAX);
    let [pairs, trigrams, counts] = pg_entries_of(&db, plain.id);
    assert_eq!((pairs, pending()), (0, 0));
    assert!(trigrams > 0 && counts > 0);
    assert_eq!(
        pg_trigram_count(&db, plain.id, "tim").0,
        holding(&without, "tim")
    );

    // A retried batch adds no metadata entry twice, and reads drop its repeated
    // trigram offsets (the property test reads through them).
    assert_eq!(store_batch(&db, task.id, &entries[..50]), 0);
    assert_eq!(pending(), 50);
    index_pending(&db, usize::MAX);
    assert_eq!((pg_pairs_of(&db, task.id), pending()), (want_pairs, 0));
    let q = spec(serde_json::json!({"q": "TIMEOUT after"}));
    let got: Vec<u64> = collect_forward(&db, task.id, &q, 7)
        .iter()
        .map(|e| e.seq)
        .collect();
    let want: Vec<u64> = entries
        .iter()
        .filter(|e| q.matches(e))
        .map(|e| e.seq)
        .collect();
    assert_eq!(got, want);

    // Stored before the indexes: their migration lists them.
    let migration = "../migrations/postgres/2026-12-02-000003_log_indexes";
    let run = |file: &str| {
        let script = std::fs::read_to_string(format!("{migration}/{file}")).unwrap();
        let mut conn = db.get().unwrap();
        let storage::Conn::Postgres(c) = &mut conn else {
            panic!("PostgreSQL only")
        };
        c.batch_execute(&script).unwrap();
    };
    run("down.sql");
    run("up.sql");
    assert_eq!(all_pairs(), 0);
    assert_eq!(pending(), entries.last().unwrap().seq + 500);
    index_pending(&db, usize::MAX);
    assert_eq!((pg_pairs_of(&db, task.id), pending()), (want_pairs, 0));
    assert_eq!(
        pg_trigram_count(&db, task.id, "tim"),
        (want_tim, want_tim_blocks)
    );
    assert_eq!(pg_trigram_count(&db, task.id, "yzz"), want_xyzzy);

    // Two nodes indexing at once: one holds a range of the newest task (v7 ids are
    // in time order, and steps take the highest first), and the other indexes
    // another task meanwhile without waiting for it. (Two steps on one task wait for
    // each other: they add to the same trigram counts.)
    let held = task_created_at(4_000_000_000_000, None);
    let free = task_created_at(3_000_000_000_000, None);
    let seven_hundred = records(700);
    for t in [&held, &free] {
        db.run_blocking(|c| tasks::insert_task(c, t, None)).unwrap();
    }
    assert_eq!(store_batch(&db, held.id, &seven_hundred), 700);
    store(&db, free.id, &seven_hundred);
    let mut first_node = db.get().unwrap();
    let storage::Conn::Postgres(c) = &mut first_node else {
        panic!("PostgreSQL only")
    };
    diesel::Connection::transaction(&mut **c, |c| {
        // One record of the held task's one range, whose rest is noted anew.
        assert_eq!(postgres::index_pending(c, 1).unwrap(), 1);
        let (done, finished) = std::sync::mpsc::channel();
        let other_node = db.clone();
        std::thread::spawn(move || {
            index_pending(&other_node, usize::MAX);
            done.send(()).ok();
        });
        finished
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the second indexer does not wait for the first");
        // Seen from outside, the held range is still whole and nothing of it indexed.
        assert_eq!(pending(), 700);
        assert_eq!(pg_entries_of(&db, held.id), [0, 0, 0]);
        assert_eq!(pg_pairs_of(&db, free.id), index_entries(&seven_hundred));
        Ok::<_, diesel::result::Error>(())
    })
    .unwrap();
    drop(first_node);
    index_pending(&db, usize::MAX);
    assert_eq!(pending(), 0);
    assert_eq!(pg_pairs_of(&db, held.id), index_entries(&seven_hundred));
    assert_eq!(
        pg_trigram_count(&db, held.id, "syn").0,
        holding(&seven_hundred, "syn")
    );

    // The rarest lookup is read: a rare value over a common text and a common
    // value, a rare text over a common value.
    let many = records(3000);
    let rare = new_task(4);
    db.run_blocking(|c| tasks::insert_task(c, &rare, None))
        .unwrap();
    store(&db, rare.id, &many);
    index_pending(&db, usize::MAX);
    let choose = |filter: &LogFilter| {
        let lookups = Candidates::for_filter(filter, storage::Backend::Postgres);
        let mut conn = db.get().unwrap();
        let storage::Conn::Postgres(c) = &mut conn else {
            panic!("PostgreSQL only")
        };
        lookups[postgres::fewest(c, rare.id, &lookups).unwrap()].clone()
    };
    let rare_value =
        spec(serde_json::json!({"q": "synthetic", "meta": {"dashboard_id": 4, "i": 1234}}));
    assert_eq!(
        choose(&rare_value),
        Candidates::Pair(storage::text_index::pair_key("i", "1234").unwrap())
    );
    let rare_text = spec(serde_json::json!({"q": "record 1234", "meta": {"dashboard_id": 4}}));
    assert!(matches!(choose(&rare_text), Candidates::Trigrams(_)));
    for filter in [rare_text, rare_value] {
        let got: Vec<u64> = collect_forward(&db, rare.id, &filter, 1)
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(got, [1235], "record 1234 is seq 1235");
    }

    // Deleted a step at a time, or at once: no entry stays.
    let rare_pairs = pg_pairs_of(&db, rare.id);
    assert_eq!(rare_pairs, index_entries(&many));
    let in_free = index_entries(&seven_hundred);
    assert_eq!(all_pairs(), want_pairs + 2 * in_free + rare_pairs);
    let kept = pg_entries_of(&db, task.id);
    for t in [&held, &free] {
        db.run_blocking(|c| tasks::delete_task_in_steps(c, t.id, 100))
            .unwrap();
        assert_eq!(pg_entries_of(&db, t.id), [0, 0, 0]);
    }
    assert_eq!(all_pairs(), want_pairs + rare_pairs);
    db.run_blocking(|c| tasks::delete_task(c, rare.id)).unwrap();
    assert_eq!(pg_entries_of(&db, rare.id), [0, 0, 0]);
    assert_eq!(all_pairs(), want_pairs, "deleted tasks leave no pairs");
    assert_eq!(pg_entries_of(&db, task.id), kept);
}

/// Records far apart, each in a block of PostgreSQL's trigram index of its own: a
/// text's candidates are read over many reads of blocks, forwards and backwards,
/// and hold exactly what the filter selects.
#[test]
fn text_candidates_over_many_blocks_are_read_to_the_end() {
    for backend in backends() {
        let (_fresh, db, task) = database_with_a_task(backend);
        let entries: Vec<LogEntry> = (0..300u64)
            .map(|i| LogEntry {
                seq: 1 + i * 4096 + i % 7,
                timestamp: Timestamp(1_000 + i as i64),
                level: LogLevel::Info,
                source: Arc::from("api"),
                body: Body::new(
                    match i % 5 {
                        0 | 3 => format!("Needle in block {i}"),
                        1 => format!("haystack {i} needle"),
                        _ => format!("hay {i}"),
                    },
                    None,
                ),
                group: None,
                mark: None,
                worst: None,
            })
            .collect();
        for batch in entries.chunks(50) {
            assert_eq!(store_batch(&db, task.id, batch), batch.len());
        }
        index_pending(&db, usize::MAX);
        assert_eq!(db.run_blocking(storage::text_index::backlog).unwrap(), 0);
        for json in [
            serde_json::json!({"q": "needle"}),
            serde_json::json!({"q": "NEEDLE in"}),
            serde_json::json!({"re": "stack \\d+ needle"}),
        ] {
            let filter = spec(json);
            let want: Vec<u64> = entries
                .iter()
                .filter(|e| filter.matches(e))
                .map(|e| e.seq)
                .collect();
            assert!(want.len() >= 60, "{backend}: {}", want.len());
            let [forward, backward, index] = every_read(&db, task.id, &filter);
            assert_eq!(forward, want, "{backend} forward");
            assert_eq!(backward, want, "{backend} backward");
            assert_eq!(index, want, "{backend} index");
        }
    }
}

/// The seqs of `entries` that `filter` selects, latest first (a task's order in a
/// search).
fn matching_latest_first(filter: &LogFilter, entries: &[LogEntry]) -> Vec<u64> {
    let mut seqs: Vec<u64> = entries
        .iter()
        .filter(|e| filter.matches(e))
        .map(|e| e.seq)
        .collect();
    seqs.sort_unstable_by(|a, b| b.cmp(a));
    seqs
}

/// Pages of a search over all tasks, following cursors to the end.
fn search_all(
    db: &Db,
    filter: &LogFilter,
    conditions: &storage::search::TaskConditions,
    limit: usize,
    mut between_pages: impl FnMut(usize),
) -> Vec<(TaskId, u64)> {
    let mut out = Vec::new();
    let mut cursor = None;
    for page in 0.. {
        let found = db
            .run_blocking(|c| storage::search::search_logs(c, filter, conditions, cursor, limit))
            .unwrap();
        assert!(found.hits.len() <= limit);
        assert!(
            !found.hits.is_empty() || found.next.is_none() || found.scanned.is_some(),
            "an empty page goes on only when it says what it scanned"
        );
        out.extend(found.hits.iter().map(|h| (h.task_id, h.log.seq)));
        match found.next {
            None => return out,
            Some(next) => {
                assert_ne!(Some(next), cursor, "every page moves the cursor on");
                cursor = Some(next);
            }
        }
        between_pages(page);
    }
    unreachable!()
}

/// Search across tasks: newest task first, latest record first, every hit once
/// while the tasks go on logging; task conditions; a deleted task's records are
/// gone from it.
#[test]
fn search_across_tasks_pages_in_order_while_tasks_log() {
    use storage::search::TaskConditions;
    for backend in backends() {
        let (_fresh, db, _) = database_with_a_task(backend);
        let mut tasks_by_age = Vec::new();
        for (i, plugin) in ["alpha", "beta", "alpha", "beta"].into_iter().enumerate() {
            let task = TaskInfo {
                plugin: plugin.into(),
                status: if i == 0 {
                    TaskStatus::Success
                } else {
                    TaskStatus::Running
                },
                ..new_task(10 + i as i64)
            };
            db.run_blocking(|c| tasks::insert_task(c, &task, None))
                .unwrap();
            store(&db, task.id, &indexed_records(i as u64));
            tasks_by_age.push(task);
        }
        index_pending(&db, 1_000);
        let filter = spec(serde_json::json!({"q": "TIMEOUT after"}));
        let newest_first: Vec<&TaskInfo> = tasks_by_age.iter().rev().collect();
        // What the tasks hold when the search begins, plus what the tasks it has not
        // reached yet log meanwhile.
        let late = |from: u64| -> Vec<LogEntry> {
            (0..20)
                .map(|i| LogEntry {
                    seq: from + i,
                    timestamp: Timestamp(5_000 + i as i64),
                    level: LogLevel::Info,
                    source: Arc::from("api"),
                    body: Body::new(format!("late timeout after {i} ms"), None),
                    group: None,
                    mark: None,
                    worst: None,
                })
                .collect()
        };
        let mut want = Vec::new();
        for (rank, task) in newest_first.iter().enumerate() {
            let mut entries =
                indexed_records(tasks_by_age.iter().position(|t| t.id == task.id).unwrap() as u64);
            if rank == 2 {
                entries.extend(late(5_000_000_000));
            }
            let seqs = matching_latest_first(&filter, &entries);
            want.extend(seqs.into_iter().map(|s| (task.id, s)));
        }
        assert!(want.len() > 100, "{backend}: the search has pages to turn");
        let got = search_all(&db, &filter, &TaskConditions::default(), 7, |page| {
            if page == 0 {
                // Above the cursor of the task being read: not in this search.
                store(&db, newest_first[0].id, &late(10_000));
                // Not reached yet: found when the search gets there.
                store(&db, newest_first[2].id, &late(5_000_000_000));
            }
        });
        assert_eq!(got, want, "{backend}");

        // Task conditions.
        let alpha = TaskConditions {
            plugins: vec!["alpha".into()],
            ..TaskConditions::default()
        };
        let got = search_all(&db, &filter, &alpha, 50, |_| {});
        let alpha_ids = [tasks_by_age[0].id, tasks_by_age[2].id];
        assert!(
            !got.is_empty() && got.iter().all(|(t, _)| alpha_ids.contains(t)),
            "{backend}"
        );
        let finished = TaskConditions {
            statuses: vec![TaskStatus::Success],
            ..TaskConditions::default()
        };
        let got = search_all(&db, &filter, &finished, 50, |_| {});
        assert!(
            !got.is_empty() && got.iter().all(|(t, _)| *t == tasks_by_age[0].id),
            "{backend}"
        );
        let created = TaskConditions {
            created_since: Some(Timestamp(11)),
            created_until: Some(Timestamp(13)),
            ..TaskConditions::default()
        };
        let got = search_all(&db, &filter, &created, 50, |_| {});
        let middle = [tasks_by_age[1].id, tasks_by_age[2].id];
        assert!(
            !got.is_empty() && got.iter().all(|(t, _)| middle.contains(t)),
            "{backend}"
        );

        // A deleted task's records leave the search.
        db.run_blocking(|c| tasks::delete_task(c, newest_first[1].id))
            .unwrap();
        let got = search_all(&db, &filter, &TaskConditions::default(), 100, |_| {});
        assert!(!got.is_empty(), "{backend}");
        assert!(
            got.iter().all(|(t, _)| *t != newest_first[1].id),
            "{backend}"
        );
    }
}

/// A search through the text index reads the candidates of a batch of tasks at once
/// and each task's page from them: the tasks whose records are not all indexed are
/// read on their own, a text with too many candidates for one read goes task by
/// task, and every way gives exactly the matching records in search order.
#[test]
fn a_search_reads_a_batch_of_tasks_candidates_at_once() {
    use std::collections::HashSet;
    use storage::search::TaskConditions;
    use storage::text_index::{batch_candidates, BATCH_CANDIDATES};
    for backend in backends() {
        let (_fresh, db, _) = database_with_a_task(backend);
        let all = records(3_100);
        let mut held: Vec<(TaskInfo, Vec<LogEntry>)> = Vec::new();
        for i in 0..5 {
            let task = new_task(10 + i);
            db.run_blocking(|c| tasks::insert_task(c, &task, None))
                .unwrap();
            let mut entries = all[..3_000].to_vec();
            if i == 3 {
                // Past the seqs SQLite indexes: a task its index cannot answer for.
                entries.push(LogEntry {
                    seq: 5_000_000_000,
                    ..all[1_234].clone()
                });
            }
            store(&db, task.id, &entries);
            held.push((task, entries));
        }
        index_pending(&db, usize::MAX);
        // Stored after the indexer caught up: not indexed yet.
        store(&db, held[2].0.id, &all[3_000..]);
        held[2].1.extend_from_slice(&all[3_000..]);
        assert!(db.run_blocking(storage::text_index::backlog).unwrap() > 0);

        let ids: Vec<TaskId> = held.iter().rev().map(|(t, _)| t.id).collect();
        let mut alone: HashSet<TaskId> = HashSet::from([held[2].0.id]);
        if backend == "sqlite" {
            alone.insert(held[3].0.id);
        }
        let common = spec(serde_json::json!({"q": "record"}));
        assert!(matching_latest_first(&common, &all).len() * 4 > BATCH_CANDIDATES);
        for (json, batched) in [
            (serde_json::json!({"q": "record 1234"}), true),
            (serde_json::json!({"re": "Timeout after 12\\d+ ms"}), true),
            // Candidates the SQL conditions let through too: `matches` decides.
            (serde_json::json!({"re": "Timeout after 12\\d ms"}), true),
            (serde_json::json!({"re": "timeout after 12"}), true),
            (
                serde_json::json!({"q": "timeout AFTER", "level": "ERROR"}),
                true,
            ),
            (serde_json::json!({"q": "no such line"}), true),
            (serde_json::json!({"q": "record"}), false),
            (serde_json::json!({"level": "ERROR"}), false),
        ] {
            let filter = spec(json.clone());
            let batch = db
                .run_blocking(|c| batch_candidates(c, &ids, &filter))
                .unwrap();
            assert_eq!(batch.is_some(), batched, "{backend} {json}");
            if let Some(batch) = batch {
                assert_eq!(batch.read_alone, alone, "{backend} {json}");
                for (task, entries) in &held {
                    if alone.contains(&task.id) {
                        continue;
                    }
                    let seqs = batch.seqs.get(&task.id).cloned().unwrap_or_default();
                    assert!(
                        seqs.windows(2).all(|w| w[0] > w[1]),
                        "{backend} {json}: descending"
                    );
                    for seq in matching_latest_first(&filter, entries) {
                        assert!(
                            seqs.contains(&(seq as i64)),
                            "{backend} {json}: {seq} is a candidate"
                        );
                    }
                }
            }
            let want: Vec<(TaskId, u64)> = held
                .iter()
                .rev()
                .flat_map(|(task, entries)| {
                    matching_latest_first(&filter, entries)
                        .into_iter()
                        .map(|seq| (task.id, seq))
                })
                .collect();
            // About five pages, some ending inside a task; and one page.
            for limit in [want.len().div_ceil(5).max(1), 1_000] {
                let got = search_all(&db, &filter, &TaskConditions::default(), limit, |_| {});
                assert_eq!(got, want, "{backend} {json} limit {limit}");
            }
        }
    }
}

/// A search page is bounded in bytes like a task's page, and a task whose lines
/// fill it is taken up again on the next page where it stopped, on either way of
/// reading (task by task, and from a batch's candidates).
#[test]
fn search_pages_of_long_lines_are_bounded_and_lose_nothing() {
    use storage::logs::MAX_PAGE_BYTES;
    use storage::search::{search_logs, TaskConditions};
    for backend in backends() {
        let fresh = FreshDb::new(backend);
        let db = open(&fresh);
        let mut want = Vec::new();
        for created_at in [1, 2] {
            let task = new_task(created_at);
            db.run_blocking(|c| tasks::insert_task(c, &task, None))
                .unwrap();
            store(&db, task.id, &long_records(200));
            want.splice(0..0, (1..=200).rev().map(|seq| (task.id, seq)));
        }
        index_pending(&db, usize::MAX);
        for json in [serde_json::json!({}), serde_json::json!({"q": "0000"})] {
            let filter = spec(json.clone());
            let conditions = TaskConditions::default();
            let got = search_all(&db, &filter, &conditions, 1_000, |_| {});
            assert_eq!(got, want, "{backend} {json}");
            let first = db
                .run_blocking(|c| search_logs(c, &filter, &conditions, None, 1_000))
                .unwrap();
            let bytes: usize = first.hits.iter().map(|h| h.log.message().len()).sum();
            assert!(
                (MAX_PAGE_BYTES..MAX_PAGE_BYTES + 2 * 65_536).contains(&bytes),
                "{backend} {json}: {bytes} bytes"
            );
            assert_eq!(first.scanned, None, "{backend} {json}: a full page");
        }
    }
}

/// A search with a level or sources visits only the tasks whose counts show such
/// records: an ERROR older than more tasks than a page may visit is found on the
/// first page, not after empty pages that stopped on the tasks visited.
#[test]
fn search_by_level_or_source_skips_tasks_without_such_records() {
    use storage::search::{search_logs, TaskConditions, MAX_TASKS_VISITED};
    for backend in backends() {
        let (_fresh, db, _) = database_with_a_task(backend);
        let one_line = |level, source: &str| LogEntry {
            seq: 1,
            timestamp: Timestamp(1),
            level,
            source: Arc::from(source),
            body: Body::new("line".into(), None),
            group: None,
            mark: None,
            worst: None,
        };
        // Oldest first: an ERROR from `db`, a WARNING from `api`, then INFO tasks.
        let mut lines = vec![
            one_line(LogLevel::Error, "db"),
            one_line(LogLevel::Warning, "api"),
        ];
        lines.extend((0..MAX_TASKS_VISITED + 10).map(|_| one_line(LogLevel::Info, "api")));
        let ids: Vec<TaskId> = db
            .run_blocking(|c| {
                let mut ids = Vec::new();
                for (i, line) in lines.iter().enumerate() {
                    let task = new_task(10 + i as i64);
                    tasks::insert_task(c, &task, None)?;
                    let batch = LogBatchRef {
                        task_id: task.id,
                        entries: std::slice::from_ref(line),
                    };
                    insert_log_batches(c, &[batch])?;
                    ids.push(task.id);
                }
                Ok(ids)
            })
            .unwrap();
        let (error, warning, newest) = (ids[0], ids[1], ids[ids.len() - 1]);
        for (json, want) in [
            (serde_json::json!({"level": "ERROR"}), vec![error]),
            (
                serde_json::json!({"level": "WARNING"}),
                vec![warning, error],
            ),
            (serde_json::json!({"sources": ["db"]}), vec![error]),
            (
                serde_json::json!({"level": "WARNING", "sources": ["api"]}),
                vec![warning],
            ),
        ] {
            let found = db
                .run_blocking(|c| {
                    search_logs(c, &spec(json.clone()), &TaskConditions::default(), None, 10)
                })
                .unwrap();
            let got: Vec<TaskId> = found.hits.iter().map(|h| h.task_id).collect();
            assert_eq!(got, want, "{backend} {json}");
            assert_eq!(
                (found.next, found.scanned),
                (None, None),
                "{backend} {json}"
            );
        }
        // Levels every task has: the newest tasks first, as before.
        let found = db
            .run_blocking(|c| {
                search_logs(
                    c,
                    &spec(serde_json::json!({"level": "INFO"})),
                    &TaskConditions::default(),
                    None,
                    3,
                )
            })
            .unwrap();
        assert_eq!(
            found.hits.first().map(|h| h.task_id),
            Some(newest),
            "{backend}"
        );
        assert_eq!(found.hits.len(), 3, "{backend}");
    }
}

/// On SQLite a text of many trigrams is read through the rarest where the read
/// begins: trigrams every record holds are left out of the FTS5 expression, and the
/// pages hold exactly the matching records whichever are taken.
#[test]
fn sqlite_reads_a_text_through_its_rarest_trigrams() {
    use storage::text_index::{match_terms, rarest_expression, task_key, INDEXED_SEQS};
    let (_fresh, db, task) = database_with_a_task("sqlite");
    let entries: Vec<LogEntry> = (1..=3_000u64)
        .map(|seq| LogEntry {
            seq,
            timestamp: Timestamp(seq as i64),
            level: LogLevel::Info,
            source: Arc::from("plugin"),
            body: Body::new(
                if seq % 1_000 == 7 {
                    format!("record xyz {seq}")
                } else {
                    format!("record {seq}")
                },
                None,
            ),
            group: None,
            mark: None,
            worst: None,
        })
        .collect();
    store(&db, task.id, &entries);
    index_pending(&db, usize::MAX);
    let terms = match_terms(&["record xyz".into()]);
    assert_eq!(terms.len(), 8, "{terms:?}");
    let mut conn = db.get().unwrap();
    let storage::Conn::Sqlite(c) = &mut conn else {
        unreachable!("a SQLite database")
    };
    let key = task_key(c, task.id).unwrap().expect("the task is indexed");
    for backward in [false, true] {
        let expression = rarest_expression(c, key, &terms, (0, INDEXED_SEQS), backward).unwrap();
        assert_eq!(
            expression, r#""d x" AND " xy" AND "xyz""#,
            "backward: {backward}"
        );
    }
    // Few terms are taken as they are.
    let few = match_terms(&["xyz 7".into()]);
    assert_eq!(
        rarest_expression(c, key, &few, (0, INDEXED_SEQS), false).unwrap(),
        few.join(" AND ")
    );
    drop(conn);
    let filter = spec(serde_json::json!({"q": "RECORD xyz"}));
    let want: Vec<u64> = vec![7, 1_007, 2_007];
    for (i, read) in every_read(&db, task.id, &filter).into_iter().enumerate() {
        assert_eq!(read, want, "read {i}");
    }
}

/// The bench's floors store and read rows like the real paths: what `bare` stores
/// reads back through `page_logs`, and `bare::read_rows` reads what the writer stored.
#[test]
fn bare_rows_are_the_same_rows() {
    for backend in backends() {
        let (_fresh, db, task) = database_with_a_task(backend);
        let entries = records(2_500);
        db.run_blocking(|c| storage::bare::insert_rows(c, task.id, &entries))
            .unwrap();
        assert_eq!(
            collect_forward(&db, task.id, &LogFilter::default(), 1000),
            entries,
            "{backend}"
        );
        let other = new_task(2);
        db.run_blocking(|c| tasks::insert_task(c, &other, None))
            .unwrap();
        store(&db, other.id, &entries);
        let page = db
            .run_blocking(|c| storage::bare::read_rows(c, other.id, 100, 1000))
            .unwrap();
        assert_eq!(page, entries[100..1100].to_vec(), "{backend}");
    }
}

/// With several lookups (metadata conditions and a text), SQLite reads through the
/// one with the fewest candidates in the task, and pages hold the same records
/// whichever it takes.
#[test]
fn sqlite_reads_through_the_lookup_with_the_fewest_candidates() {
    use storage::text_index::{fewest, task_key, Candidates};
    let (_fresh, db, task) = database_with_a_task("sqlite");
    let entries = records(3000);
    store(&db, task.id, &entries);
    index_pending(&db, entries.len());
    let choose = |filter: &LogFilter| {
        let mut conn = db.get().unwrap();
        let storage::Conn::Sqlite(c) = &mut conn else {
            unreachable!("a SQLite database")
        };
        let key = task_key(c, task.id).unwrap().expect("an indexed task");
        let lookups = Candidates::for_filter(filter, storage::Backend::Sqlite);
        lookups[fewest(c, key, &lookups).unwrap()].clone()
    };
    // A common value (a tenth of the records) and a rare text: the text.
    let rare_text = spec(serde_json::json!({"q": "record 1234", "meta": {"dashboard_id": 4}}));
    assert!(matches!(choose(&rare_text), Candidates::Text(_)));
    // A rare value and a common text: the value.
    let rare_value =
        spec(serde_json::json!({"q": "synthetic", "meta": {"dashboard_id": 4, "i": 1234}}));
    assert_eq!(
        choose(&rare_value),
        Candidates::Pair(storage::text_index::pair_key("i", "1234").unwrap())
    );
    for filter in [rare_text, rare_value] {
        let want: Vec<u64> = entries
            .iter()
            .filter(|e| filter.matches(e))
            .map(|e| e.seq)
            .collect();
        assert_eq!(want, [1235], "record 1234 is seq 1235");
        let got: Vec<u64> = collect_forward(&db, task.id, &filter, 1)
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(got, want);
    }
}

/// A whole log with no gap is one run, read without its seqs; a log with a gap, or a
/// filter that leaves records out, is its exact runs.
#[test]
fn an_index_of_a_whole_log_is_one_run_and_gaps_are_kept() {
    for backend in backends() {
        let (_fresh, db, task) = database_with_a_task(backend);
        let entries = records(1000);
        store(&db, task.id, &entries);
        let runs = |json: serde_json::Value| {
            let filter = spec(json);
            db.run_blocking(|c| matching_runs(c, task.id, &filter, usize::MAX))
                .unwrap()
        };
        let whole = SeqRuns {
            runs: vec![(1, 1000)],
            count: 1000,
        };
        assert_eq!(runs(serde_json::json!({})), whole, "{backend}");
        assert_eq!(
            runs(serde_json::json!({"sources": ["plugin", "superset_api", "system"]})),
            whole
        );
        // INFO leaves out every fourth record (DEBUG): runs of three.
        let info = runs(serde_json::json!({"level": "INFO"}));
        assert_eq!(info.count, 750);
        assert_eq!(&info.runs[..2], &[(2, 4), (6, 8)], "{backend}");
        // The bound is on runs, not seqs: 250 runs of 750 seqs fit in 250. Past the
        // bound, reading stops once one run more is known, whether from the level
        // bits, record by record (not a level alone) or through the index of
        // warnings (once the bits are gone).
        let bounded = |json: serde_json::Value, max: usize| {
            let filter = spec(json);
            db.run_blocking(|c| matching_runs(c, task.id, &filter, max))
                .unwrap()
        };
        let first_runs = |all: &SeqRuns, n: usize| {
            SeqRuns::from_seqs(
                &all.runs[..n]
                    .iter()
                    .flat_map(|(f, l)| *f..=*l)
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(info.runs.len(), 250);
        assert_eq!(bounded(serde_json::json!({"level": "INFO"}), 250), info);
        assert_eq!(
            bounded(serde_json::json!({"level": "INFO"}), 10),
            first_runs(&info, 11)
        );
        let all_sources = ["plugin", "superset_api", "system"];
        let info_of_all = serde_json::json!({"level": "INFO", "sources": all_sources});
        assert_eq!(bounded(info_of_all.clone(), 250), info, "{backend}");
        assert_eq!(bounded(info_of_all, 10), first_runs(&info, 11), "{backend}");
        let warnings = runs(serde_json::json!({"level": "WARNING"}));
        behind_storage(
            &db,
            "DELETE FROM task_log_level_bits WHERE task_id = $1",
            task.id,
        );
        assert_eq!(runs(serde_json::json!({"level": "WARNING"})), warnings);
        let capped = bounded(serde_json::json!({"level": "WARNING"}), 7);
        assert_eq!(capped, first_runs(&warnings, 8), "{backend}");
        // A whole log is one run however many seqs it holds.
        assert_eq!(bounded(serde_json::json!({}), 1), whole, "{backend}");

        // Seq 1002 never stored: the whole log has a gap.
        let more: Vec<LogEntry> = (1001..=1005)
            .filter(|seq| *seq != 1002)
            .map(|seq| LogEntry {
                seq,
                ..entries[0].clone()
            })
            .collect();
        store(&db, task.id, &more);
        assert_eq!(
            runs(serde_json::json!({})),
            SeqRuns {
                runs: vec![(1, 1001), (1003, 1005)],
                count: 1004,
            },
            "{backend}"
        );
    }
}

/// Runs SQL behind storage's back, for what only an older version or a broken
/// writer would leave: `task`'s id is bound as the first parameter.
fn behind_storage(db: &Db, sql: &str, task: TaskId) {
    use diesel::RunQueryDsl;
    let bound = |q: diesel::query_builder::SqlQuery| {
        q.bind::<diesel::sql_types::Binary, _>(task.as_bytes().to_vec())
    };
    let mut conn = db.get().unwrap();
    match &mut conn {
        storage::Conn::Sqlite(c) => {
            bound(diesel::sql_query(sql.replace("$1", "?")))
                .execute(&mut **c)
                .unwrap();
        }
        storage::Conn::Postgres(c) => {
            bound(diesel::sql_query(sql)).execute(&mut **c).unwrap();
        }
    }
}

/// A level filter's index across many blocks of level bits, with a retried batch, a
/// batch whose seqs were taken with other levels and a gap, equals the one read from
/// the records; it comes from the level bits,
/// and a task whose bits do not account for every record (stored before they were
/// kept) is read from its records.
#[test]
fn a_level_index_is_read_from_the_level_bits_or_else_from_the_records() {
    for backend in backends() {
        let (_fresh, db, task) = database_with_a_task(backend);
        let entries: Vec<LogEntry> = records(140_001)
            .into_iter()
            .filter(|e| e.seq != 70_000)
            .collect();
        for batch in entries.chunks(20_000) {
            store_batch(&db, task.id, batch);
        }
        assert_eq!(store_batch(&db, task.id, &entries[60_000..61_000]), 0);
        // The same seqs again with another level, as from a writer that took them
        // second: nothing stored, and no bit of the level it brought.
        let taken: Vec<LogEntry> = entries[61_000..61_500]
            .iter()
            .map(|e| LogEntry {
                level: LogLevel::Error,
                ..e.clone()
            })
            .collect();
        assert_eq!(store_batch(&db, task.id, &taken), 0);
        let index = |level: &str| {
            let filter = spec(serde_json::json!({"level": level}));
            let runs = db
                .run_blocking(|c| matching_runs(c, task.id, &filter, usize::MAX))
                .unwrap();
            let seqs = db
                .run_blocking(|c| matching_seqs(c, task.id, &filter, usize::MAX))
                .unwrap();
            (runs, SeqRuns::from_seqs(&seqs))
        };
        for level in ["INFO", "WARNING", "ERROR"] {
            let (runs, from_records) = index(level);
            assert_eq!(runs, from_records, "{backend} {level}");
        }
        let (info, _) = index("INFO");
        assert_eq!(info.count, 104_999, "{backend}");
        assert!(info.runs.contains(&(69_998, 69_999)), "{backend}: the gap");

        // A record removed behind storage's back is still in the bits' index: it is
        // what was read.
        behind_storage(
            &db,
            "DELETE FROM task_logs WHERE task_id = $1 AND seq = 100000",
            task.id,
        );
        let (runs, from_records) = index("ERROR");
        assert!(runs.seqs().any(|s| s == 100_000), "{backend}");
        assert!(!from_records.seqs().any(|s| s == 100_000), "{backend}");
        behind_storage(
            &db,
            "DELETE FROM task_log_level_bits WHERE task_id = $1 AND block = 1",
            task.id,
        );
        for level in ["INFO", "WARNING", "ERROR"] {
            let (runs, from_records) = index(level);
            assert_eq!(runs, from_records, "{backend} {level} without the bits");
        }
    }
}

/// Records with the given (level, text), numbered from 1 and placed in their groups
/// as the numbering side does.
fn placed_records(lines: &[(LogLevel, &str)]) -> Vec<LogEntry> {
    let mut groups = protocol::group::Groups::default();
    lines
        .iter()
        .enumerate()
        .map(|(i, (level, text))| {
            let mut entry = LogEntry {
                seq: i as u64 + 1,
                timestamp: Timestamp(1_700_000_000_000_000 + i as i64 * 1000),
                level: *level,
                source: Arc::from("stdout"),
                body: Body::new((*text).to_owned(), None),
                group: None,
                mark: None,
                worst: None,
            };
            groups.place(&mut entry);
            entry
        })
        .collect()
}

/// Groups are stored with their records and listed from the marks: nested, closed
/// with their worst level, and still open (worst read from what followed), with
/// pages carrying each record's group.
#[test]
fn groups_are_listed_from_their_marks_open_or_closed() {
    use protocol::LogLevel::{Debug, Error, Info, Warning};
    for backend in backends() {
        let (_fresh, db, task) = database_with_a_task(backend);
        let entries = placed_records(&[
            (Info, "before"),
            (Info, "::group::build"),
            (Debug, "compiling"),
            (Info, "::group::tests"),
            (Error, "test failed"),
            (Info, "::endgroup::"),
            (Info, "::endgroup::"),
            (Info, "::group::  deploy  "),
            (Info, "::group::upload"),
            (Debug, "sent"),
            (Info, "::endgroup::"),
            (Warning, "slow"),
        ]);
        store(&db, task.id, &entries);
        let listed = db
            .run_blocking(|c| storage::logs::list_groups(c, task.id))
            .unwrap();
        assert!(!listed.truncated, "{backend}");
        let got: Vec<_> = listed
            .groups
            .iter()
            .map(|g| {
                (
                    g.seq,
                    g.parent,
                    g.name.as_str(),
                    g.end_seq,
                    g.lines,
                    g.worst,
                    g.ended.map(|e| e.0 - g.started.0),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (2, None, "build", Some(7), 4, Some(Error), Some(5000)),
                (4, Some(2), "tests", Some(6), 1, Some(Error), Some(2000)),
                (8, None, "deploy", None, 4, Some(Warning), None),
                (9, Some(8), "upload", Some(11), 1, Some(Debug), Some(2000)),
            ],
            "{backend}"
        );
        let everything = LogFilter::default();
        assert_eq!(
            collect_forward(&db, task.id, &everything, 5),
            entries,
            "{backend}: pages carry each record's group"
        );
    }
}

/// A task with more groups than a listing holds lists the first ones and says so.
#[test]
fn a_listing_of_groups_is_bounded() {
    let max = storage::logs::MAX_GROUPS;
    for backend in backends() {
        let (_fresh, db, task) = database_with_a_task(backend);
        let mut lines = Vec::new();
        for _ in 0..max + 3 {
            lines.push((LogLevel::Info, "::group::g"));
            lines.push((LogLevel::Info, "::endgroup::"));
        }
        let entries = placed_records(&lines);
        store(&db, task.id, &entries);
        let listed = db
            .run_blocking(|c| storage::logs::list_groups(c, task.id))
            .unwrap();
        assert!(listed.truncated, "{backend}");
        assert_eq!(listed.groups.len(), max, "{backend}");
        let last = listed.groups.last().unwrap();
        assert_eq!(
            (last.seq, last.end_seq),
            (2 * max as u64 - 1, Some(2 * max as u64))
        );
        assert!(listed
            .groups
            .iter()
            .all(|g| g.end_seq == Some(g.seq + 1) && g.lines == 0));
    }
}
