//! The hub against stand-in sessions: what it delivers, skips and drops.
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use protocol::{Body, LogEntry, Timestamp};

/// Stands in for a session that never runs: it only counts its wake-ups.
struct Asleep(Arc<AtomicUsize>);

impl Actor for Asleep {
    type Context = Context<Self>;
}

impl Handler<Wake> for Asleep {
    type Result = ();

    fn handle(&mut self, _: Wake, _: &mut Context<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn batch(task: TaskId, seqs: std::ops::Range<u64>, level: LogLevel) -> Arc<LogBatch> {
    Arc::new(LogBatch::new(
        task,
        seqs.map(|seq| LogEntry {
            seq,
            timestamp: Timestamp(0),
            level,
            source: Arc::from("plugin"),
            body: Body::new("x".repeat(100), None),
            group: None,
            mark: None,
            worst: None,
        })
        .collect(),
    ))
}

async fn join(
    hub: &Addr<LogHub>,
    session: SessionId,
    max_bytes: u64,
) -> (Arc<Inbox>, Arc<AtomicUsize>) {
    let inbox = Arc::new(Inbox::new(max_bytes));
    let wakes = Arc::new(AtomicUsize::new(0));
    hub.send(Join {
        session,
        inbox: inbox.clone(),
        wake: Asleep(wakes.clone()).start().recipient(),
    })
    .await
    .unwrap();
    (inbox, wakes)
}

fn logs_in(inbox: &Inbox) -> Vec<u64> {
    inbox
        .take()
        .into_iter()
        .filter_map(|d| match d {
            Delivery::Logs { batch, .. } => Some(batch.first_seq()),
            Delivery::Matched { .. } | Delivery::Status(_) => None,
        })
        .collect()
}

/// The (task, first seq) of each batch delivered for a live search.
fn matched_in(inbox: &Inbox) -> Vec<(TaskId, u64)> {
    inbox
        .take()
        .into_iter()
        .filter_map(|d| match d {
            Delivery::Matched { task_id, batch } => Some((task_id, batch.first_seq())),
            Delivery::Logs { .. } | Delivery::Status(_) => None,
        })
        .collect()
}

/// A live search (`subscribe_all`) gets the batches of every task that its level
/// can pass, followed or not, and nothing once it stops; other sessions get none.
#[actix_rt::test]
async fn a_live_search_gets_every_tasks_batches_its_level_can_pass() {
    let hub = LogHub::new(Duration::from_secs(60)).start();
    let (a, b) = (TaskId(uuid::Uuid::new_v4()), TaskId(uuid::Uuid::new_v4()));
    let (search, _) = join(&hub, 1, 1 << 20).await;
    let (bystander, _) = join(&hub, 2, 1 << 20).await;
    let errors = Interest {
        min_level: Some(LogLevel::Error),
        sources: vec![],
    };
    hub.send(WatchAllLogs {
        session: 1,
        interest: Some(errors),
    })
    .await
    .unwrap();
    let append = |task, seqs, level| {
        hub.send(LogsAppended {
            batch: batch(task, seqs, level),
        })
    };
    append(a, 1..10, LogLevel::Info).await.unwrap();
    append(a, 10..12, LogLevel::Error).await.unwrap();
    append(b, 1..3, LogLevel::Error).await.unwrap();
    assert_eq!(matched_in(&search), [(a, 10), (b, 1)]);
    assert!(bystander.take().is_empty());
    hub.send(WatchAllLogs {
        session: 1,
        interest: None,
    })
    .await
    .unwrap();
    append(b, 3..5, LogLevel::Error).await.unwrap();
    assert!(matched_in(&search).is_empty());
}

#[actix_rt::test]
async fn a_follower_gets_only_batches_its_level_and_sources_can_pass() {
    let hub = LogHub::new(Duration::from_secs(60)).start();
    let task = TaskId(uuid::Uuid::new_v4());
    let (errors_only, _) = join(&hub, 1, 1 << 20).await;
    let (other_source, _) = join(&hub, 2, 1 << 20).await;
    let (everything, wakes) = join(&hub, 3, 1 << 20).await;
    for (session, interest) in [
        (
            1,
            Interest {
                min_level: Some(LogLevel::Error),
                sources: vec![],
            },
        ),
        (
            2,
            Interest {
                min_level: None,
                sources: vec!["stdout".into()],
            },
        ),
        (3, Interest::default()),
    ] {
        hub.send(Follow {
            session,
            task_id: task,
            interest,
        })
        .await
        .unwrap();
    }
    hub.send(LogsAppended {
        batch: batch(task, 1..101, LogLevel::Info),
    })
    .await
    .unwrap();
    hub.send(LogsAppended {
        batch: batch(task, 101..103, LogLevel::Error),
    })
    .await
    .unwrap();
    let stats = hub.send(GetHubStats).await.unwrap();
    assert_eq!(logs_in(&errors_only), [101]);
    assert!(logs_in(&other_source).is_empty());
    assert_eq!(logs_in(&everything), [1, 101]);
    assert_eq!(stats.delivered_batches, 3);
    assert_eq!(stats.skipped_batches, 3);
    assert_eq!(
        wakes.load(Ordering::SeqCst),
        1,
        "one wake-up until the inbox is taken"
    );
}

/// Only what a session leaves untaken counts: one that takes its inbox, however
/// late, is never dropped; one that takes nothing is dropped and woken once it
/// passes its bound, and the others go on.
#[actix_rt::test]
async fn a_session_is_judged_by_what_it_leaves_untaken() {
    let hub = LogHub::new(Duration::from_secs(60)).start();
    let task = TaskId(uuid::Uuid::new_v4());
    let bound = 50_000;
    let (reader, _) = join(&hub, 1, bound).await;
    let (stuck, stuck_wakes) = join(&hub, 2, bound).await;
    for session in [1, 2] {
        hub.send(Follow {
            session,
            task_id: task,
            interest: Interest::default(),
        })
        .await
        .unwrap();
    }
    let per_batch = batch(task, 1..101, LogLevel::Info).bytes_passing(None, &[]);
    let batches = 10 * bound / per_batch;
    let mut read = Vec::new();
    for i in 0..batches {
        let first = 1 + i * 100;
        hub.send(LogsAppended {
            batch: batch(task, first..first + 100, LogLevel::Info),
        })
        .await
        .unwrap();
        if i % 2 == 1 {
            read.extend(logs_in(&reader));
        }
    }
    read.extend(logs_in(&reader));
    assert_eq!(read, (0..batches).map(|i| 1 + i * 100).collect::<Vec<_>>());
    assert!(!reader.overflowed());
    assert!(stuck.overflowed());
    assert!(stuck.take().is_empty(), "its memory is released");
    assert_eq!(
        stuck_wakes.load(Ordering::SeqCst),
        2,
        "woken for its first batch, then to close"
    );
    let stats = hub.send(GetHubStats).await.unwrap();
    assert_eq!(stats.overflowed_sessions, 1);
    assert_eq!(stats.sessions, 1);
}

/// A client that never reads again is dropped within the wait allowed, and what
/// it held released, even when nothing more is sent to it.
#[actix_rt::test]
async fn a_session_that_leaves_a_delivery_untaken_too_long_is_dropped() {
    let hub = LogHub::new(Duration::from_millis(200)).start();
    let task = TaskId(uuid::Uuid::new_v4());
    let (stuck, wakes) = join(&hub, 1, 1 << 20).await;
    hub.send(Follow {
        session: 1,
        task_id: task,
        interest: Interest::default(),
    })
    .await
    .unwrap();
    hub.send(LogsAppended {
        batch: batch(task, 1..11, LogLevel::Info),
    })
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while hub.send(GetHubStats).await.unwrap().sessions == 1 {
        assert!(std::time::Instant::now() < deadline, "never dropped");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(stuck.overflowed());
    assert!(stuck.take().is_empty());
    assert_eq!(wakes.load(Ordering::SeqCst), 2);
    assert_eq!(
        hub.send(GetHubStats).await.unwrap().feeds,
        1,
        "the batch is still pending for others"
    );
}

/// Every seq delivered for a live search, per task, waiting up to `within` for
/// `count`.
async fn matched_seqs(inbox: &Inbox, count: usize, within: Duration) -> Vec<(TaskId, u64)> {
    let mut seqs = Vec::new();
    let deadline = std::time::Instant::now() + within;
    while seqs.len() < count && std::time::Instant::now() < deadline {
        for delivery in inbox.take() {
            if let Delivery::Matched { task_id, batch } = delivery {
                seqs.extend(batch.entries.iter().map(|e| (task_id, e.seq)));
            }
        }
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    seqs
}

/// The tasks of other nodes reach a live search from the database: from the first
/// record of the write announced (what was stored before is history), from after
/// what the hub heard of before the search when it heard of the task, and from the
/// first record when a node of an earlier version did not say where its write began.
#[actix_rt::test]
async fn a_live_search_reads_other_nodes_tasks_from_their_announced_write() {
    use remote::RemoteLogs;
    let fresh = testkit::FreshDb::new("sqlite");
    let db = storage::Db::connect(&storage::DatabaseSettings::new(fresh.url.clone())).unwrap();
    let ids = [(); 3].map(|_| TaskId(uuid::Uuid::new_v4()));
    let store = |task: TaskId, seqs: std::ops::Range<u64>| {
        let batch = batch(task, seqs, LogLevel::Error);
        db.run_blocking(|c| {
            storage::logs::insert_log_batches(
                c,
                &[storage::LogBatchRef {
                    task_id: task,
                    entries: &batch.entries,
                }],
            )
        })
        .unwrap();
    };
    for id in ids {
        let task = protocol::TaskInfo {
            id,
            plugin: "synthetic".into(),
            params: serde_json::json!({}),
            status: protocol::TaskStatus::Running,
            created_at: Timestamp(1),
            started_at: Some(Timestamp(1)),
            finished_at: None,
            result: None,
            error: None,
            created_by: None,
            params_omitted: false,
            node: Some("e1".into()),
            priority: 0,
        };
        db.run_blocking(|c| storage::tasks::insert_task(c, &task, Some("e1")))
            .unwrap();
        store(id, 1..31);
    }
    let [announced, heard, unknown] = ids;
    let announcer = storage::changes::Announcer::spawn(db.clone()).unwrap();
    let hub = LogHub::new(Duration::from_secs(60))
        .reading_from(db.clone(), announcer)
        .start();
    let (search, _) = join(&hub, 1, 1 << 20).await;
    // Heard of before any search: only remembered.
    hub.send(RemoteLogs {
        task: heard,
        first: Some(1),
        seq: 30,
    })
    .await
    .unwrap();
    hub.send(WatchAllLogs {
        session: 1,
        interest: Some(Interest::default()),
    })
    .await
    .unwrap();
    for id in ids {
        store(id, 31..41);
    }
    for (task, first) in [(announced, Some(36)), (heard, Some(36)), (unknown, None)] {
        hub.send(RemoteLogs {
            task,
            first,
            seq: 40,
        })
        .await
        .unwrap();
    }
    let got = matched_seqs(&search, 5 + 10 + 40, Duration::from_secs(10)).await;
    let of = |task| -> Vec<u64> {
        got.iter()
            .filter(|(t, _)| *t == task)
            .map(|(_, seq)| *seq)
            .collect()
    };
    assert_eq!(of(announced), (36..41).collect::<Vec<_>>());
    assert_eq!(of(heard), (31..41).collect::<Vec<_>>());
    assert_eq!(of(unknown), (1..41).collect::<Vec<_>>());
    assert_eq!(got.len(), 55, "{got:?}");
    assert_eq!(hub.send(GetHubStats).await.unwrap().remote_feeds, 3);

    // A task that ended leaves; its status comes after its records.
    let outcome = storage::tasks::TaskOutcome {
        status: protocol::TaskStatus::Success,
        finished_at: Timestamp(2),
        result: None,
        error: None,
    };
    db.run_blocking(|c| storage::tasks::finish_task(c, unknown, &outcome))
        .unwrap();
    hub.send(remote::RemoteStatus { task: unknown })
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while hub.send(GetHubStats).await.unwrap().remote_feeds != 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the ended task's feed stays"
        );
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }

    // Once the search stops, other nodes' writes are only remembered again.
    hub.send(WatchAllLogs {
        session: 1,
        interest: None,
    })
    .await
    .unwrap();
    store(announced, 41..51);
    hub.send(RemoteLogs {
        task: announced,
        first: Some(41),
        seq: 50,
    })
    .await
    .unwrap();
    // A read would take milliseconds here.
    assert!(matched_seqs(&search, 1, Duration::from_millis(500))
        .await
        .is_empty());
    assert_eq!(hub.send(GetHubStats).await.unwrap().remote_feeds, 0);
}
