//! [`Application`]: builds the whole server from its configuration, the same way in
//! production and in tests (which only change the port, the database and the token).

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_web::dev::{Server, ServerHandle, Service as _};
use actix_web::{middleware, web, App, HttpServer};
use engine::{Engine, EngineEvents, EngineSettings, PluginRegistry};
use protocol::Timestamp;
use storage::{DatabaseSettings, Db};

use crate::auth::{self, TokenStore};
use crate::error;
use crate::hub::LogHub;
use crate::state::AppState;
use crate::ws::WsSettings;

/// The HTTP side of the configuration.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// `host:port`; port 0 picks a free one (see [`Application::port`]).
    pub bind: String,
    /// The built console (`web-ui/dist`).
    pub ui_dir: PathBuf,
    pub ws: WsSettings,
    /// HTTP worker threads (default: one per core).
    pub workers: Option<usize>,
    /// Invalid tokens one client address may present per minute before it gets 429.
    pub auth_failures_per_minute: u32,
    /// Origins besides the server's own whose pages may open WebSockets.
    pub ws_allowed_origins: Vec<String>,
    /// An export whose client reads nothing this long is disconnected.
    pub export_stall: Duration,
    /// One INFO line per request (method, path without query, status, bytes, time,
    /// client); at DEBUG otherwise.
    pub access_log: bool,
    /// `/metrics` answers without a token (for a scraper on a private network).
    pub metrics_public: bool,
    /// Serve HTTPS (and WSS) with this certificate and key instead of plain HTTP.
    pub tls: Option<crate::tls::TlsFiles>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            bind: "127.0.0.1:8080".into(),
            ui_dir: PathBuf::from("web-ui/dist"),
            ws: WsSettings::default(),
            workers: None,
            auth_failures_per_minute: crate::auth::DEFAULT_AUTH_FAILURES_PER_MINUTE,
            ws_allowed_origins: Vec::new(),
            export_stall: Duration::from_secs(60),
            access_log: false,
            metrics_public: false,
            tls: None,
        }
    }
}

/// Everything the server needs.
#[derive(Debug, Clone)]
pub struct AppConfig {
    pub database: DatabaseSettings,
    pub engine: EngineSettings,
    pub http: HttpSettings,
    /// `TASKLENS_ADMIN_TOKEN`: stored as the `admin` token at start.
    pub admin_token: Option<Secret>,
    /// `log_format = "json"`: the binary writes its operator log as JSON lines.
    pub json_logs: bool,
}

/// A value that must never reach a log or an error message: its `Debug` and
/// `Display` print `***`; [`Secret::expose`] is the only way to the text.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
    #[error(transparent)]
    Engine(#[from] engine::EngineError),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("cannot listen on {bind}: {source}")]
    Bind {
        bind: String,
        source: std::io::Error,
    },
}

pub struct Application {
    port: u16,
    server: Server,
    handle: AppHandle,
    generated_admin_token: Option<String>,
    db: Db,
}

/// Stops a running [`Application`] in order.
#[derive(Clone)]
pub struct AppHandle {
    server: ServerHandle,
    engine: Engine,
}

impl AppHandle {
    /// Stop accepting connections, interrupt running tasks (each ends once its logs
    /// are durable), flush every record, then stop the HTTP server.
    pub async fn shutdown(&self) {
        log::info!("Shutting down: interrupting tasks and flushing logs.");
        self.server.pause().await;
        self.engine.shutdown().await;
        self.server.stop(true).await;
        log::info!("Shutdown complete; every record is stored.");
    }
}

