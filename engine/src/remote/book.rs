//! [`Workers`]: the task manager's record of remote workers and the tasks they run.

use std::collections::{BTreeMap, HashMap, HashSet};

use actix::Addr;
use protocol::{PluginInfo, TaskId, Timestamp, WorkerInfo};

use super::proxy::RemoteTask;
use super::{ConnId, PluginOffer, WorkerLink};
use crate::plugin::TaskContext;

/// One worker, connected or away within its grace.
#[derive(Debug)]
pub struct Worker {
    pub id: String,
    pub name: String,
    pub token: String,
    pub capacity: usize,
    pub plugins: Vec<PluginOffer>,
    /// `None` while the worker is away.
    pub link: Option<WorkerLink>,
    pub connected_at: Timestamp,
    /// Unfinished tasks it runs, and how many of them it submitted itself (those do
    /// not take its places).
    pub tasks: HashSet<TaskId>,
    pub submitted: usize,
    /// Submitted tasks being stored, not yet assigned.
    pub submitting: usize,
    /// Set at every disconnect from [`Workers::next_epoch`], so a grace timer knows
    /// whether it is still current (unique across entries, even a recreated one).
    pub away_epoch: u64,
}

impl Worker {
    fn free(&self) -> usize {
        self.capacity
            .saturating_sub(self.tasks.len().saturating_sub(self.submitted))
    }

    fn offers(&self, plugin: &str) -> bool {
        self.plugins.iter().any(|p| p.name == plugin)
    }
}

/// A task running on a worker.
#[derive(Debug)]
pub struct RemoteRun {
    pub worker: String,
    pub proxy: Addr<RemoteTask>,
    pub ctx: TaskContext,
    /// Durable up to here.
    pub acked: u64,
    pub submitted: bool,
}

#[derive(Debug, Default)]
pub struct Workers {
    pub workers: HashMap<String, Worker>,
    pub runs: HashMap<TaskId, RemoteRun>,
    epochs: u64,
}

impl Workers {
    pub fn next_epoch(&mut self) -> u64 {
        self.epochs += 1;
        self.epochs
    }

    /// The token whose workers offer `plugin` now, if any does: a plugin name
    /// belongs to one token at a time, so one team's worker cannot take another's
    /// tasks (and their params).
    pub fn owner_of(&self, plugin: &str) -> Option<&str> {
        self.workers
            .values()
            .find(|w| w.offers(plugin))
            .map(|w| w.token.as_str())
    }

    /// Whether any worker (connected or away) offers `plugin`.
    pub fn offered(&self, plugin: &str) -> bool {
        self.workers.values().any(|w| w.offers(plugin))
    }

    /// What a worker offers under `plugin`, if any worker (connected or away) does.
    pub fn offer(&self, plugin: &str) -> Option<&PluginOffer> {
        self.workers
            .values()
            .filter(|w| w.link.is_some())
            .chain(self.workers.values().filter(|w| w.link.is_none()))
            .find_map(|w| w.plugins.iter().find(|p| p.name == plugin))
    }

    /// The connected worker offering `plugin` with the most free places.
    pub fn pick(&self, plugin: &str) -> Option<String> {
        self.workers
            .values()
            .filter(|w| w.link.is_some() && w.offers(plugin) && w.free() > 0)
            .max_by(|a, b| a.free().cmp(&b.free()).then(b.id.cmp(&a.id)))
            .map(|w| w.id.clone())
    }

    /// Free places of connected workers, per plugin they offer.
    pub fn free_by_plugin(&self) -> BTreeMap<String, usize> {
        let mut free = BTreeMap::new();
        for w in self.workers.values().filter(|w| w.link.is_some()) {
            for offer in &w.plugins {
                *free.entry(offer.name.clone()).or_default() += w.free();
            }
        }
        free.retain(|_, n| *n > 0);
        free
    }

    /// The plugins offered by any worker, connected or away.
    pub fn offered_names(&self) -> HashSet<String> {
        self.workers
            .values()
            .flat_map(|w| w.plugins.iter().map(|p| p.name.clone()))
            .collect()
    }

    pub fn link_of(&self, worker: &str) -> Option<&WorkerLink> {
        self.workers.get(worker).and_then(|w| w.link.as_ref())
    }

    /// The run of `task` if it belongs to `worker` on connection `conn`.
    pub fn run_on(&self, task: TaskId, worker: &str, conn: ConnId) -> Option<&RemoteRun> {
        let run = self.runs.get(&task)?;
        let current = self.link_of(worker).is_some_and(|l| l.conn == conn);
        (run.worker == worker && current).then_some(run)
    }

    pub fn assign(&mut self, task: TaskId, run: RemoteRun) {
        if let Some(worker) = self.workers.get_mut(&run.worker) {
            worker.tasks.insert(task);
            if run.submitted {
                worker.submitted += 1;
            }
        }
        self.runs.insert(task, run);
    }

    /// Forgets a finished task; returns its run.
    pub fn release(&mut self, task: TaskId) -> Option<RemoteRun> {
        let run = self.runs.remove(&task)?;
        if let Some(worker) = self.workers.get_mut(&run.worker) {
            worker.tasks.remove(&task);
            if run.submitted {
                worker.submitted = worker.submitted.saturating_sub(1);
            }
            if worker.link.is_none() && worker.tasks.is_empty() {
                self.workers.remove(&run.worker);
            }
        }
        Some(run)
    }

    pub fn list(&self) -> Vec<WorkerInfo> {
        let mut list: Vec<WorkerInfo> = self
            .workers
            .values()
            .map(|w| WorkerInfo {
                id: w.id.clone(),
                name: w.name.clone(),
                token: w.token.clone(),
                connected: w.link.is_some(),
                connected_at: w.connected_at,
                capacity: w.capacity,
                running: w.tasks.len(),
                plugins: w.plugins.iter().map(|p| p.name.clone()).collect(),
            })
            .collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        list
    }

    /// Remote plugins by name, each with the workers offering it.
    pub fn catalog(&self) -> Vec<PluginInfo> {
        let mut by_name: BTreeMap<&str, PluginInfo> = BTreeMap::new();
        for worker in self.workers.values() {
            for offer in &worker.plugins {
                let entry = by_name.entry(&offer.name).or_insert_with(|| PluginInfo {
                    name: offer.name.clone(),
                    description: offer.description.clone(),
                    privileged: false,
                    legacy: false,
                    example_params: offer.example_params.clone(),
                    params_schema: offer.params_schema.clone(),
                    workers: Some(Vec::new()),
                });
                if worker.link.is_some() {
                    if let Some(ids) = entry.workers.as_mut() {
                        ids.push(worker.id.clone());
                        ids.sort();
                    }
                }
            }
        }
        by_name.into_values().collect()
    }
}
