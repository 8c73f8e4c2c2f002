//! The command line: `serve` runs the server; every other command talks to a running
//! server over its API (`--server`, `--token`, or `TASKLENS_SERVER`/`TASKLENS_TOKEN`).

pub mod commands;
pub mod exec;
pub mod follow;
pub mod live_search;
pub mod login;
pub mod output;

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand};
use protocol::{FilterSpec, LogLevel, TaskId, TaskStatus, Timestamp};
use storage::logs::MAX_PAGE_LIMIT;
use storage::tasks::MAX_TASK_PAGE;

#[derive(Debug, Parser)]
#[command(
    name = "tasklens",
    version,
    about = "Task engine with per-task logs: stored in batches, streamed live, browsed in a web console.",
    after_help = "Exit codes: 0 success; 1 the followed task failed; 3 it was cancelled; 4 it was interrupted; 2 any other error."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: REST API, live log streaming and the web console.
    Serve(ServeArgs),
    /// Start a task (and optionally follow its logs until it ends).
    Run(RunArgs),
    /// List tasks, newest first.
    Tasks(TasksArgs),
    /// Show one task.
    Task(TaskArgs),
    /// Print a task's logs, filtered; --follow streams them live until the task ends.
    Logs(LogsArgs),
    /// Find records across all tasks (newest task first, latest record first):
    /// `tasklens search "deadlock detected" --since 7d`.
    Search(SearchArgs),
    /// Cancel a queued or running task.
    Cancel(TaskArgs),
    /// Delete a finished task and its logs (admin).
    Delete(TaskArgs),
    /// Show or change the logging settings (changing needs an admin token).
    Settings(SettingsArgs),
    /// Delete finished tasks older than a given age, with their logs (admin).
    Cleanup(CleanupArgs),
    /// Manage API tokens (admin).
    Tokens(TokensArgs),
    /// Show what waits in the server's spool: records not yet in the database, and
    /// records the database refuses (admin); --retry tries the refused ones again.
    Spool(SpoolArgs),
    /// Run a local command as a task: its output becomes the task's log, its exit
    /// code the task's status and this command's exit code (needs a worker or
    /// admin token).
    Exec(ExecArgs),
    /// Exit 0 when the server is ready (database reachable, log records being
    /// written), 1 when it is not: for container health checks.
    Healthcheck(HealthcheckArgs),
    /// Wait until a task ends and exit with its status (0 success, 1 failed, 3
    /// cancelled, 4 interrupted; 2 on an error or when --timeout passes first).
    Wait(WaitArgs),
    /// List the plugins: built-in ones, then those workers offer.
    Plugins(PluginsArgs),
    /// Print a shell completion script, e.g. `source <(tasklens completions bash)`.
    Completions(CompletionsArgs),
    /// Print the manual page (roff), e.g. `tasklens man | man -l -`.
    Man,
    /// Check a token against a server and save both (mode 0600) for later commands.
    Login(LoginArgs),
    /// Forget the saved login.
    Logout,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The server's URL, such as https://tasklens.example.com.
    pub url: String,
    /// The token (default: TASKLENS_TOKEN, else read from standard input).
    #[arg(long, env = "TASKLENS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM certificates to trust besides the public roots (a private CA).
    #[arg(long, env = "TASKLENS_CA_CERT", value_name = "PEM")]
    pub ca_cert: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    pub task: TaskId,
    /// Give up after this many seconds (exit 2); without it, wait as long as it takes.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=604_800))]
    pub timeout: Option<u64>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct PluginsArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// Seconds to wait for an answer.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub timeout: u64,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// A name for the task (default: the program's name).
    #[arg(long)]
    pub name: Option<String>,
    /// The command and its arguments, after `--`.
    #[arg(required = true, last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (overrides TASKLENS_BIND).
    #[arg(long)]
    pub bind: Option<String>,
    /// Database URL: sqlite://PATH, a file path, or postgres://… (overrides TASKLENS_DATABASE_URL).
    #[arg(long)]
    pub database_url: Option<String>,
    /// Configuration file (default: ./tasklens.toml when present).
    #[arg(long, env = "TASKLENS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory of the built web console (overrides TASKLENS_UI_DIR).
    #[arg(long)]
    pub ui_dir: Option<PathBuf>,
    /// What this node does when several share a PostgreSQL database: all (the
    /// default), gateway (API, console, workers) or engine (runs tasks). Overrides
    /// TASKLENS_ROLE.
    #[arg(long, value_parser = ["all", "gateway", "engine"], ignore_case = true)]
    pub role: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The server's URL (default: the one saved by `tasklens login`, else
    /// http://127.0.0.1:8080).
    #[arg(long, env = "TASKLENS_SERVER", global = true)]
    pub server: Option<String>,
    /// API token.
    #[arg(long, env = "TASKLENS_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// text (for people) or json (for programs: one JSON value, or JSON lines for
    /// records and task lists). Default: text, but JSON for `task`.
    #[arg(long, short = 'o', value_enum, global = true)]
    pub output: Option<Output>,
    /// PEM certificates to trust for an https:// server, besides the public roots
    /// (a private CA).
    #[arg(long, env = "TASKLENS_CA_CERT", global = true, value_name = "PEM")]
    pub ca_cert: Option<PathBuf>,
}

