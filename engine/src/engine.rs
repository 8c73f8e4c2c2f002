//! [`Engine`]: starts the engine's actors on the current actix system and hands out
//! their addresses.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use protocol::{Role, TaskId, TaskInfo, Timestamp};
use storage::Db;

use crate::batch::BufferGate;
use crate::events::EngineEvents;
use crate::logger::now_micros;
use crate::manager::{
    CancelOutcome, ManagerParts, RequestCancel, Shutdown, StartTask, TaskManager,
};
use crate::plugin::PluginRegistry;
use crate::retention::RetentionActor;
use crate::settings::{LiveSettings, SettingsActor};
use crate::sink::{Flush, LogSink, LogSinkSettings};
use crate::EngineError;

/// What a node does (`role`). Several nodes on one PostgreSQL database may split
/// the work; on SQLite there is one node, `All`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NodeRole {
    /// Serves the API and the console, and runs tasks.
    #[default]
    All,
    /// Serves the API, the console and workers; runs no built-in plugin (its
    /// workers' tasks only).
    Gateway,
    /// Runs tasks; serves only health, metrics and workers.
    Engine,
}

impl NodeRole {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRole::All => "all",
            NodeRole::Gateway => "gateway",
            NodeRole::Engine => "engine",
        }
    }

    /// `all`, `gateway` or `engine`, in any case.
    pub fn parse(text: &str) -> Option<NodeRole> {
        match text.trim().to_ascii_lowercase().as_str() {
            "all" => Some(NodeRole::All),
            "gateway" => Some(NodeRole::Gateway),
            "engine" => Some(NodeRole::Engine),
            _ => None,
        }
    }

    /// Whether it runs built-in plugins.
    pub fn runs_tasks(self) -> bool {
        self != NodeRole::Gateway
    }

    /// Whether it serves the API and the console.
    pub fn serves_api(self) -> bool {
        self != NodeRole::Engine
    }
}

impl<'de> serde::Deserialize<'de> for NodeRole {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        NodeRole::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!("must be all, gateway or engine, not {text:?}"))
        })
    }
}

/// The engine's part of the configuration.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub sink: LogSinkSettings,
    /// Tasks that may run at once; the rest wait, queued.
    pub max_concurrent_tasks: usize,
    /// How often a task's buffered records are handed over when its buffer is not full.
    pub handover_interval_ms: u64,
    /// Delete finished tasks older than this many days (none when `None`).
    pub retention_days: Option<u32>,
    /// How often retention runs (the first sweep comes after at most 5 s).
    pub retention_interval: Duration,
    /// At shutdown, how long plugins get to stop after being asked before their tasks
    /// are ended without them.
    pub shutdown_grace: Duration,
    /// Tasks that may wait queued; beyond it new tasks are refused (429).
    pub max_queued_tasks: usize,
    /// Queued plus running tasks one viewer token may have; beyond it its new tasks
    /// are refused (429). Admins are not limited.
    pub max_tasks_per_viewer: usize,
    /// What the `shell` plugin may do (the server builds its registry with it).
    pub shell: crate::plugin::builtin::shell::ShellSettings,
    /// How long the tasks of a worker that disconnected wait for it to come back.
    pub worker_grace: Duration,
    /// At shutdown, how long the database gets to take what is buffered (after the
    /// tasks' grace) before the rest goes to the spool.
    pub shutdown_flush_timeout: Duration,
    /// Where records go that the database cannot take at shutdown; without one
    /// they are lost (and the log says how many).
    pub spool: Option<crate::spool::Spool>,
    /// This process's name among the nodes sharing the database; stable across its
    /// restarts, so that a restart resolves exactly its own unfinished tasks.
    pub node_id: String,
    /// A node not heard from for this long is dead: a survivor ends its tasks.
    pub node_timeout: Duration,
    pub role: NodeRole,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            sink: LogSinkSettings::default(),
            max_concurrent_tasks: 32,
            handover_interval_ms: 10,
            retention_days: None,
            retention_interval: Duration::from_secs(3_600),
            shutdown_grace: Duration::from_secs(30),
            max_queued_tasks: 1_000,
            max_tasks_per_viewer: 20,
            shell: Default::default(),
            worker_grace: Duration::from_secs(30),
            shutdown_flush_timeout: Duration::from_secs(10),
            spool: None,
            node_id: "local".into(),
            node_timeout: Duration::from_secs(15),
            role: NodeRole::All,
        }
    }
}

