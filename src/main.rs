//! `tasklens`: the server (`serve`) and a command-line client for it.

mod cli;
mod client;
mod config;
mod logfmt;
mod single;

use std::collections::BTreeMap;
use std::io::IsTerminal;

use anyhow::{Context, Result};
use clap::Parser;
use cli::{commands, Cli, Command, ServeArgs};
use engine::plugin::legacy;

#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Serve(args) => {
            // A file size limit (`ulimit -f`) reached by the database or the spool
            // then fails that write with EFBIG, which the writer retries and
            // readiness reports, instead of killing the process with every record
            // it holds.
            // SAFETY: setting a signal disposition before any thread starts.
            unsafe {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            }
            serve(args).map(|()| 0)
        }
        other => {
            // Like other Unix tools, end quietly when the reader of our output goes
            // away (`tasklens logs ID | head`).
            // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
            unsafe {
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            }
            actix_rt::System::new().block_on(client_command(other))
        }
    };
    std::process::exit(code.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        2
    }));
}

async fn client_command(command: Command) -> Result<i32> {
    match command {
        Command::Serve(_) => unreachable!("handled in main"),
        Command::Run(args) => commands::run(args).await,
        Command::Tasks(args) => commands::tasks(args).await,
        Command::Task(args) => commands::task(args).await,
        Command::Logs(args) => commands::logs(args).await,
        Command::Cancel(args) => commands::cancel(args).await,
        Command::Delete(args) => commands::delete(args).await,
        Command::Settings(args) => commands::settings(args).await,
        Command::Cleanup(args) => commands::cleanup(args).await,
        Command::Spool(args) => commands::spool(args).await,
        Command::Tokens(args) => commands::tokens(args).await,
        Command::Exec(args) => cli::exec::exec(args).await,
        Command::Healthcheck(args) => commands::healthcheck(args).await,
        Command::Wait(args) => commands::wait(args).await,
        Command::Search(args) => commands::search(args).await,
        Command::Plugins(args) => commands::plugins(args).await,
        Command::Completions(args) => cli::completions(args.shell),
        Command::Man => cli::man(),
        Command::Login(args) => cli::login::login(args).await,
        Command::Logout => cli::login::logout(),
    }
}

/// Operator logs go to stderr through env_logger, wrapped by the capture logger that
/// routes plugin threads' `log` records into their tasks. `TASKLENS_LOG` (or
/// `RUST_LOG`) narrows what env_logger shows; the runtime `app_log_level` setting
/// decides the level.
fn init_logging(json: bool) -> Result<()> {
    let mut builder = env_logger::Builder::new();
    match std::env::var("TASKLENS_LOG").or_else(|_| std::env::var("RUST_LOG")) {
        Ok(filters) => {
            builder.parse_filters(&filters);
        }
        Err(_) => {
            builder.filter_level(log::LevelFilter::Trace);
        }
    }
    if json {
        builder.format(logfmt::write_json);
    } else {
        builder.format_timestamp_millis();
    }
    legacy::install(builder.build()).context("installing the logger")?;
    Ok(())
}

fn serve(args: ServeArgs) -> Result<()> {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let overrides = config::Overrides {
        bind: args.bind,
        database_url: args.database_url,
        ui_dir: args.ui_dir,
        role: args.role.as_deref().and_then(engine::NodeRole::parse),
    };
    let config = config::load(args.config.as_deref(), &env, &overrides).map_err(|errors| {
        anyhow::anyhow!("the configuration is not valid:\n  {}", errors.join("\n  "))
    })?;
    init_logging(config.json_logs)?;
    let _lock = storage::db::sqlite_file(&config.database.url)
        .map(|file| single::lock(&file))
        .transpose()?;
    // On SQLite the spool sits beside the database file, which is locked already.
    let _spool_lock = match (&_lock, &config.engine.spool) {
        (None, Some(spool)) => Some(single::lock_spool(spool.dir())?),
        _ => None,
    };
    actix_rt::System::new().block_on(async move {
        let db_description = storage::db::describe(&config.database.url);
        let ui_dir = config.http.ui_dir.clone();
        let plugins = engine::PluginRegistry::with_builtins(config.engine.shell.clone());
        let app = gateway::Application::build(config, plugins)
            .await
            .context("starting the server")?;
        let url = format!("http://127.0.0.1:{}/", app.port());
        log::info!("database={db_description} port={} Tasklens is listening.", app.port());
        if !ui_dir.join("index.html").is_file() {
            log::warn!("ui_dir={} The web console is not built; the API works, `/` explains how to build it.", ui_dir.display());
        }
        if let Some(token) = app.generated_admin_token() {
            let banner = "=".repeat(72);
            println!("{banner}\nNo API token existed, so an admin token was created. It is shown only now:\n\n    {token}\n\nKeep it: log in to the console with it, or export TASKLENS_TOKEN={token}\n{banner}");
        }
        if std::io::stdout().is_terminal() {
            println!("Tasklens console: {url}");
        }
        app.run_until_stopped().await.context("serving")
    })
}