/// What a command prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

impl ClientArgs {
    /// Whether to print JSON: `--output json`, or the command's own `--json`.
    pub fn json(&self, json_flag: bool) -> bool {
        json_flag || self.output == Some(Output::Json)
    }
}

#[derive(Debug, Clone, Args)]
pub struct FilterArgs {
    /// Only this level and above (DEBUG, INFO, WARNING or WARN, ERROR).
    #[arg(long)]
    pub level: Option<LogLevel>,
    /// Only these sources (repeat, or separate with commas).
    #[arg(long = "source", value_delimiter = ',')]
    pub sources: Vec<String>,
    /// Only messages containing this text (ASCII letters ignore case).
    #[arg(long)]
    pub grep: Option<String>,
    /// Only messages matching this regular expression (Rust regex syntax).
    #[arg(long = "re")]
    pub regex: Option<String>,
    /// Only records whose metadata KEY has this VALUE (repeatable; all must match).
    #[arg(long = "meta", value_parser = parse_key_value, value_name = "KEY=VALUE")]
    pub meta: Vec<(String, String)>,
    /// Only records at or after this time: RFC 3339, a local date and time
    /// (2026-12-01 10:00), or a time ago such as 30s, 10m, 2h, 3d or 1w.
    #[arg(long, value_parser = parse_time)]
    pub since: Option<Timestamp>,
    /// Only records before this time (as --since).
    #[arg(long, value_parser = parse_time)]
    pub until: Option<Timestamp>,
}

