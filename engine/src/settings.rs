//! Runtime logging settings.
//!
//! [`SettingsActor`] owns the persisted settings: it answers [`GetLogSettings`] and
//! applies [`UpdateLogSettings`] (persist first, then publish). Readers on hot paths
//! hold a [`LiveSettings`] handle, a few atomics read on every emission, so a change
//! reaches running tasks at their next record, far inside the 1 s the design allows.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use protocol::{LogLevel, LogSettings};
use storage::Db;

use crate::plugin::legacy;
use crate::EngineError;

/// Cheap, shared, always-current view of the logging settings.
#[derive(Debug, Clone)]
pub struct LiveSettings {
    inner: Arc<LiveInner>,
}

#[derive(Debug)]
struct LiveInner {
    app_level: AtomicU8,
    task_level: AtomicU8,
    belief_scope: AtomicBool,
}

impl LiveSettings {
    pub fn new(initial: LogSettings) -> Self {
        let live = LiveSettings {
            inner: Arc::new(LiveInner {
                app_level: AtomicU8::new(0),
                task_level: AtomicU8::new(0),
                belief_scope: AtomicBool::new(true),
            }),
        };
        live.store(&initial);
        live
    }

    pub fn get(&self) -> LogSettings {
        LogSettings {
            app_log_level: self.app_level(),
            task_log_level: self.task_level(),
            belief_scope_enabled: self.belief_scope_enabled(),
        }
    }

    pub fn task_level(&self) -> LogLevel {
        level_from(self.inner.task_level.load(Ordering::Relaxed))
    }

    pub fn app_level(&self) -> LogLevel {
        level_from(self.inner.app_level.load(Ordering::Relaxed))
    }

    pub fn belief_scope_enabled(&self) -> bool {
        self.inner.belief_scope.load(Ordering::Relaxed)
    }

    pub(crate) fn store(&self, s: &LogSettings) {
        self.inner
            .app_level
            .store(s.app_log_level.as_i16() as u8, Ordering::Relaxed);
        self.inner
            .task_level
            .store(s.task_log_level.as_i16() as u8, Ordering::Relaxed);
        self.inner
            .belief_scope
            .store(s.belief_scope_enabled, Ordering::Relaxed);
    }
}

fn level_from(raw: u8) -> LogLevel {
    LogLevel::from_i16(raw as i16).unwrap_or(LogLevel::Info)
}

/// Owns the persisted logging settings.
///
/// State: the database and the [`LiveSettings`] it publishes to. Messages:
/// [`GetLogSettings`] and [`UpdateLogSettings`], from the gateway's settings routes.
/// Updates are serialised by the mailbox; each one is persisted before it is
/// published, so a restart never reverts an acknowledged change.
pub struct SettingsActor {
    db: Db,
    live: LiveSettings,
    /// Told of every change once it is in force (the task manager, which passes it on
    /// to running plugins).
    published: Option<Recipient<SettingsPublished>>,
}

impl SettingsActor {
    pub fn new(db: Db, live: LiveSettings) -> Self {
        legacy::apply_levels(&live.get());
        SettingsActor {
            db,
            live,
            published: None,
        }
    }

    pub fn publishing_to(mut self, to: Recipient<SettingsPublished>) -> Self {
        self.published = Some(to);
        self
    }

    /// Puts `settings` in force: loggers, the server log, running plugins.
    fn apply(&mut self, settings: LogSettings) {
        self.live.store(&settings);
        legacy::apply_levels(&settings);
        if let Some(to) = &self.published {
            to.do_send(SettingsPublished(settings));
        }
        log::info!(
            "app_log_level={} task_log_level={} belief_scope_enabled={} Logging settings changed.",
            settings.app_log_level,
            settings.task_log_level,
            settings.belief_scope_enabled
        );
    }
}

/// The logging settings now in force.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct SettingsPublished(pub LogSettings);

impl Actor for SettingsActor {
    type Context = Context<Self>;
}

/// The current logging settings.
#[derive(Debug, Message)]
#[rtype(result = "LogSettings")]
pub struct GetLogSettings;

/// Replace the logging settings; replies with what is now in force.
#[derive(Debug, Message)]
#[rtype(result = "Result<LogSettings, EngineError>")]
pub struct UpdateLogSettings {
    pub settings: LogSettings,
}

/// Another node may have changed the settings: read them again and apply them if
/// they differ.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ReloadLogSettings;

impl Handler<ReloadLogSettings> for SettingsActor {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, _: ReloadLogSettings, _: &mut Context<Self>) -> Self::Result {
        let db = self.db.clone();
        AtomicResponse::new(Box::pin(
            async move { db.run(storage::settings::load_log_settings).await }
                .into_actor(self)
                .map(|loaded, act, _| match loaded {
                    Ok(settings) if settings != act.live.get() => act.apply(settings),
                    Ok(_) => {}
                    Err(e) => log::warn!(
                        "error=\"{}\" The logging settings could not be read again; keeping the current ones.",
                        crate::sink::error_chain(&e)
                    ),
                }),
        ))
    }
}

impl Handler<GetLogSettings> for SettingsActor {
    type Result = MessageResult<GetLogSettings>;

    fn handle(&mut self, _: GetLogSettings, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.live.get())
    }
}

impl Handler<UpdateLogSettings> for SettingsActor {
    type Result = AtomicResponse<Self, Result<LogSettings, EngineError>>;

    fn handle(&mut self, msg: UpdateLogSettings, _: &mut Context<Self>) -> Self::Result {
        let db = self.db.clone();
        let settings = msg.settings;
        // Atomic: the next update waits until this one is stored and published.
        AtomicResponse::new(Box::pin(
            async move {
                db.run(move |c| storage::settings::save_log_settings(c, &settings))
                    .await
            }
            .into_actor(self)
            .map(move |saved, act, _| {
                saved?;
                act.apply(settings);
                Ok(settings)
            }),
        ))
    }
}
