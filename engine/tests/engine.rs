//! The engine on real databases: tasks run in their actors, every record is stored
//! once and in order before the task ends, settings apply at runtime, and database
//! outages lose nothing.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use engine::plugin::builtin::shell::ShellSettings;
use engine::plugin::builtin::synthetic::DEFAULT_SOURCES;
use engine::plugin::legacy;
use engine::sink::GetSinkStats;
use engine::{Engine, EngineEvents, EngineSettings, PluginRegistry};
use protocol::{LogEntry, LogFilter, LogLevel, LogSettings, Role, TaskId, TaskInfo, TaskStatus};
use storage::{DatabaseSettings, Db, LogQuery};
use testkit::{backends, FreshDb, PgCluster};

fn capture_log_records() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let inner = env_logger::Builder::new()
            .filter_level(log::LevelFilter::Warn)
            .is_test(true)
            .build();
        legacy::install(inner).expect("no other logger in this test binary");
    });
}

/// The default settings, as a server has them (SQLite's 5 s busy timeout among
/// them: tasks logging at full speed on a loaded machine hold the write lock for
/// more than 200 ms at times, and a start then failed), but a shorter connect timeout.
fn connect(url: &str) -> Db {
    connect_with(url, |_| {})
}

/// For the tests that lock the SQLite file from another process: a write gives up
/// after 200 ms (to be retried, as after the default 5 s), so that writes fail while
/// the lock is held rather than wait it out.
fn connect_impatient(url: &str) -> Db {
    connect_with(url, |settings| settings.busy_timeout_ms = 200)
}

fn connect_with(url: &str, tweak: impl FnOnce(&mut DatabaseSettings)) -> Db {
    let mut settings = DatabaseSettings::new(url);
    settings.connect_timeout_ms = 1_000;
    tweak(&mut settings);
    Db::connect(&settings).expect("database opens")
}

/// `shell` enabled, as an operator would for these tests.
fn shell_on() -> ShellSettings {
    ShellSettings {
        enabled: true,
        env_passthrough: Vec::new(),
    }
}

async fn start(db: Db) -> Engine {
    start_with(db, |_| {}).await
}

async fn start_with(db: Db, tweak: impl FnOnce(&mut EngineSettings)) -> Engine {
    start_with_plugins(db, PluginRegistry::with_builtins(shell_on()), tweak).await
}

async fn start_with_plugins(
    db: Db,
    registry: PluginRegistry,
    tweak: impl FnOnce(&mut EngineSettings),
) -> Engine {
    capture_log_records();
    let mut settings = EngineSettings::default();
    settings.sink.flush_interval_ms = 50;
    tweak(&mut settings);
    let _levels = match HOLDING_LEVELS.with(|held| held.get()) {
        true => None,
        false => Some(levels_lock().lock().await),
    };
    Engine::start(db, registry, settings, EngineEvents::default())
        .await
        .expect("engine starts")
}

/// A plugin that never looks at its cancel token.
struct Stubborn;

impl engine::Describe for Stubborn {
    fn name(&self) -> &str {
        "stubborn"
    }
    fn description(&self) -> &str {
        "sleeps, ignoring cancellation"
    }
}

impl engine::BlockingPlugin for Stubborn {
    type Params = serde_json::Value;

    fn run(
        &self,
        ctx: engine::TaskContext,
        _: serde_json::Value,
    ) -> Result<serde_json::Value, engine::PluginError> {
        ctx.logger.info("going to sleep");
        std::thread::sleep(Duration::from_secs(60));
        Ok(serde_json::Value::Null)
    }
}

/// Fails with an error text PostgreSQL's TEXT refuses as it is.
struct FailsWithNul;

impl engine::Describe for FailsWithNul {
    fn name(&self) -> &str {
        "fails_with_nul"
    }
    fn description(&self) -> &str {
        "fails with a NUL in its error"
    }
}

impl engine::BlockingPlugin for FailsWithNul {
    type Params = serde_json::Value;

    fn run(
        &self,
        _: engine::TaskContext,
        _: serde_json::Value,
    ) -> Result<serde_json::Value, engine::PluginError> {
        Err(engine::PluginError::Failed("bad\0byte".into()))
    }
}

/// Opens groups with guards: nested, one guard forgotten (left open), then fails.
struct Grouping;

impl engine::Describe for Grouping {
    fn name(&self) -> &str {
        "grouping"
    }
    fn description(&self) -> &str {
        "logs in nested groups and leaves one open"
    }
}

impl engine::BlockingPlugin for Grouping {
    type Params = serde_json::Value;

    fn run(
        &self,
        ctx: engine::TaskContext,
        _: serde_json::Value,
    ) -> Result<serde_json::Value, engine::PluginError> {
        let _outer = ctx.logger.group("outer");
        ctx.logger.info("gated away");
        {
            let _inner = ctx.logger.group("inner\nname");
            ctx.logger.error("failed");
        }
        std::mem::forget(ctx.logger.group("left open"));
        ctx.logger.warning("inside left open");
        ctx.logger
            .with_source("stdout")
            .log_raw(LogLevel::Info, "::group::printed".into(), None);
        Err(engine::PluginError::Failed("gave up".into()))
    }
}