impl FilterArgs {
    pub fn spec(&self) -> FilterSpec {
        FilterSpec {
            level: self.level,
            sources: self
                .sources
                .iter()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            q: self.grep.clone(),
            re: self.regex.clone(),
            meta: self.meta.iter().cloned().collect::<BTreeMap<_, _>>(),
            since: self.since,
            until: self.until,
        }
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Plugin name (see `GET /api/plugins`).
    pub plugin: String,
    /// A parameter, KEY=VALUE; VALUE is read as JSON when it parses (5, true, ["a"]), else as text.
    #[arg(long = "param", short = 'p', value_parser = parse_key_value, value_name = "KEY=VALUE")]
    pub params: Vec<(String, String)>,
    /// All parameters as one JSON object (KEY=VALUE params are added to it).
    #[arg(long = "params", value_name = "JSON")]
    pub params_json: Option<String>,
    /// Higher runs first among queued tasks (-1000 to 1000; default 0).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true, value_parser = clap::value_parser!(i32).range(-1000..=1000))]
    pub priority: i32,
    /// Follow the task's logs until it ends; exit with its status.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// With --follow: print records as JSON lines.
    #[arg(long, requires = "follow")]
    pub json: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct TasksArgs {
    /// A prefix of the task's id, or text its params contain (as compact JSON;
    /// case-insensitive).
    pub text: Option<String>,
    /// Only tasks with these statuses (repeat, or separate with commas).
    #[arg(long = "status", value_delimiter = ',')]
    pub statuses: Vec<TaskStatus>,
    /// Only tasks of these plugins (repeat, or separate with commas).
    #[arg(long = "plugin", value_delimiter = ',')]
    pub plugins: Vec<String>,
    /// Only tasks these callers started (token names; repeat, or separate with commas).
    #[arg(long = "by", value_delimiter = ',')]
    pub created_by: Vec<String>,
    /// Only tasks created at or after this time (as `logs --since`).
    #[arg(long, value_parser = parse_time)]
    pub since: Option<Timestamp>,
    /// Only tasks created before this time (as --since).
    #[arg(long, value_parser = parse_time)]
    pub until: Option<Timestamp>,
    /// How many tasks (1 to 500).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=MAX_TASK_PAGE as u64))]
    pub limit: u64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct TaskArgs {
    pub task: TaskId,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    pub task: TaskId,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Print records as JSON lines (NDJSON).
    #[arg(long)]
    pub json: bool,
    /// Stream records live until the task ends; exit with its status.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Start after this seq.
    #[arg(long, default_value_t = 0)]
    pub after_seq: u64,
    /// Only the last N matching records (1 to 10,000; with --follow, then the new
    /// ones; not with --after-seq).
    #[arg(long, conflicts_with = "after_seq", value_parser = clap::value_parser!(u64).range(1..=MAX_PAGE_LIMIT as u64))]
    pub tail: Option<u64>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Text the message contains (ASCII letters ignore case); the same as --grep.
    #[arg(conflicts_with = "grep")]
    pub text: Option<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Only tasks of these plugins (repeat, or separate with commas).
    #[arg(long = "plugin", value_delimiter = ',')]
    pub plugins: Vec<String>,
    /// Only tasks with these statuses (repeat, or separate with commas).
    #[arg(long = "status", value_delimiter = ',')]
    pub statuses: Vec<protocol::TaskStatus>,
    /// Only tasks created at or after this time (as --since).
    #[arg(long, value_parser = parse_time)]
    pub created_since: Option<Timestamp>,
    /// Only tasks created before this time (as --since).
    #[arg(long, value_parser = parse_time)]
    pub created_until: Option<Timestamp>,
    /// Print at most this many records (1 to 100,000).
    #[arg(long, short = 'n', default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub limit: u64,
    /// Instead of stored records, print matching records as any task logs them,
    /// until interrupted (a live search; with --plugin, not --status or --created-*).
    #[arg(long, short = 'f', conflicts_with_all = ["statuses", "created_since", "created_until", "limit"])]
    pub follow: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct SettingsArgs {
    #[command(subcommand)]
    pub action: Option<SettingsAction>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Subcommand)]
pub enum SettingsAction {
    /// Print the logging settings (the default action).
    Show,
    /// Change some of the logging settings; the rest stay as they are.
    #[command(group(ArgGroup::new("change").required(true).multiple(true)))]
    Set {
        /// Level of the server's own log.
        #[arg(long, group = "change")]
        app_level: Option<LogLevel>,
        /// Lowest level stored for tasks (WARNING stores only WARNING and ERROR).
        #[arg(long, group = "change")]
        task_level: Option<LogLevel>,
        /// Record belief_scope Entry/Exit/Coherence at DEBUG (on or off).
        #[arg(long, group = "change", value_parser = parse_on_off)]
        belief_scope: Option<bool>,
    },
}

#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// Age, such as 30d or 2w (a bare number means days).
    #[arg(long, value_parser = parse_age_days)]
    pub older_than: u32,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct SpoolArgs {
    /// Try the refused records again; those the database now takes are stored.
    #[arg(long)]
    pub retry: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct TokensArgs {
    #[command(subcommand)]
    pub action: TokensAction,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Subcommand)]
pub enum TokensAction {
    /// List tokens (names and roles, never secrets).
    List,
    /// Create a token and print it (shown only this once).
    Create {
        name: String,
        #[arg(long, default_value = "viewer")]
        role: protocol::Role,
    },
    /// Delete a token.
    Delete { name: String },
}

/// `tasklens completions SHELL`.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<i32> {
    use clap::CommandFactory;
    clap_complete::generate(
        shell,
        &mut Cli::command(),
        "tasklens",
        &mut std::io::stdout(),
    );
    Ok(0)
}

/// `tasklens man`: the manual page, with every command's options in its sections.
pub fn man() -> anyhow::Result<i32> {
    use clap::CommandFactory;
    let command = Cli::command();
    let mut out = std::io::stdout().lock();
    let page = clap_mangen::Man::new(command.clone());
    page.render(&mut out)?;
    for sub in command.get_subcommands().filter(|c| !c.is_hide_set()) {
        let name = format!("tasklens-{}", sub.get_name());
        let sub = sub
            .clone()
            .name(name.clone())
            .bin_name(name)
            .version(env!("CARGO_PKG_VERSION"));
        clap_mangen::Man::new(sub).render(&mut out)?;
    }
    Ok(0)
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, not {s:?}")),
    }
}

fn parse_on_off(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(format!("expected on or off, not {s:?}")),
    }
}

/// RFC 3339, a local date and time (`2026-12-01 10:00`), or a time ago: a whole
/// number with `s`, `m`, `h`, `d` or `w`.
pub fn parse_time(s: &str) -> Result<Timestamp, String> {
    protocol::time::parse_time_input(s, Timestamp(engine::logger::now_micros()), local_offset)
}

/// The local zone's offset east of UTC at local time `at` (the earlier one where
/// clocks go back; none where they skip it).
fn local_offset(at: chrono::NaiveDateTime) -> Option<i32> {
    use chrono::{Offset, TimeZone};
    chrono::Local
        .from_local_datetime(&at)
        .earliest()
        .map(|t| t.offset().fix().local_minus_utc())
}