/// Addresses of the running engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    pub db: Db,
    pub registry: Arc<PluginRegistry>,
    pub manager: Addr<TaskManager>,
    pub sink: Addr<LogSink>,
    pub settings: Addr<SettingsActor>,
    pub live: LiveSettings,
    pub gate: Arc<BufferGate>,
    /// Whether log writes succeed (for readiness).
    pub writer: Arc<crate::sink::WriterHealth>,
    shutdown_grace: Duration,
    shutdown_flush_timeout: Duration,
    spool: Option<crate::spool::Spool>,
    node_timeout: Duration,
    node: Arc<str>,
}

impl Engine {
    /// Loads the logging settings, marks tasks a previous process left unfinished as
    /// `interrupted`, and starts the actors. Must run inside an actix system.
    ///
    /// # Errors
    /// Database errors while loading settings or recovering tasks.
    pub async fn start(
        db: Db,
        registry: PluginRegistry,
        settings: EngineSettings,
        mut events: EngineEvents,
    ) -> Result<Engine, EngineError> {
        if let Some(spool) = &settings.spool {
            let replayed = crate::spool::replay(&db, spool).await?;
            if replayed != crate::spool::Replayed::default() {
                log::warn!(
                    "rows={} statuses={} skipped_lines={} refused_tasks={} path={} What the last run spooled is now stored.",
                    replayed.rows,
                    replayed.outcomes,
                    replayed.skipped_lines,
                    replayed.refused.len(),
                    spool.path().display()
                );
            }
        }
        let loaded = db.run(storage::settings::load_log_settings).await?;
        let now = Timestamp(now_micros());
        let node = settings.node_id.clone();
        let role = settings.role.as_str();
        db.run(move |c| storage::nodes::register(c, &node, role, now))
            .await?;
        let node = settings.node_id.clone();
        let interrupted = db
            .run(move |c| storage::tasks::interrupt_unfinished(c, &node, now))
            .await?;
        if interrupted > 0 {
            log::warn!(
                "tasks={interrupted} Tasks left running by the previous run are now marked interrupted."
            );
        }
        let live = LiveSettings::new(loaded);
        let gate = Arc::new(BufferGate::new(
            settings.sink.buffer_max_rows,
            settings.sink.buffer_max_bytes,
        ));
        // The manager is addressed before it starts: the sink tells it what is durable.
        let manager_ctx = Context::<TaskManager>::new();
        let manager = manager_ctx.address();
        events.durable = Some(manager.clone().recipient());
        events.rejected = Some(manager.clone().recipient());
        let node_id: Arc<str> = Arc::from(settings.node_id.as_str());
        let shared = db.backend() == storage::Backend::Postgres;
        if shared && events.announce.is_none() {
            let announcer = storage::changes::Announcer::spawn(db.clone())?;
            events.announce = Some((announcer, node_id.clone()));
        }
        let events_for_nodes = events.clone();
        let sink = LogSink::new(
            db.clone(),
            settings.sink,
            gate.clone(),
            events.clone(),
            settings.spool.clone(),
        );
        let sink = if shared {
            sink.announcing_as(node_id.clone())
        } else {
            sink
        };
        let writer = sink.health();
        let sink = sink.start();
        let registry = Arc::new(registry);
        manager_ctx.run(TaskManager::new(ManagerParts {
            db: db.clone(),
            registry: registry.clone(),
            live: live.clone(),
            sink: sink.clone(),
            gate: gate.clone(),
            events,
            max_concurrent: settings.max_concurrent_tasks,
            max_queued: settings.max_queued_tasks,
            max_per_viewer: settings.max_tasks_per_viewer,
            handover_interval: Duration::from_millis(settings.handover_interval_ms.max(1)),
            worker_grace: settings.worker_grace,
            node: Arc::from(settings.node_id.as_str()),
            node_timeout: settings.node_timeout,
            runs_builtin: settings.role.runs_tasks(),
        }));
        crate::node::NodeActor::new(
            db.clone(),
            settings.node_id.clone(),
            settings.node_timeout,
            manager.clone(),
            events_for_nodes,
        )
        .start();
        let settings_actor = SettingsActor::new(db.clone(), live.clone())
            .publishing_to(manager.clone().recipient())
            .start();
        if db.backend() == storage::Backend::Postgres {
            crate::retention::PartitionUpkeep::new(db.clone()).start();
        }
        crate::text_indexer::TextIndexer::new(db.clone(), gate.clone(), writer.clone()).start();
        if let Some(days) = settings.retention_days {
            RetentionActor::new(
                db.clone(),
                days,
                settings.retention_interval.max(Duration::from_millis(10)),
            )
            .start();
        }
        Ok(Engine {
            db,
            registry,
            manager,
            sink,
            settings: settings_actor,
            live,
            gate,
            writer,
            shutdown_grace: settings.shutdown_grace,
            shutdown_flush_timeout: settings.shutdown_flush_timeout,
            spool: settings.spool.clone(),
            node_timeout: settings.node_timeout,
            node: Arc::from(settings.node_id.as_str()),
        })
    }