/// Groups pass the level gate, nest, carry their worst level on the close, and the
/// groups a task leaves open are closed before the engine's last word on it.
#[actix_rt::test]
async fn groups_nest_and_those_left_open_close_when_the_task_ends() {
    let _levels = levels_held().await;
    let fresh = FreshDb::new("sqlite");
    let mut registry = PluginRegistry::with_builtins(shell_on());
    registry.register_blocking(Grouping);
    let engine = start_with_plugins(connect(&fresh.url), registry, |_| {}).await;
    set_levels(&engine, LogLevel::Warning, false).await;
    let done = run(&engine, "grouping", serde_json::json!({})).await;
    assert_eq!(done.status, TaskStatus::Failed);
    let got: Vec<_> = all_logs(&engine.db, done.id)
        .into_iter()
        .map(|e| {
            (
                e.seq,
                e.source.to_string(),
                e.body.into_message(),
                e.group,
                e.mark,
                e.worst,
            )
        })
        .collect();
    use protocol::GroupMark::{Close, Open};
    let row = |seq, source: &str, message: &str, group, mark, worst| {
        (
            seq,
            source.to_owned(),
            message.to_owned(),
            group,
            mark,
            worst,
        )
    };
    assert_eq!(
        got,
        vec![
            row(1, "plugin", "::group::outer", None, Some(Open), None),
            row(
                2,
                "plugin",
                "::group::inner name",
                Some(1),
                Some(Open),
                None
            ),
            row(3, "plugin", "failed", Some(2), None, None),
            row(
                4,
                "plugin",
                "::endgroup::",
                Some(2),
                Some(Close),
                Some(LogLevel::Error)
            ),
            row(5, "plugin", "::group::left open", Some(1), Some(Open), None),
            row(6, "plugin", "inside left open", Some(5), None, None),
            row(7, "stdout", "::group::printed", Some(5), Some(Open), None),
            // `_outer` dropped: it closes the innermost group.
            row(8, "plugin", "::endgroup::", Some(7), Some(Close), None),
            row(
                9,
                "system",
                "::endgroup::",
                Some(5),
                Some(Close),
                Some(LogLevel::Warning)
            ),
            row(
                10,
                "system",
                "::endgroup::",
                Some(1),
                Some(Close),
                Some(LogLevel::Error)
            ),
            row(11, "system", "Task failed: gave up", None, None, None),
        ]
    );

    // A shell command's lines mark groups the same way, past the level gate too.
    let shell = run(
        &engine,
        "shell",
        serde_json::json!({"argv": ["sh", "-c", "echo '::group::Build'; echo gated; echo '::endgroup::'"]}),
    )
    .await;
    assert_eq!(shell.status, TaskStatus::Success);
    let got: Vec<_> = all_logs(&engine.db, shell.id)
        .into_iter()
        .map(|e| {
            (
                e.seq,
                e.source.to_string(),
                e.body.into_message(),
                e.group,
                e.mark,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                1,
                "stdout".to_owned(),
                "::group::Build".to_owned(),
                None,
                Some(Open)
            ),
            (
                2,
                "stdout".to_owned(),
                "::endgroup::".to_owned(),
                Some(1),
                Some(Close)
            ),
        ]
    );
}

#[actix_rt::test]
async fn an_error_text_the_database_refuses_is_stored_made_storable() {
    for backend in backends() {
        let fresh = FreshDb::new(backend);
        let mut registry = PluginRegistry::with_builtins(shell_on());
        registry.register_blocking(FailsWithNul);
        let engine = start_with_plugins(connect(&fresh.url), registry, |_| {}).await;
        let done = run(&engine, "fails_with_nul", serde_json::json!({})).await;
        assert_eq!(done.status, TaskStatus::Failed, "{backend}");
        assert_eq!(done.error.as_deref(), Some("bad\u{FFFD}byte"), "{backend}");
    }
}

async fn run(engine: &Engine, plugin: &str, params: serde_json::Value) -> TaskInfo {
    let task = engine
        .start_task(plugin, params, Some("tester".into()), Role::Admin)
        .await
        .expect("task starts");
    wait_done(engine, task.id).await
}

/// Polls until the task has a final status, then reads its logs straight away: a
/// finished task must already have every record.
async fn wait_done(engine: &Engine, id: TaskId) -> TaskInfo {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let task = engine
            .db
            .run(move |c| storage::tasks::get_task(c, id))
            .await
            .expect("read task")
            .expect("task exists");
        if task.status.is_terminal() {
            return task;
        }
        assert!(
            Instant::now() < deadline,
            "task {id} did not finish: {task:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn all_logs(db: &Db, id: TaskId) -> Vec<LogEntry> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = db
            .run_blocking(|c| {
                storage::logs::page_logs(
                    c,
                    id,
                    &LogFilter::default(),
                    &LogQuery {
                        after_seq: after,
                        before_seq: None,
                        limit: 10_000,
                    },
                )
            })
            .expect("read logs");
        out.extend(page.logs);
        if !page.has_more {
            return out;
        }
        after = page.next_after_seq;
    }
}