/// `30d`, `2w`, `30` → days.
pub fn parse_age_days(s: &str) -> Result<u32, String> {
    let s = s.trim().to_ascii_lowercase();
    let (digits, factor) = if let Some(d) = s.strip_suffix('d') {
        (d, 1)
    } else if let Some(w) = s.strip_suffix('w') {
        (w, 7)
    } else {
        (s.as_str(), 1)
    };
    digits
        .parse::<u32>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .filter(|n| *n <= 36_500)
        .ok_or_else(|| format!("expected an age such as 30d or 2w, not {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn times_parse_absolute_or_ago() {
        let now = engine::logger::now_micros();
        let ago = |s: &str| now - parse_time(s).unwrap().as_micros();
        let near = |got: i64, want: i64| (got - want).abs() < 60_000_000;
        assert!(near(ago("10m"), 600_000_000));
        assert!(near(ago("2H"), 7_200_000_000));
        assert!(near(ago("3d"), 3 * 86_400_000_000));
        assert!(near(ago("1w"), 7 * 86_400_000_000));
        assert!(near(ago("0s"), 0));
        assert_eq!(
            parse_time("2026-12-01T00:00:00Z").unwrap(),
            Timestamp(1_796_083_200_000_000)
        );
        // The forms themselves are tested in `protocol::time`; a zoneless time here
        // is local, whatever the zone the test runs in.
        use chrono::TimeZone;
        let midnight = chrono::NaiveDate::from_ymd_opt(2026, 12, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap();
        let local = chrono::Local
            .from_local_datetime(&midnight)
            .earliest()
            .unwrap();
        assert_eq!(
            parse_time("2026-12-01 00:00").unwrap(),
            Timestamp(local.timestamp_micros())
        );
        assert!(parse_time("yesterday").unwrap_err().contains("yesterday"));
    }

    #[test]
    fn ages_parse() {
        assert_eq!(parse_age_days("30d"), Ok(30));
        assert_eq!(parse_age_days("2w"), Ok(14));
        assert_eq!(parse_age_days("7"), Ok(7));
        for bad in ["", "d", "-1d", "3y", "99999999w"] {
            assert!(parse_age_days(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn malformed_flags_are_refused() {
        for args in [
            vec!["tasklens", "logs", "not-a-uuid"],
            vec![
                "tasklens",
                "logs",
                "67e55044-10b1-426f-9247-bb680e5fe0c8",
                "--level",
                "LOUD",
            ],
            vec![
                "tasklens",
                "logs",
                "67e55044-10b1-426f-9247-bb680e5fe0c8",
                "--meta",
                "novalue",
            ],
            vec![
                "tasklens",
                "logs",
                "67e55044-10b1-426f-9247-bb680e5fe0c8",
                "--since",
                "yesterday",
            ],
            vec![
                "tasklens",
                "logs",
                "67e55044-10b1-426f-9247-bb680e5fe0c8",
                "--tail",
                "0",
            ],
            vec![
                "tasklens",
                "logs",
                "67e55044-10b1-426f-9247-bb680e5fe0c8",
                "--tail",
                "5",
                "--after-seq",
                "9",
            ],
            vec![
                "tasklens",
                "logs",
                "67e55044-10b1-426f-9247-bb680e5fe0c8",
                "--since",
                "10x",
            ],
            vec!["tasklens", "wait", "not-a-uuid"],
            vec![
                "tasklens",
                "wait",
                "67e55044-10b1-426f-9247-bb680e5fe0c8",
                "--timeout",
                "0",
            ],
            vec!["tasklens", "completions", "tcsh"],
            vec!["tasklens", "run", "synthetic", "--param", "=5"],
            vec!["tasklens", "tasks", "--status", "done"],
            vec!["tasklens", "tasks", "--limit", "0"],
            vec!["tasklens", "cleanup", "--older-than", "soon"],
            vec!["tasklens", "settings", "set", "--belief-scope", "maybe"],
            vec!["tasklens", "tokens", "create", "bob", "--role", "root"],
            vec!["tasklens", "frobnicate"],
        ] {
            let err = Cli::try_parse_from(&args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
        let ok = Cli::try_parse_from([
            "tasklens",
            "logs",
            "67e55044-10b1-426f-9247-bb680e5fe0c8",
            "--level",
            "warn",
            "--source",
            "a,b",
            "--source",
            "c",
            "--meta",
            "dashboard_id=5",
            "--grep",
            "x",
        ])
        .unwrap();
        let Command::Logs(args) = ok.command else {
            panic!()
        };
        let spec = args.filter.spec();
        assert_eq!(spec.level, Some(LogLevel::Warning));
        assert_eq!(spec.sources, ["a", "b", "c"]);
        assert_eq!(spec.meta.get("dashboard_id").map(String::as_str), Some("5"));
    }
}