    /// Creates and queues a task.
    pub async fn start_task(
        &self,
        plugin: &str,
        params: serde_json::Value,
        created_by: Option<String>,
        role: Role,
    ) -> Result<TaskInfo, EngineError> {
        self.manager
            .send(StartTask {
                plugin: plugin.to_owned(),
                params,
                created_by,
                role,
                priority: 0,
            })
            .await?
    }

    /// Creates and queues a task as `start` says (its priority included).
    pub async fn submit(&self, start: StartTask) -> Result<TaskInfo, EngineError> {
        if self.registry.get(&start.plugin).is_none() {
            let here = self.manager.send(crate::remote::ListRemotePlugins).await?;
            if !here.iter().any(|p| p.name == start.plugin) {
                if let Some(offer) = self
                    .offered_elsewhere()
                    .await?
                    .into_iter()
                    .find(|p| p.name == start.plugin)
                {
                    let params_schema = offer.params_schema;
                    return self
                        .manager
                        .send(crate::manager::StartOfferedElsewhere {
                            start,
                            params_schema,
                        })
                        .await?;
                }
            }
        }
        self.manager.send(start).await?
    }

    /// The remote plugins workers of the other live nodes offer, by name.
    async fn offered_elsewhere(&self) -> Result<Vec<protocol::PluginInfo>, EngineError> {
        Ok(crate::remote::offered_elsewhere(&self.db, &self.node, self.node_timeout).await?)
    }

    pub async fn cancel_task(
        &self,
        id: TaskId,
        by: Option<String>,
    ) -> Result<CancelOutcome, EngineError> {
        self.manager.send(RequestCancel { id, by }).await?
    }

    /// Every plugin: the built-in ones, then those of remote workers (connected to
    /// this node, then to other nodes), by name.
    pub async fn plugins(&self) -> Result<Vec<protocol::PluginInfo>, EngineError> {
        let mut all = self.registry.list();
        let remote = self.manager.send(crate::remote::ListRemotePlugins).await?;
        all.extend(remote);
        for offer in self.offered_elsewhere().await? {
            if !all.iter().any(|p| p.name == offer.name) {
                all.push(offer);
            }
        }
        Ok(all)
    }

    /// The remote workers, connected or away within their grace.
    pub async fn workers(&self) -> Result<Vec<protocol::WorkerInfo>, EngineError> {
        Ok(self.manager.send(crate::remote::ListWorkers).await?)
    }

    /// Interrupts every task, waits until each has written its final status, then
    /// until every record is durable; bounded: tasks get `shutdown_grace` (and the
    /// database `shutdown_flush_timeout` more for their final statuses), the records
    /// `shutdown_flush_timeout`, and what the database has not taken by then goes to
    /// the spool. Tasks whose final status could not be written are marked
    /// `interrupted` at the next start.
    pub async fn shutdown(&self) {
        let tasks = self.manager.send(Shutdown {
            grace: self.shutdown_grace,
        });
        tokio::select! {
            _ = tasks => {
                if tokio::time::timeout(self.shutdown_flush_timeout, self.sink.send(Flush { task: None }))
                    .await
                    .is_err()
                {
                    self.spool_now().await;
                }
            }
            // Tasks cannot end while their records cannot be written: once writing has
            // failed for the whole timeout, waiting for them is waiting for nothing.
            _ = self.writer_stalled(self.shutdown_flush_timeout) => {
                log::warn!("Writing to the database has failed for shutdown_flush_timeout; what it has not taken, records and final statuses, is spooled for the next start.");
                self.spool_now().await;
            }
        }
    }

