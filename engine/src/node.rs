//! [`NodeActor`]: this process's place among the nodes sharing the database. Every
//! third of `node_timeout` it records a heartbeat with its running tasks, then, if
//! elected, ends the tasks of nodes silent for longer than `node_timeout`
//! (`interrupted`, with a `system` record saying which node and for how long), and
//! tells its listeners so that followers on this node see them end. It also
//! publishes the remote plugins this node's workers offer, soon after they change,
//! so that every node accepts their tasks.

use std::time::Duration;

use actix::prelude::*;
use protocol::Timestamp;
use storage::nodes;
use storage::Db;

use crate::events::EngineEvents;
use crate::logger::now_micros;
use crate::manager::{ListRunning, TaskManager};
use crate::sink::error_chain;

pub struct NodeActor {
    db: Db,
    id: String,
    timeout: Duration,
    manager: Addr<TaskManager>,
    events: EngineEvents,
    /// A beat in flight: the next waits for it (a slow database must not pile them up).
    beating: bool,
    /// The plugin list last written (`None`: not yet, or the write failed).
    published: Option<String>,
    publishing: bool,
}

/// How soon a worker's plugins are offered through every node.
const PUBLISH_EVERY: Duration = Duration::from_millis(500);

impl NodeActor {
    pub fn new(
        db: Db,
        id: String,
        timeout: Duration,
        manager: Addr<TaskManager>,
        events: EngineEvents,
    ) -> Self {
        NodeActor {
            db,
            id,
            timeout,
            manager,
            events,
            beating: false,
            published: None,
            publishing: false,
        }
    }

    fn beat(&mut self, ctx: &mut Context<Self>) {
        if self.beating {
            return;
        }
        self.beating = true;
        let (db, id, manager) = (self.db.clone(), self.id.clone(), self.manager.clone());
        let timeout = self.timeout.as_micros() as i64;
        ctx.spawn(
            async move {
                let running = manager.send(ListRunning).await.map_or(0, |r| r.len());
                let now = Timestamp(now_micros());
                let me = id.clone();
                db.run(move |c| nodes::heartbeat(c, &me, now, running))
                    .await?;
                let reaped = db
                    .run(move |c| nodes::reap_dead(c, &id, now, timeout))
                    .await?;
                let mut ended = Vec::new();
                for dead in reaped {
                    let task = dead.task;
                    if let Some(info) = db.run(move |c| storage::tasks::get_task(c, task)).await? {
                        ended.push((dead.node, info));
                    }
                }
                Ok::<_, storage::StorageError>(ended)
            }
            .into_actor(self)
            .map(|result, act, _| {
                act.beating = false;
                match result {
                    Ok(ended) => {
                        for (node, task) in ended {
                            log::warn!(
                                "task_id={} node={node} A node stopped answering; its task is now interrupted.",
                                task.id
                            );
                            act.events.status_changed(&task);
                        }
                    }
                    Err(e) => log::warn!(
                        "error=\"{}\" The node heartbeat could not be written; retrying.",
                        error_chain(&e)
                    ),
                }
            }),
        );
    }
}

impl NodeActor {
    /// Writes this node's remote plugins when they differ from what was written.
    fn publish(&mut self, ctx: &mut Context<Self>) {
        if self.publishing || self.db.backend() == storage::Backend::Sqlite {
            return;
        }
        self.publishing = true;
        let (db, id, manager) = (self.db.clone(), self.id.clone(), self.manager.clone());
        let published = self.published.clone();
        ctx.spawn(
            async move {
                let plugins = manager.send(crate::remote::ListRemotePlugins).await?;
                let json = serde_json::to_string(&plugins).unwrap_or_else(|_| "[]".into());
                if published.as_deref() != Some(json.as_str()) {
                    let written = json.clone();
                    db.run(move |c| nodes::set_plugins(c, &id, &written))
                        .await?;
                }
                Ok::<_, crate::EngineError>(json)
            }
            .into_actor(self)
            .map(|result, act, _| {
                act.publishing = false;
                match result {
                    Ok(json) => act.published = Some(json),
                    Err(e) => {
                        act.published = None;
                        log::warn!(
                            "error=\"{}\" This node's plugins could not be published; retrying.",
                            error_chain(&e)
                        );
                    }
                }
            }),
        );
    }
}

impl Actor for NodeActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let every = (self.timeout / 3).max(Duration::from_millis(100));
        self.beat(ctx);
        ctx.run_interval(every, |act, ctx| act.beat(ctx));
        ctx.run_interval(PUBLISH_EVERY, |act, ctx| act.publish(ctx));
    }
}