/// What `synthetic` must have stored for `count` records at gate `level`.
fn expected_synthetic(
    count: u64,
    gate: LogLevel,
    sources: &[&str],
) -> Vec<(LogLevel, String, String, String)> {
    (0..count)
        .filter_map(|i| {
            let level = LogLevel::ALL[(i % 4) as usize];
            (level >= gate).then(|| {
                (
                    level,
                    sources[(i % sources.len() as u64) as usize].to_string(),
                    format!("synthetic record {i}"),
                    format!(r#"{{"i":{i},"dashboard_id":{}}}"#, i % 10),
                )
            })
        })
        .collect()
}

fn shape(logs: &[LogEntry]) -> Vec<(LogLevel, String, String, String)> {
    logs.iter()
        .map(|e| {
            (
                e.level,
                e.source.to_string(),
                e.message().to_owned(),
                e.metadata().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn assert_dense(logs: &[LogEntry]) {
    for (i, e) in logs.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1, "seqs are 1, 2, 3, … without gaps");
    }
    assert!(
        logs.windows(2).all(|w| w[0].timestamp <= w[1].timestamp),
        "timestamps never go back"
    );
}

#[actix_rt::test]
async fn a_fast_task_has_every_record_stored_in_order_when_it_ends() {
    for backend in backends() {
        let fresh = FreshDb::new(backend);
        let engine = start(connect(&fresh.url)).await;
        let started = Instant::now();
        let task = run(&engine, "synthetic", serde_json::json!({"count": 20_000})).await;
        assert_eq!(task.status, TaskStatus::Success, "{backend}: {task:?}");
        let logs = all_logs(&engine.db, task.id);
        assert_eq!(
            shape(&logs),
            expected_synthetic(20_000, LogLevel::Info, &DEFAULT_SOURCES),
            "{backend}"
        );
        assert_dense(&logs);
        assert_eq!(task.result, Some(serde_json::json!({"records": 20_000})));
        eprintln!(
            "{backend}: 20,000 records emitted and stored in {:?}",
            started.elapsed()
        );
    }
}

#[actix_rt::test]
async fn sources_default_to_plugin_and_with_source_tags_records() {
    for backend in backends() {
        let fresh = FreshDb::new(backend);
        let engine = start(connect(&fresh.url)).await;
        let task = run(
            &engine,
            "demo_sync",
            serde_json::json!({"dashboards": 4, "delay_ms": 0}),
        )
        .await;
        assert_eq!(task.status, TaskStatus::Success);
        let logs = all_logs(&engine.db, task.id);
        let plugin: Vec<_> = logs
            .iter()
            .filter(|e| &*e.source == "plugin")
            .map(|e| e.message())
            .collect();
        assert_eq!(
            plugin,
            ["Syncing 4 dashboards.", "Synced 4 dashboards."],
            "{backend}"
        );
        let api: Vec<_> = logs
            .iter()
            .filter(|e| &*e.source == "superset_api")
            .collect();
        assert_eq!(api.len(), 5, "4 GETs and one warning for dashboard 3");
        assert!(api
            .iter()
            .all(|e| e.metadata_value().unwrap()["dashboard_id"].is_u64()));
        assert!(
            logs.iter().all(|e| e.level >= LogLevel::Info),
            "belief_scope is DEBUG, below the default gate"
        );
    }
}

/// The `log` facade's maximum level is one for the whole test process, and every
/// engine sets it: when it starts (to its database's levels) and when its levels
/// change. Held by every test that changes the levels or depends on them, and by
/// every other test while its engine starts ([`start_with_plugins`]): an engine
/// started meanwhile put the maximum back to INFO, and a legacy plugin's
/// `log::debug!` records were lost (a CI run).
fn levels_lock() -> &'static tokio::sync::Mutex<()> {
    static LEVELS: std::sync::OnceLock<tokio::sync::Mutex<()>> = std::sync::OnceLock::new();
    LEVELS.get_or_init(|| tokio::sync::Mutex::new(()))
}

thread_local! {
    /// Whether this test (one a thread) holds [`levels_lock`].
    static HOLDING_LEVELS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// [`levels_lock`], held until dropped.
struct LevelsHeld {
    _guard: tokio::sync::MutexGuard<'static, ()>,
}

impl Drop for LevelsHeld {
    fn drop(&mut self) {
        HOLDING_LEVELS.with(|held| held.set(false));
    }
}

async fn levels_held() -> LevelsHeld {
    let guard = levels_lock().lock().await;
    HOLDING_LEVELS.with(|held| held.set(true));
    LevelsHeld { _guard: guard }
}

async fn set_levels(engine: &Engine, task_level: LogLevel, belief_scope_enabled: bool) {
    engine
        .settings
        .send(engine::settings::UpdateLogSettings {
            settings: LogSettings {
                app_log_level: LogLevel::Info,
                task_log_level: task_level,
                belief_scope_enabled,
            },
        })
        .await
        .unwrap()
        .unwrap();
}

#[actix_rt::test]
async fn task_log_level_gates_what_is_stored_and_belief_scope_follows_its_setting() {
    let _levels = levels_held().await;
    for backend in backends() {
        let fresh = FreshDb::new(backend);
        let engine = start(connect(&fresh.url)).await;

        set_levels(&engine, LogLevel::Warning, true).await;
        let task = run(&engine, "synthetic", serde_json::json!({"count": 400})).await;
        let logs = all_logs(&engine.db, task.id);
        assert_eq!(
            shape(&logs),
            expected_synthetic(400, LogLevel::Warning, &DEFAULT_SOURCES),
            "{backend}"
        );
        assert_dense(&logs);

        set_levels(&engine, LogLevel::Debug, true).await;
        let task = run(
            &engine,
            "demo_sync",
            serde_json::json!({"dashboards": 2, "delay_ms": 0}),
        )
        .await;
        let scope: Vec<_> = all_logs(&engine.db, task.id)
            .into_iter()
            .filter(|e| {
                e.metadata_value()
                    .is_some_and(|m| m["scope"] == "sync_dashboard")
            })
            .map(|e| (e.level, e.body.into_message()))
            .collect();
        let one = [
            (LogLevel::Debug, "Entry".to_string()),
            (LogLevel::Debug, "Coherence:OK".into()),
            (LogLevel::Debug, "Exit".into()),
        ];
        assert_eq!(scope, [one.clone(), one].concat(), "{backend}");

        set_levels(&engine, LogLevel::Debug, false).await;
        let task = run(
            &engine,
            "demo_sync",
            serde_json::json!({"dashboards": 2, "delay_ms": 0}),
        )
        .await;
        let logs = all_logs(&engine.db, task.id);
        assert!(
            logs.iter()
                .all(|e| e.metadata_value().is_none_or(|m| m.get("scope").is_none())),
            "{backend}"
        );
        assert!(!logs.is_empty());

        // Settings survive a restart of the engine.
        drop(engine);
        let engine = start(connect(&fresh.url)).await;
        assert_eq!(engine.live.task_level(), LogLevel::Debug);
        assert!(!engine.live.belief_scope_enabled());
    }
}

#[actix_rt::test]
async fn a_settings_change_reaches_a_running_task_within_a_second() {
    let _levels = levels_held().await;
    let fresh = FreshDb::new("sqlite");
    let engine = start(connect(&fresh.url)).await;
    let task = engine
        .start_task(
            "synthetic",
            serde_json::json!({"count": 6000, "rate": 2000}),
            None,
            Role::Admin,
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    set_levels(&engine, LogLevel::Error, true).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = engine.sink.send(engine::sink::Flush { task: None }).await;
    let boundary = all_logs(&engine.db, task.id)
        .last()
        .map(|e| e.seq)
        .expect("records before the change");
    let done = wait_done(&engine, task.id).await;
    assert_eq!(done.status, TaskStatus::Success);
    let after: Vec<_> = all_logs(&engine.db, task.id)
        .into_iter()
        .filter(|e| e.seq > boundary)
        .collect();
    assert!(!after.is_empty(), "the task kept logging after the change");
    assert!(
        after.iter().all(|e| e.level == LogLevel::Error),
        "only ERROR once the change applied"
    );
}

#[actix_rt::test]
async fn legacy_plugins_log_through_the_log_crate_into_their_own_task() {
    let _levels = levels_held().await;
    for backend in backends() {
        let fresh = FreshDb::new(backend);
        let engine = start(connect(&fresh.url)).await;
        set_levels(&engine, LogLevel::Debug, true).await;
        let (a, b) = (
            engine
                .start_task(
                    "legacy_backup",
                    serde_json::json!({"tables": 3}),
                    None,
                    Role::Viewer,
                )
                .await
                .unwrap(),
            engine
                .start_task(
                    "legacy_backup",
                    serde_json::json!({"tables": 5}),
                    None,
                    Role::Viewer,
                )
                .await
                .unwrap(),
        );
        for (task, tables) in [(a, 3), (b, 5)] {
            let done = wait_done(&engine, task.id).await;
            assert_eq!(done.status, TaskStatus::Success, "{backend}");
            let logs = all_logs(&engine.db, task.id);
            assert!(logs.iter().all(|e| &*e.source == "plugin"));
            let messages: Vec<_> = logs.iter().map(|e| e.message()).collect();
            assert_eq!(
                messages.first(),
                Some(&format!("Backup started for {tables} tables").as_str())
            );
            assert_eq!(messages.last(), Some(&"Backup finished"));
            assert_eq!(
                logs.iter()
                    .filter(|e| e.message().starts_with("Dumping"))
                    .count(),
                tables
            );
            assert_eq!(
                logs.iter().filter(|e| e.level == LogLevel::Warning).count(),
                tables / 2
            );
        }
    }
}

#[actix_rt::test]
async fn twenty_concurrent_tasks_never_mix_their_records() {
    for backend in backends() {
        let fresh = FreshDb::new(backend);
        let engine = start(connect(&fresh.url)).await;
        let mut started = Vec::new();
        for n in 0..20u64 {
            let sources = vec![format!("src{n}")];
            let task = engine
                .start_task(
                    "synthetic",
                    serde_json::json!({"count": 1500 + n * 10, "sources": sources}),
                    None,
                    Role::Viewer,
                )
                .await
                .unwrap();
            started.push((n, task.id));
        }
        for (n, id) in started {
            let done = wait_done(&engine, id).await;
            assert_eq!(done.status, TaskStatus::Success);
            let source = format!("src{n}");
            let logs = all_logs(&engine.db, id);
            assert_eq!(
                shape(&logs),
                expected_synthetic(1500 + n * 10, LogLevel::Info, &[&source]),
                "{backend} task {n}"
            );
            assert_dense(&logs);
        }
    }
}

/// A start whose claim fails once the task is stored answers with the task, queued,
/// and a later claim runs it. (It used to answer with the claim's error while the
/// task stayed queued: a caller that retried then had it twice.)
#[actix_rt::test]
async fn a_start_whose_claim_fails_answers_with_the_queued_task_and_runs_it_later() {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let fresh = FreshDb::new("sqlite");
    let engine = start(connect(&fresh.url)).await;
    // One task first, so that the engine's first look at the queue is over and a
    // start claims in its own trip (unless the 2 s poll's claim is under way just
    // then: the test would pass without trying the claim, a narrow window).
    run(&engine, "synthetic", serde_json::json!({"count": 10})).await;
    let mut conn =
        diesel::SqliteConnection::establish(fresh.url.trim_start_matches("sqlite://")).unwrap();
    conn.batch_execute(
        "PRAGMA busy_timeout = 10000; CREATE TRIGGER refuse_claims BEFORE UPDATE OF node_id ON tasks \
         WHEN NEW.node_id IS NOT NULL BEGIN SELECT RAISE(ABORT, 'claims refused'); END;",
    )
    .unwrap();
    let task = engine
        .start_task(
            "synthetic",
            serde_json::json!({"count": 10}),
            None,
            Role::Viewer,
        )
        .await
        .expect("the task is stored, so its start succeeded");
    conn.batch_execute("DROP TRIGGER refuse_claims;").unwrap();
    let done = wait_done(&engine, task.id).await;
    assert_eq!(done.status, TaskStatus::Success);
    assert_eq!(
        shape(&all_logs(&engine.db, task.id)),
        expected_synthetic(10, LogLevel::Info, &DEFAULT_SOURCES)
    );
}

#[actix_rt::test]
async fn cancelling_stops_a_running_task_and_keeps_its_records() {
    for backend in backends() {
        let fresh = FreshDb::new(backend);
        let engine = start(connect(&fresh.url)).await;
        let task = engine
            .start_task(
                "synthetic",
                serde_json::json!({"count": 1_000_000, "rate": 500}),
                None,
                Role::Viewer,
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let outcome = engine
            .cancel_task(task.id, Some("ops".into()))
            .await
            .unwrap();
        assert_eq!(outcome, engine::manager::CancelOutcome::Requested);
        let done = wait_done(&engine, task.id).await;
        assert_eq!(done.status, TaskStatus::Cancelled, "{backend}");
        assert_eq!(done.error.as_deref(), Some("cancelled by ops"));
        let logs = all_logs(&engine.db, task.id);
        assert_dense(&logs);
        let last = logs.last().unwrap();
        assert_eq!(
            (&*last.source, last.level, last.message()),
            ("system", LogLevel::Warning, "cancelled by ops")
        );
        assert!(
            logs.len() > 50 && logs.len() < 2000,
            "{} records",
            logs.len()
        );
        // A finished task cannot be cancelled again; an unknown one is not found.
        assert!(matches!(
            engine.cancel_task(task.id, None).await,
            Err(engine::EngineError::TaskEnded { .. })
        ));
        let unknown = TaskId(uuid::Uuid::new_v4());
        assert!(matches!(
            engine.cancel_task(unknown, None).await,
            Err(engine::EngineError::TaskNotFound(_))
        ));
    }
}

#[actix_rt::test]
async fn an_asynchronous_actor_plugin_runs_without_a_thread_and_sees_cancel() {
    let fresh = FreshDb::new("sqlite");
    let engine = start(connect(&fresh.url)).await;
    // demo_sync waits on actor timers: 1,000 dashboards of 50 ms would take 50 s.
    let task = engine
        .start_task(
            "demo_sync",
            serde_json::json!({"dashboards": 1000, "delay_ms": 50}),
            None,
            Role::Viewer,
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let asked = Instant::now();
    engine
        .cancel_task(task.id, Some("ops".into()))
        .await
        .unwrap();
    let done = wait_done(&engine, task.id).await;
    assert_eq!(done.status, TaskStatus::Cancelled);
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "the cancel was seen at once"
    );
    let logs = all_logs(&engine.db, task.id);
    assert_dense(&logs);
    assert_eq!(logs[0].message(), "Syncing 1000 dashboards.");
    let requests = logs.iter().filter(|e| &*e.source == "superset_api").count();
    assert!(
        (2..100).contains(&requests),
        "{requests} dashboards before the cancel"
    );
    // Params are typed: an unknown field is refused with the schema's words.
    let err = engine
        .start_task(
            "demo_sync",
            serde_json::json!({"dashbords": 3}),
            None,
            Role::Viewer,
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("unknown field `dashbords`"),
        "{err}"
    );
}

/// Queued tasks start highest priority first, then oldest first, on both backends;
/// a priority out of range is refused.
#[actix_rt::test]
async fn queued_tasks_start_by_priority_then_age() {
    for backend in backends() {
        let fresh = FreshDb::new(backend);
        let engine = start_with(connect(&fresh.url), |s| s.max_concurrent_tasks = 1).await;
        let submit = |priority: i32, params: serde_json::Value| {
            engine.submit(engine::manager::StartTask {
                plugin: "synthetic".into(),
                params,
                created_by: None,
                role: Role::Admin,
                priority,
            })
        };
        let blocker = submit(0, serde_json::json!({"count": 300, "rate": 300}))
            .await
            .unwrap();
        let mut queued = Vec::new();
        for priority in [0, 5, -3, 5, 0] {
            let task = submit(priority, serde_json::json!({"count": 10}))
                .await
                .unwrap();
            assert_eq!(task.priority, priority);
            queued.push(task.id);
        }
        let refused = submit(1001, serde_json::json!({})).await.unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("priority 1001 is out of range"),
            "{refused}"
        );
        wait_done(&engine, blocker.id).await;
        let mut started = Vec::new();
        for id in &queued {
            let done = wait_done(&engine, *id).await;
            assert_eq!(done.status, TaskStatus::Success, "{backend}");
            started.push((done.started_at.unwrap(), *id));
        }
        started.sort();
        let order: Vec<TaskId> = started.into_iter().map(|(_, id)| id).collect();
        assert_eq!(
            order,
            [queued[1], queued[3], queued[0], queued[4], queued[2]],
            "{backend}: 5, 5, 0, 0, -3, each level oldest first"
        );
    }
}

#[actix_rt::test]
async fn queued_tasks_wait_for_a_slot_and_can_be_cancelled_before_they_start() {
    let fresh = FreshDb::new("sqlite");
    let engine = start_with(connect(&fresh.url), |s| s.max_concurrent_tasks = 1).await;
    let first = engine
        .start_task(
            "synthetic",
            serde_json::json!({"count": 300, "rate": 300}),
            None,
            Role::Viewer,
        )
        .await
        .unwrap();
    let second = engine
        .start_task(
            "synthetic",
            serde_json::json!({"count": 10}),
            None,
            Role::Viewer,
        )
        .await
        .unwrap();
    let third = engine
        .start_task(
            "synthetic",
            serde_json::json!({"count": 10}),
            None,
            Role::Viewer,
        )
        .await
        .unwrap();
    assert_eq!(second.status, TaskStatus::Queued);
    let cancelled = engine.cancel_task(third.id, None).await.unwrap();
    assert!(
        matches!(cancelled, engine::manager::CancelOutcome::Cancelled(ref t) if t.status == TaskStatus::Cancelled)
    );
    let first = wait_done(&engine, first.id).await;
    let second = wait_done(&engine, second.id).await;
    assert_eq!(
        (first.status, second.status),
        (TaskStatus::Success, TaskStatus::Success)
    );
    assert!(
        second.started_at.unwrap() >= first.finished_at.unwrap(),
        "one at a time"
    );
    assert!(all_logs(&engine.db, third.id).is_empty());
}

#[actix_rt::test]
async fn bad_requests_are_refused_before_a_task_exists() {
    let fresh = FreshDb::new("sqlite");
    let engine = start(connect(&fresh.url)).await;
    use engine::EngineError::*;
    assert!(matches!(
        engine
            .start_task("nope", serde_json::json!({}), None, Role::Admin)
            .await,
        Err(UnknownPlugin(_))
    ));
    assert!(matches!(
        engine
            .start_task(
                "shell",
                serde_json::json!({"argv": ["true"]}),
                None,
                Role::Viewer
            )
            .await,
        Err(PrivilegedPlugin(_))
    ));
    let err = engine
        .start_task(
            "synthetic",
            serde_json::json!({"count": "many"}),
            None,
            Role::Admin,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, BadParams { .. }));
    assert!(err.to_string().contains("count: invalid type"), "{err}");
    let listed = engine
        .db
        .run(|c| {
            storage::tasks::list_tasks(
                c,
                &storage::tasks::TaskListQuery {
                    limit: 10,
                    ..Default::default()
                },
            )
        })
        .await
        .unwrap();
    assert!(listed.tasks.is_empty());
}

#[actix_rt::test]
async fn shell_output_becomes_records_and_exit_status_decides_the_outcome() {
    let fresh = FreshDb::new("sqlite");
    let engine = start(connect(&fresh.url)).await;
    let script = r#"echo hello; echo oops >&2; echo '{"level":"ERROR","source":"db","message":"lost","metadata":{"table":"t1"}}'; printf 'no newline'"#;
    let task = run(
        &engine,
        "shell",
        serde_json::json!({"argv": ["sh", "-c", script]}),
    )
    .await;
    assert_eq!(task.status, TaskStatus::Success);
    let logs = all_logs(&engine.db, task.id);
    let got: Vec<_> = logs
        .iter()
        .map(|e| (e.level, e.source.to_string(), e.message().to_owned()))
        .collect();
    assert!(got.contains(&(LogLevel::Info, "stdout".into(), "hello".into())));
    assert!(got.contains(&(LogLevel::Warning, "stderr".into(), "oops".into())));
    assert!(got.contains(&(LogLevel::Error, "db".into(), "lost".into())));
    assert!(got.contains(&(LogLevel::Info, "stdout".into(), "no newline".into())));
    let structured = logs.iter().find(|e| e.message() == "lost").unwrap();
    assert_eq!(
        structured.metadata_value(),
        Some(serde_json::json!({"table": "t1"}))
    );

    let failed = run(
        &engine,
        "shell",
        serde_json::json!({"argv": ["sh", "-c", "echo bye; exit 3"]}),
    )
    .await;
    assert_eq!(
        (failed.status, failed.error.as_deref()),
        (TaskStatus::Failed, Some("exit status 3"))
    );
    let last = all_logs(&engine.db, failed.id).pop().unwrap();
    assert_eq!(
        (&*last.source, last.level, last.message()),
        ("system", LogLevel::Error, "Task failed: exit status 3")
    );

    let missing = run(
        &engine,
        "shell",
        serde_json::json!({"argv": ["/no/such/program"]}),
    )
    .await;
    assert_eq!(missing.status, TaskStatus::Failed);
    assert!(missing.error.unwrap().contains("cannot start"));

    let slow = run(
        &engine,
        "shell",
        serde_json::json!({"argv": ["sleep", "30"], "timeout_s": 0.5}),
    )
    .await;
    assert_eq!(
        (slow.status, slow.error.as_deref()),
        (TaskStatus::Failed, Some("timed out after 0.5 s"))
    );
}

#[actix_rt::test]
async fn cancelling_a_shell_task_kills_its_whole_process_group() {
    let fresh = FreshDb::new("sqlite");
    let engine = start(connect(&fresh.url)).await;
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("child.pid");
    // The grandchild writes its pid and would otherwise live for a minute.
    let script = format!(
        "sleep 60 & echo $! > {}; echo started; wait",
        marker.display()
    );
    let task = engine
        .start_task(
            "shell",
            serde_json::json!({"argv": ["sh", "-c", script]}),
            None,
            Role::Admin,
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !marker.exists() || std::fs::read_to_string(&marker).unwrap().trim().is_empty() {
        assert!(Instant::now() < deadline, "the command did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let grandchild: i32 = std::fs::read_to_string(&marker)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    engine.cancel_task(task.id, None).await.unwrap();
    let done = wait_done(&engine, task.id).await;
    assert_eq!(done.status, TaskStatus::Cancelled);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A killed orphan may linger as a zombie until init reaps it; that is dead.
    let state = std::fs::read_to_string(format!("/proc/{grandchild}/stat")).unwrap_or_default();
    let alive = state
        .rsplit(") ")
        .next()
        .is_some_and(|rest| !rest.starts_with('Z') && !rest.is_empty());
    assert!(!alive, "the grandchild {grandchild} survived the cancel");
}

/// With `retention_days` set, the periodic sweep deletes finished tasks older than
/// that, with their logs, and leaves running ones alone.
#[actix_rt::test]
async fn retention_deletes_old_finished_tasks_periodically() {
    let fresh = FreshDb::new("sqlite");
    let engine = start_with(connect(&fresh.url), |s| {
        s.retention_days = Some(0);
        s.retention_interval = Duration::from_millis(200);
    })
    .await;
    let done = run(&engine, "synthetic", serde_json::json!({"count": 50})).await;
    let running = engine
        .start_task(
            "synthetic",
            serde_json::json!({"count": 100_000, "rate": 100}),
            None,
            Role::Viewer,
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let id = done.id;
    while engine
        .db
        .run(move |c| storage::tasks::get_task(c, id))
        .await
        .unwrap()
        .is_some()
    {
        assert!(Instant::now() < deadline, "the finished task was not swept");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        all_logs(&engine.db, done.id).is_empty(),
        "its logs went with it"
    );
    let rid = running.id;
    let still = engine
        .db
        .run(move |c| storage::tasks::get_task(c, rid))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        still.status,
        TaskStatus::Running,
        "a running task is never swept"
    );
}

/// A previous run's running tasks end interrupted; what waited in the queue (and
/// what it had claimed but not started) runs now.
#[actix_rt::test]
async fn a_previous_runs_running_tasks_are_interrupted_and_its_queue_runs() {
    for backend in backends() {
        let fresh = FreshDb::new(backend);
        let db = connect(&fresh.url);
        let task = |status, started| TaskInfo {
            id: TaskId(uuid::Uuid::now_v7()),
            plugin: "synthetic".into(),
            params: serde_json::json!({"count": 10}),
            status,
            created_at: protocol::Timestamp(1),
            started_at: started,
            finished_at: None,
            result: None,
            error: None,
            created_by: None,
            params_omitted: false,
            node: None,
            priority: 0,
        };
        let stale = task(TaskStatus::Running, Some(protocol::Timestamp(2)));
        let waiting = task(TaskStatus::Queued, None);
        let claimed = task(TaskStatus::Queued, None);
        let elsewhere = task(TaskStatus::Running, Some(protocol::Timestamp(2)));
        for (t, node) in [
            (&stale, None),
            (&waiting, None),
            (&claimed, Some("local")),
            (&elsewhere, Some("other")),
        ] {
            db.run_blocking(|c| storage::tasks::insert_task(c, t, node))
                .unwrap();
        }
        let engine = start(db).await;
        let status = |id: TaskId| {
            let db = engine.db.clone();
            async move {
                db.run(move |c| storage::tasks::get_task(c, id))
                    .await
                    .unwrap()
                    .unwrap()
                    .status
            }
        };
        assert_eq!(status(stale.id).await, TaskStatus::Interrupted, "{backend}");
        assert_eq!(status(elsewhere.id).await, TaskStatus::Running, "{backend}");
        for queued in [waiting.id, claimed.id] {
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while status(queued).await != TaskStatus::Success {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{backend}: {queued} did not run"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(all_logs(&engine.db, queued).len(), 7, "{backend}");
        }
    }
}

#[actix_rt::test]
async fn graceful_shutdown_interrupts_tasks_and_keeps_every_record() {
    for backend in backends() {
        let fresh = FreshDb::new(backend);
        // A long flush interval: only the shutdown's flush can make these durable.
        let engine = start_with(connect(&fresh.url), |s| s.sink.flush_interval_ms = 60_000).await;
        let task = engine
            .start_task(
                "synthetic",
                serde_json::json!({"count": 1_000_000, "rate": 3000}),
                None,
                Role::Viewer,
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(600)).await;
        engine.shutdown().await;
        let done = engine
            .db
            .run(move |c| storage::tasks::get_task(c, task.id))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(done.status, TaskStatus::Interrupted, "{backend}");
        let stats = engine.sink.send(GetSinkStats).await.unwrap();
        assert_eq!(stats.durable_rows, stats.appended_rows);
        let logs = all_logs(&engine.db, task.id);
        assert_dense(&logs);
        assert_eq!(logs.len() as u64, stats.appended_rows, "{backend}");
        assert!(logs.len() > 500);
    }
}

/// PostgreSQL's TEXT refuses NUL; a NUL in a line must neither be lost nor block
/// the writer for every other task.
#[actix_rt::test]
async fn a_line_with_a_nul_character_is_stored_with_a_replacement() {
    for backend in backends() {
        let fresh = FreshDb::new(backend);
        let engine = start(connect(&fresh.url)).await;
        let task = run(
            &engine,
            "shell",
            serde_json::json!({"argv": ["printf", "a\\000b\\n"]}),
        )
        .await;
        assert_eq!(task.status, TaskStatus::Success, "{backend}: {task:?}");
        let logs = all_logs(&engine.db, task.id);
        assert_eq!(logs.len(), 1, "{backend}");
        assert_eq!(logs[0].message(), "a\u{FFFD}b");
        let after = run(&engine, "synthetic", serde_json::json!({"count": 10})).await;
        assert_eq!(
            all_logs(&engine.db, after.id).len(),
            7,
            "{backend}: the writer goes on"
        );
    }
}

/// At shutdown a task whose plugin ignores cancellation is ended as interrupted
/// after the grace period, with what it logged, instead of holding shutdown forever.
#[actix_rt::test]
async fn shutdown_ends_tasks_whose_plugins_ignore_cancellation() {
    let fresh = FreshDb::new("sqlite");
    let mut registry = PluginRegistry::with_builtins(shell_on());
    registry.register_blocking(Stubborn);
    let engine = start_with_plugins(connect(&fresh.url), registry, |s| {
        s.shutdown_grace = Duration::from_millis(500);
    })
    .await;
    let task = engine
        .start_task("stubborn", serde_json::json!({}), None, Role::Viewer)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    engine.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "shutdown waited for the plugin"
    );
    let id = task.id;
    let done = engine
        .db
        .run(move |c| storage::tasks::get_task(c, id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status, TaskStatus::Interrupted);
    let logs = all_logs(&engine.db, task.id);
    assert_eq!(logs[0].message(), "going to sleep");
}

/// Not a test on its own: the child process of
/// `records_survive_a_sqlite_database_locked_by_another_process`.
#[test]
#[ignore]
fn hold_sqlite_lock_helper() {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let Ok(spec) = std::env::var("TASKLENS_HOLD_LOCK") else {
        return;
    };
    let (path, millis) = spec.rsplit_once('|').unwrap();
    let mut conn = diesel::SqliteConnection::establish(path).unwrap();
    conn.batch_execute("PRAGMA busy_timeout = 10000; BEGIN EXCLUSIVE;")
        .unwrap();
    println!("locked");
    std::thread::sleep(Duration::from_millis(millis.parse().unwrap()));
    conn.batch_execute("COMMIT;").unwrap();
}

/// Runs `hold_sqlite_lock_helper` in a child process holding an exclusive lock on
/// the SQLite file for `millis`; returns once the lock is taken.
fn lock_sqlite_file(path: &std::path::Path, millis: u64) -> std::process::Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "hold_sqlite_lock_helper",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TASKLENS_HOLD_LOCK", format!("{}|{millis}", path.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|l| l.unwrap().contains("locked")),
        "the helper took the lock"
    );
    // Keep reading, or the helper dies of a broken pipe when it reports its result.
    std::thread::spawn(move || lines.for_each(drop));
    child
}

#[actix_rt::test]
async fn records_survive_a_sqlite_database_locked_by_another_process() {
    let mut fresh = FreshDb::new("sqlite");
    let path = fresh.scratch_dir().join("tasklens.db");
    let engine = start(connect_impatient(&fresh.url)).await;
    let task = engine
        .start_task(
            "synthetic",
            serde_json::json!({"count": 8000, "rate": 2000}),
            None,
            Role::Viewer,
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut child = lock_sqlite_file(&path, 3000);
    let failed_before = engine.sink.send(GetSinkStats).await.unwrap().failed_flushes;
    let done = wait_done(&engine, task.id).await;
    assert!(child.wait().unwrap().success());
    assert_eq!(done.status, TaskStatus::Success);
    let stats = engine.sink.send(GetSinkStats).await.unwrap();
    assert!(
        stats.failed_flushes > failed_before,
        "flushes failed while the database was locked"
    );
    let logs = all_logs(&engine.db, task.id);
    assert_eq!(
        shape(&logs),
        expected_synthetic(8000, LogLevel::Info, &DEFAULT_SOURCES)
    );
    assert_dense(&logs);
}

/// A cancel that arrives once the task's outcome is decided, while its last records
/// and status still wait for the database, is refused with that outcome: the task
/// has ended, whatever the database says yet. (It used to be accepted, and the task
/// then ended `failed` all the same.)
#[actix_rt::test]
async fn a_cancel_after_the_outcome_is_decided_is_refused_with_it() {
    let mut fresh = FreshDb::new("sqlite");
    let path = fresh.scratch_dir().join("tasklens.db");
    let engine = start(connect_impatient(&fresh.url)).await;
    let task = engine
        .start_task(
            "shell",
            serde_json::json!({"argv": ["sh", "-c", "sleep 2; exit 3"]}),
            None,
            Role::Admin,
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !engine
        .manager
        .send(engine::manager::ListRunning)
        .await
        .unwrap()
        .contains(&task.id)
    {
        assert!(Instant::now() < deadline, "the task never ran");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The database is held while the command exits: its "Task failed" record is
    // handed to the sink (the outcome is decided) but cannot be written.
    let appended = engine.sink.send(GetSinkStats).await.unwrap().appended_rows;
    let mut child = lock_sqlite_file(&path, 6000);
    while engine.sink.send(GetSinkStats).await.unwrap().appended_rows == appended {
        assert!(Instant::now() < deadline, "the command never ended");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let answer = engine
        .manager
        .send(engine::manager::RequestCancel {
            id: task.id,
            by: Some("tester".into()),
        })
        .await
        .unwrap();
    match answer {
        Err(engine::EngineError::TaskEnded { status, .. }) => {
            assert_eq!(status, TaskStatus::Failed)
        }
        other => panic!("the cancel should be refused as too late: {other:?}"),
    }
    assert!(child.wait().unwrap().success());
    let done = wait_done(&engine, task.id).await;
    assert_eq!(done.status, TaskStatus::Failed);
}

#[actix_rt::test]
async fn records_survive_postgresql_going_down_for_a_few_seconds() {
    if !backends().contains(&"postgres") {
        return;
    }
    let cluster = PgCluster::start();
    let url = testkit::replace_database(&cluster.admin_url(), "outage");
    testkit::create_database(&cluster.admin_url(), "outage");
    let engine = start(connect(&url)).await;
    let task = engine
        .start_task(
            "synthetic",
            serde_json::json!({"count": 12_000, "rate": 2000}),
            None,
            Role::Viewer,
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    cluster.stop_server();
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.start_server();
    let done = wait_done(&engine, task.id).await;
    assert_eq!(done.status, TaskStatus::Success);
    let stats = engine.sink.send(GetSinkStats).await.unwrap();
    assert!(
        stats.failed_flushes > 0,
        "flushes failed while the server was down"
    );
    let logs = all_logs(&engine.db, task.id);
    assert_eq!(
        shape(&logs),
        expected_synthetic(12_000, LogLevel::Info, &DEFAULT_SOURCES)
    );
    assert_dense(&logs);
}

#[actix_rt::test]
async fn emitters_are_slowed_not_dropped_when_the_buffer_is_full() {
    let peak = peak_while_locked(
        |s| {
            s.sink.buffer_max_rows = 3000;
            s.sink.batch_max_rows = 1000;
        },
        |gate| gate.pending() as u64,
    )
    .await;
    // One emitter may overshoot the bound by at most one hand-over.
    assert!(
        peak <= 3000 + engine::logger::HANDOVER_ROWS as u64,
        "pending rows peaked at {peak}"
    );
    assert!(
        peak >= 3000,
        "the database lock held records back (peak {peak})"
    );
}

#[actix_rt::test]
async fn the_buffer_is_bounded_in_bytes_too() {
    const MAX: u64 = 200 * 1024;
    let peak = peak_while_locked(
        |s| {
            s.sink.buffer_max_rows = 1_000_000;
            s.sink.buffer_max_bytes = MAX;
            s.sink.batch_max_rows = 1000;
        },
        |gate| gate.pending_bytes(),
    )
    .await;
    // A synthetic record is well under 400 bytes: one hand-over of overshoot at most.
    assert!(
        peak <= MAX + 400 * engine::logger::HANDOVER_ROWS as u64,
        "pending bytes peaked at {peak}"
    );
    assert!(
        peak >= MAX,
        "the database lock held records back (peak {peak})"
    );
}

/// Runs a 60,000-record task while another process locks the SQLite file for 2.5 s;
/// returns the peak of `measure` over the gate meanwhile, after checking that every
/// record was stored in the end.
async fn peak_while_locked(
    tweak: impl FnOnce(&mut EngineSettings),
    measure: impl Fn(&engine::batch::BufferGate) -> u64,
) -> u64 {
    let mut fresh = FreshDb::new("sqlite");
    let path = fresh.scratch_dir().join("tasklens.db");
    let engine = start_with(connect_impatient(&fresh.url), tweak).await;
    let task = engine
        .start_task(
            "synthetic",
            serde_json::json!({"count": 60_000, "rate": 15_000}),
            None,
            Role::Viewer,
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut child = lock_sqlite_file(&path, 2500);
    let gate = Arc::clone(&engine.gate);
    let mut peak = 0;
    let deadline = Instant::now() + Duration::from_millis(2000);
    while Instant::now() < deadline {
        peak = peak.max(measure(&gate));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let done = wait_done(&engine, task.id).await;
    assert!(child.wait().unwrap().success());
    assert_eq!(done.status, TaskStatus::Success);
    assert_eq!(all_logs(&engine.db, task.id).len(), 45_000);
    peak
}