    /// Resolves once log writes have been failing or hanging, with records waiting,
    /// for `limit` without a break.
    async fn writer_stalled(&self, limit: Duration) {
        let mut since: Option<std::time::Instant> = None;
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let records_waiting = self.gate.pending() > 0 || self.spool_pending_bytes() > 0;
            // A final status that cannot be written shows no failing log write when
            // nothing else is logged: its wait counts by itself.
            let stalled = (self.writer.stuck(Duration::from_secs(1)) && records_waiting)
                || self.writer.pending_outcomes() > 0;
            if stalled {
                if since.get_or_insert_with(std::time::Instant::now).elapsed() >= limit {
                    return;
                }
            } else {
                since = None;
            }
        }
    }

    /// Bytes in the spool waiting for the database (for metrics).
    pub fn spool_pending_bytes(&self) -> u64 {
        self.spool
            .as_ref()
            .map_or(0, crate::spool::Spool::pending_bytes)
    }

    /// The nodes sharing the database, this one included.
    ///
    /// # Errors
    /// The database cannot be read.
    pub async fn nodes(&self) -> Result<Vec<protocol::NodeInfo>, EngineError> {
        let now = Timestamp(now_micros());
        let timeout = self.node_timeout.as_micros() as i64;
        Ok(self
            .db
            .run(move |c| storage::nodes::list(c, now, timeout))
            .await?)
    }

    /// What waits in the spool: bytes not yet stored, and the refused records.
    ///
    /// # Errors
    /// The rejected file cannot be read.
    pub async fn spool_report(&self) -> Result<protocol::SpoolReport, EngineError> {
        let Some(spool) = self.spool.clone() else {
            return Ok(protocol::SpoolReport {
                pending_bytes: 0,
                rejected_rows: 0,
                rejected: Vec::new(),
            });
        };
        tokio::task::spawn_blocking(move || {
            let (rejected, rejected_rows) = spool.rejected().map_err(|e| {
                EngineError::Spool(format!("{}: {e}", spool.rejected_path().display()))
            })?;
            Ok(protocol::SpoolReport {
                pending_bytes: spool.pending_bytes(),
                rejected_rows,
                rejected,
            })
        })
        .await
        .map_err(|e| EngineError::Spool(format!("could not be read: {e}")))?
    }

    /// Tries the records the database refused again.
    ///
    /// # Errors
    /// A retry already runs, the spool cannot be read or written, or the database
    /// fails.
    pub async fn retry_rejected(&self) -> Result<protocol::SpoolRetry, EngineError> {
        let done = self.sink.send(crate::sink::RetryRejected).await??;
        Ok(protocol::SpoolRetry {
            stored_rows: done.stored_rows,
            refused_rows: done.refused_rows,
        })
    }

    /// Writes what the database has not taken to the spool, now (a second signal).
    pub async fn spool_now(&self) {
        let pending = self.gate.pending();
        let Some(spool) = self.spool.clone() else {
            log::error!("rows={pending} The database did not take the buffered records and no spool is configured; they are lost.");
            return;
        };
        match self.sink.send(crate::sink::SpoolAll { spool: spool.clone() }).await {
            Ok(Ok(rows)) => log::warn!(
                "rows={rows} path={} The database did not take every record in time; the rest is spooled and will be stored at the next start.",
                spool.path().display()
            ),
            Ok(Err(e)) => log::error!(
                "rows={pending} path={} error=\"{err}\" Spooling failed; these records are lost.",
                spool.path().display(),
                err = crate::sink::error_chain(&e)
            ),
            Err(e) => log::error!("rows={pending} error=\"{e}\" The log sink is gone; these records are lost."),
        }
    }
}
