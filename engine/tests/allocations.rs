//! What logging costs the emitting thread in allocations: a record written with
//! `log_fmt_with` is one allocation (its body), where building a message and a
//! `serde_json::Value` first is several. Counted by this binary's allocator, per
//! thread, on a real engine's task thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

use engine::plugin::builtin::shell::ShellSettings;
use engine::{Engine, EngineEvents, EngineSettings, PluginRegistry};
use protocol::{LogFilter, LogLevel, Role, TaskStatus};
use serde::Serialize;
use storage::{DatabaseSettings, Db, LogQuery};
use testkit::FreshDb;

/// The system allocator, counting the allocations (and growths) of each thread.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: a thread being torn down has no counter left, and is not measured.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

const RECORDS: u64 = 20_000;

#[derive(Serialize)]
struct Fields {
    i: u64,
    dashboard_id: u64,
}

/// Logs `RECORDS` records each way and reports the allocations its thread made.
struct Counter;

impl engine::Describe for Counter {
    fn name(&self) -> &str {
        "counter"
    }
    fn description(&self) -> &str {
        "counts the allocations of logging"
    }
}

impl engine::BlockingPlugin for Counter {
    type Params = serde_json::Value;

    fn run(
        &self,
        ctx: engine::TaskContext,
        _: serde_json::Value,
    ) -> Result<serde_json::Value, engine::PluginError> {
        let log = &ctx.logger;
        // Warm up: the record buffer reaches its size, the sink its first batch.
        for i in 0..2_048 {
            log.log_fmt(LogLevel::Info, format_args!("warm-up {i}"));
        }
        let before = allocations();
        for i in 0..RECORDS {
            log.log_fmt_with(
                LogLevel::Info,
                format_args!("synthetic record {i}"),
                &Fields {
                    i,
                    dashboard_id: i % 10,
                },
            );
        }
        let one_buffer = allocations() - before;
        let before = allocations();
        for i in 0..RECORDS {
            log.info_with(
                format!("synthetic record {i}"),
                serde_json::json!({"i": i, "dashboard_id": i % 10}),
            );
        }
        let through_value = allocations() - before;
        Ok(serde_json::json!({"one_buffer": one_buffer, "through_value": through_value}))
    }
}

#[actix_rt::test]
async fn a_record_logged_with_log_fmt_with_is_one_allocation() {
    let fresh = FreshDb::new("sqlite");
    let mut settings = DatabaseSettings::new(&fresh.url);
    settings.connect_timeout_ms = 1_000;
    let db = Db::connect(&settings).expect("database opens");
    let mut registry = PluginRegistry::with_builtins(ShellSettings::default());
    registry.register_blocking(Counter);
    let engine = Engine::start(
        db,
        registry,
        EngineSettings::default(),
        EngineEvents::default(),
    )
    .await
    .expect("engine starts");
    let task = engine
        .start_task("counter", serde_json::json!({}), None, Role::Admin)
        .await
        .expect("task starts");
    let deadline = Instant::now() + Duration::from_secs(120);
    let done = loop {
        let id = task.id;
        let info = engine
            .db
            .run(move |c| storage::tasks::get_task(c, id))
            .await
            .expect("read task")
            .expect("task exists");
        if info.status.is_terminal() {
            break info;
        }
        assert!(Instant::now() < deadline, "the task did not finish");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(done.status, TaskStatus::Success, "{done:?}");
    let result = done.result.expect("a result");
    let per_record = |key: &str| result[key].as_u64().expect("a count") as f64 / RECORDS as f64;
    let (one_buffer, through_value) = (per_record("one_buffer"), per_record("through_value"));
    println!("allocations per record: log_fmt_with {one_buffer}, info_with {through_value}");
    // One body each; hand-overs to the sink (one per 1,024 records) add a few more.
    assert!(
        (1.0..1.02).contains(&one_buffer),
        "log_fmt_with: {one_buffer} allocations per record"
    );
    assert!(
        through_value >= one_buffer + 2.0,
        "info_with(format!, json!): {through_value} allocations per record"
    );

    // And the records are what was written.
    let id = done.id;
    let page = engine
        .db
        .run(move |c| {
            storage::logs::page_logs(
                c,
                id,
                &LogFilter::default(),
                &LogQuery {
                    after_seq: 2_048 + 7,
                    before_seq: None,
                    limit: 1,
                },
            )
        })
        .await
        .expect("page reads");
    let entry = &page.logs[0];
    assert_eq!(entry.message(), "synthetic record 7");
    assert_eq!(entry.metadata(), Some(r#"{"i":7,"dashboard_id":7}"#));
    engine.shutdown().await;
}