impl Application {
    /// Opens the database (migrating it), makes sure an admin token exists, starts
    /// the hub and the engine, and binds the listener. Must run in an actix system.
    ///
    /// # Errors
    /// See [`StartError`].
    pub async fn build(config: AppConfig, registry: PluginRegistry) -> Result<Self, StartError> {
        let db_settings = config.database.clone();
        let db = actix_web::rt::task::spawn_blocking(move || Db::connect(&db_settings))
            .await
            .map_err(|e| storage::StorageError::Background(e.to_string()))??;
        let now = Timestamp(engine::logger::now_micros());
        let admin_token = config.admin_token.as_ref().map(|t| t.expose().to_owned());
        let bootstrap_db = db.clone();
        let generated_admin_token = actix_web::rt::task::spawn_blocking(move || {
            auth::bootstrap(&bootstrap_db, admin_token.as_deref(), now)
        })
        .await
        .map_err(|e| storage::StorageError::Background(e.to_string()))??;

        // A client that leaves live records unread as long as it may stay silent is as
        // gone as a silent one.
        let mut hub = LogHub::new(config.http.ws.client_timeout());
        let mut events = EngineEvents::default();
        if db.backend() == storage::Backend::Postgres {
            let announcer = storage::changes::Announcer::spawn(db.clone())?;
            hub = hub.reading_from(db.clone(), announcer.clone());
            events.announce_through(announcer, Arc::from(config.engine.node_id.as_str()));
        }
        let hub = hub.start();
        events.logs = Some(hub.clone().recipient());
        events.persisted = Some(hub.clone().recipient());
        events.status = Some(hub.clone().recipient());
        let engine = Engine::start(db.clone(), registry, config.engine.clone(), events).await?;

        let tokens = TokenStore::new(crate::auth::FailedAuths::new(
            config.http.auth_failures_per_minute,
            std::time::Duration::from_secs(60),
        ));
        tokens.reload(&db).await?;
        spawn_token_refresh(tokens.clone(), db.clone());
        if db.backend() == storage::Backend::Postgres {
            spawn_change_listener(
                config.database.url.clone(),
                Listeners {
                    tokens: tokens.clone(),
                    db: db.clone(),
                    settings: engine.settings.clone(),
                    manager: engine.manager.clone(),
                    hub: hub.clone(),
                    sink: engine.sink.clone(),
                    node: config.engine.node_id.clone(),
                },
            );
        }

        let state = web::Data::new(AppState {
            engine: engine.clone(),
            db: db.clone(),
            hub,
            tokens: tokens.clone(),
            ws: config.http.ws,
            ws_connections: crate::ws::admission::Connections::new(
                config.http.ws.max_connections,
                config.http.ws.max_connections_per_token,
            ),
            ws_allowed_origins: config.http.ws_allowed_origins.clone(),
            heavy_reads: Arc::new(tokio::sync::Semaphore::new(
                crate::routes::logs::HEAVY_READS,
            )),
            history_reads: Arc::new(tokio::sync::Semaphore::new(
                crate::ws::session::HISTORY_READS,
            )),
            export_stall: config.http.export_stall,
            exports: Arc::new(tokio::sync::Semaphore::new(crate::routes::logs::EXPORTS)),
            metrics: Arc::new(crate::metrics::Metrics::new()),
            metrics_public: config.http.metrics_public,
        });
        let token_data = web::Data::new(tokens);
        let listener = TcpListener::bind(&config.http.bind).map_err(|source| StartError::Bind {
            bind: config.http.bind.clone(),
            source,
        })?;
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let ui_dir = Arc::new(config.http.ui_dir.clone());
        let role = config.engine.role;
        let access_level = if config.http.access_log {
            log::Level::Info
        } else {
            log::Level::Debug
        };
        let mut server = HttpServer::new(move || {
            let ui_dir = ui_dir.clone();
            App::new()
                .app_data(state.clone())
                .app_data(token_data.clone())
                .app_data(error::json_config())
                .app_data(error::path_config())
                .app_data(error::query_config())
                .wrap(middleware::Compress::default())
                .wrap(crate::headers::security())
                .wrap_fn(|req, srv| {
                    let path = req.path().to_owned();
                    let started = std::time::Instant::now();
                    let response = srv.call(req);
                    async move {
                        let mut response = response.await?;
                        let status = response.status();
                        crate::headers::set_cache_control(&path, status, response.headers_mut());
                        let request = response.request();
                        if let Some(state) = request.app_data::<web::Data<AppState>>() {
                            state.metrics.observe_request(
                                request.match_pattern().as_deref().unwrap_or("unmatched"),
                                request.method().as_str(),
                                status.as_u16(),
                                started.elapsed(),
                            );
                        }
                        Ok(response)
                    }
                })
                // The path only: a query string may carry a token (`/ws?token=…`).
                .wrap(
                    middleware::Logger::new("client=%a %{method}xi %U %s %b %Dms")
                        .custom_request_replace("method", |req| req.method().to_string())
                        .log_level(access_level),
                )
                .configure(|cfg| crate::routes::configure(cfg, role))
                .configure(|cfg| {
                    if role.serves_api() {
                        crate::ui::configure(cfg, &ui_dir);
                    }
                })
        })
        // Without TCP_NODELAY the last segment of a response can wait for the client's
        // delayed ACK: a flat 40 ms on every page fetch.
        .on_connect(|conn, data| {
            let tcp = conn
                .downcast_ref::<actix_web::rt::net::TcpStream>()
                .or_else(|| {
                    conn.downcast_ref::<crate::tls::TlsStream>()
                        .map(|tls| tls.get_ref().0)
                });
            if let Some(tcp) = tcp {
                let _ = tcp.set_nodelay(true);
                data.insert(crate::ws::admission::ConnSocket::of(tcp));
            }
        })
        .disable_signals()
        .shutdown_timeout(5);
        if let Some(workers) = config.http.workers {
            server = server.workers(workers.max(1));
        }
        let server = match &config.http.tls {
            Some(files) => server.listen_rustls_0_23(listener, crate::tls::server_config(files)?),
            None => server.listen(listener),
        };
        let server = server
            .map_err(|source| StartError::Bind {
                bind: config.http.bind.clone(),
                source,
            })?
            .run();
        let handle = AppHandle {
            server: server.handle(),
            engine,
        };
        Ok(Application {
            port,
            server,
            handle,
            generated_admin_token,
            db,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn database(&self) -> &Db {
        &self.db
    }

    /// The admin token created at this start (the database had none), to be shown
    /// once.
    pub fn generated_admin_token(&self) -> Option<&str> {
        self.generated_admin_token.as_deref()
    }

    pub fn handle(&self) -> AppHandle {
        self.handle.clone()
    }

    /// Serves until SIGINT or SIGTERM, then shuts down in order (see
    /// [`AppHandle::shutdown`]); a second signal spools what is buffered and exits at
    /// once.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.handle.clone();
        let server = self.server;
        actix_web::rt::spawn(async move {
            wait_for_signal().await;
            let stopping = handle.shutdown();
            tokio::pin!(stopping);
            tokio::select! {
                _ = &mut stopping => {}
                _ = wait_for_signal() => {
                    log::warn!("A second signal: what is buffered goes to the spool, and the server exits now.");
                    handle.engine.spool_now().await;
                    std::process::exit(1);
                }
            }
        });
        server.await
    }

    /// Serves until [`AppHandle::shutdown`] is called (tests).
    pub async fn run(self) -> std::io::Result<()> {
        self.server.await
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => log::info!("signal=SIGTERM Received; stopping."),
        _ = int.recv() => log::info!("signal=SIGINT Received; stopping."),
    }
}

/// How often the listening connection is read. Cross-node live records wait for it
/// (at 250 ms they took 190 ms at the median); each read is one non-blocking call.
const LISTEN_POLL: Duration = Duration::from_millis(25);
/// After a break in listening, status changes are read again from this long before
/// the last moment the listener was known to hear.
const RESYNC_MARGIN_MICROS: i64 = 5_000_000;

/// Who acts on other nodes' announcements, and this node's id (its own
/// announcements of records and statuses are already known here).
struct Listeners {
    tokens: TokenStore,
    db: Db,
    settings: actix::Addr<engine::settings::SettingsActor>,
    manager: actix::Addr<engine::manager::TaskManager>,
    hub: actix::Addr<LogHub>,
    sink: actix::Addr<engine::sink::LogSink>,
    node: String,
}

/// Hears other nodes' announcements (PostgreSQL `NOTIFY`: tokens, settings, the
/// queue, cancels, records, statuses, followed tasks) and applies them here: polled every [`LISTEN_POLL`] on a thread of its own, reconnecting
/// after a second when the connection breaks, and then reloading tokens and settings,
/// looking at the queue and having the hub read again the followed tasks' records and
/// the status changes since it last heard ([`crate::hub::remote::Resync`]), since
/// announcements made meanwhile were missed.
fn spawn_change_listener(url: String, to: Listeners) {
    let Listeners {
        tokens,
        db,
        settings,
        manager,
        hub,
        sink,
        node,
    } = to;
    use std::sync::atomic::{AtomicBool, Ordering};
    use storage::changes::{Change, Listener};
    // One reload of each kind waits at most: a flag per kind is set when one is
    // asked for and cleared when it starts, so the channel never fills.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Change>(4);
    let wanted = Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
    let slot = |change: &Change| match change {
        Change::Settings => 1,
        _ => 0,
    };
    let (resync_hub, listening_as) = (hub.clone(), node.clone());
    let receiver_gone = tx.clone();
    let asked = wanted.clone();
    // Queue notices go straight to the task manager, which claims one batch at a
    // time whatever the number of notices.
    let ask = move |change: Change| match change {
        Change::Queued => manager.do_send(engine::manager::ClaimQueued),
        Change::Cancel { task, by } => {
            manager.do_send(engine::manager::CancelRequested { task, by });
        }
        // This node's own writes and statuses reach its hub directly.
        Change::Logs { node: from, .. } | Change::Status { node: from, .. } if from == node => {}
        Change::Logs {
            task, first, seq, ..
        } => hub.do_send(crate::hub::remote::RemoteLogs { task, first, seq }),
        Change::Status { task, .. } => hub.do_send(crate::hub::remote::RemoteStatus { task }),
        Change::Watch { task } => sink.do_send(engine::sink::WatchedElsewhere { task }),
        Change::WatchAll => sink.do_send(engine::sink::SearchedElsewhere),
        Change::Tokens | Change::Settings => {
            if !asked[slot(&change)].swap(true, Ordering::AcqRel) {
                let _ = tx.try_send(change);
            }
        }
    };
    let mut last_heard: Option<Timestamp> = None;
    let spawned = std::thread::Builder::new()
        .name("tasklens-changes".into())
        .spawn(move || loop {
            let mut listener = match Listener::connect(&url, &listening_as) {
                Ok(listener) => listener,
                Err(_) if receiver_gone.is_closed() => return,
                Err(e) => {
                    log::warn!(
                        "error=\"{err}\" Cannot listen for other nodes' changes; retrying.",
                        err = engine::sink::error_chain(&e),
                    );
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            };
            for change in [Change::Tokens, Change::Settings, Change::Queued] {
                ask(change);
            }
            if let Some(heard) = last_heard {
                // Clocks of other nodes may differ a little from this one's.
                let since = Timestamp(heard.as_micros().saturating_sub(RESYNC_MARGIN_MICROS));
                resync_hub.do_send(crate::hub::remote::Resync {
                    since,
                    node: listening_as.clone(),
                });
            }
            loop {
                std::thread::sleep(LISTEN_POLL);
                match listener.poll() {
                    Ok(changes) => {
                        last_heard = Some(Timestamp(engine::logger::now_micros()));
                        changes.into_iter().for_each(&ask)
                    }
                    Err(_) if receiver_gone.is_closed() => return,
                    Err(e) => {
                        log::warn!(
                            "error=\"{err}\" Lost the connection that hears other nodes' changes; reconnecting.",
                            err = engine::sink::error_chain(&e),
                        );
                        break;
                    }
                }
                if receiver_gone.is_closed() {
                    return;
                }
            }
        });
    if let Err(e) = spawned {
        log::error!("error=\"{e}\" Cannot start the thread that hears other nodes' changes.");
        return;
    }
    actix_web::rt::spawn(async move {
        while let Some(change) = rx.recv().await {
            wanted[slot(&change)].store(false, Ordering::Release);
            match change {
                Change::Tokens => {
                    if let Err(e) = tokens.reload(&db).await {
                        log::warn!("error=\"{e}\" Could not reload the token cache; keeping the current one.");
                    }
                }
                Change::Settings => settings.do_send(engine::settings::ReloadLogSettings),
                _ => {}
            }
        }
    });
}

fn spawn_token_refresh(tokens: TokenStore, db: Db) {
    actix_web::rt::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(30));
        every.tick().await;
        loop {
            every.tick().await;
            if let Err(e) = tokens.reload(&db).await {
                log::warn!(
                    "error=\"{e}\" Could not refresh the token cache; keeping the current one."
                );
            }
        }
    });
}
