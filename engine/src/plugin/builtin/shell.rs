//! `shell` (admin only, off unless `shell_enabled`): runs a command and turns its
//! output into records.
//!
//! Params: `{"argv": ["cmd", "arg", …], "cwd"?: "dir", "env"?: {"K": "V"}, "timeout_s"?: N}`.
//! The command runs without a shell (use `["sh", "-c", "…"]` for one), in a process
//! group of its own, with a clean environment: `PATH`, `HOME`, `LANG`, `LC_*`, `TZ`
//! and the names in `shell_env_passthrough` from the server's, then the task's own
//! `env`; nothing else of the server's (its tokens, its database URL) reaches it.
//! Each stdout line becomes an INFO record from source `stdout`, each stderr line a
//! WARNING from `stderr`; a line that is a JSON object with a `message` (and
//! optionally `level`, `source`, `metadata`) becomes that structured record, except
//! that the engine's own source `system` cannot be claimed. Lines longer than the
//! message cap are split. A non-zero exit fails the task; cancel or timeout sends
//! SIGTERM to the group, then SIGKILL after 3 s. When the command exits, what is
//! left of its process group is killed; output still held open after that by a
//! process that left the group (`setsid … &`) is read for at most [`DRAIN`] more,
//! so such a process cannot keep the task running.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol::{Body, LogLevel, MAX_MESSAGE_BYTES};

use schemars::JsonSchema;
use serde::Deserialize;

use crate::plugin::{BlockingPlugin, Describe, PluginError, TaskContext, TaskLogger};

/// What the operator allows the `shell` plugin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShellSettings {
    /// Off by default: `shell` turns an admin token into commands run with the
    /// server's own rights on its host; an operator who wants that says so.
    pub enabled: bool,
    /// Names of the server's environment variables passed to commands, besides
    /// [`BASE_ENV`] and `LC_*`.
    pub env_passthrough: Vec<String>,
}

/// The server's variables every command gets (when set).
pub const BASE_ENV: [&str; 4] = ["PATH", "HOME", "LANG", "TZ"];

/// The source the engine writes its own records under; output cannot claim it.
const RESERVED_SOURCE: &str = crate::task::SYSTEM_SOURCE;

#[derive(Debug, Clone, Default)]
pub struct Shell {
    settings: ShellSettings,
}

impl Shell {
    pub fn new(settings: ShellSettings) -> Self {
        Shell { settings }
    }

    /// The environment a command starts with, before the task's own `env`.
    fn base_env(&self) -> Vec<(String, std::ffi::OsString)> {
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v)))
            .filter(|(k, _)| {
                BASE_ENV.contains(&k.as_str())
                    || k.starts_with("LC_")
                    || self.settings.env_passthrough.iter().any(|p| p == k)
            })
            .collect()
    }
}

const GRACE: Duration = Duration::from_secs(3);
const POLL: Duration = Duration::from_millis(20);
/// How long output is still read once the command has ended (or been killed).
pub const DRAIN: Duration = Duration::from_secs(2);

/// `shell`'s params.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShellParams {
    /// The program and its arguments, run without a shell (use `["sh", "-c", "…"]`
    /// for one).
    pub argv: Vec<String>,
    /// The directory to run in.
    #[serde(default)]
    pub cwd: Option<String>,
    /// Variables added to the command's clean environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Seconds before the command is stopped (at most a week).
    #[serde(default)]
    pub timeout_s: Option<f64>,
}

impl ShellParams {
    fn check(&self) -> Result<(), String> {
        match self.argv.first() {
            None => return Err("argv must not be empty: the command and its arguments".into()),
            Some(program) if program.is_empty() => {
                return Err("argv[0], the program, must not be empty".into())
            }
            Some(_) => {}
        }
        if self.argv.iter().any(|a| a.contains('\0')) {
            return Err("argv items must not contain NUL bytes".into());
        }
        if self.cwd.as_deref().is_some_and(str::is_empty) {
            return Err("cwd must be a directory path, not empty".into());
        }
        if let Some((k, v)) = self
            .env
            .iter()
            .find(|(k, v)| k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0'))
        {
            return Err(format!(
                "env must map names to strings; {k:?}: {v:?} is not valid"
            ));
        }
        if let Some(s) = self.timeout_s {
            if !(s.is_finite() && s > 0.0 && s <= 7.0 * 86_400.0) {
                return Err(format!(
                    "timeout_s must be a number of seconds above 0 (at most a week), not {s}"
                ));
            }
        }
        Ok(())
    }

    fn timeout(&self) -> Option<Duration> {
        self.timeout_s.map(Duration::from_secs_f64)
    }
}

impl Describe for Shell {
    fn name(&self) -> &str {
        "shell"
    }

    fn description(&self) -> &str {
        if self.settings.enabled {
            "Runs a command (admin only): stdout lines are INFO records from `stdout`, stderr lines WARNING from `stderr`, JSON-object lines structured records."
        } else {
            "Runs a command (admin only). Disabled on this server: an operator enables it with shell_enabled = true."
        }
    }

    fn privileged(&self) -> bool {
        true
    }

    fn example_params(&self) -> serde_json::Value {
        serde_json::json!({"argv": ["sh", "-c", "echo hello; echo oops >&2"], "timeout_s": 60})
    }
}

impl BlockingPlugin for Shell {
    type Params = ShellParams;

    fn check(&self, params: &ShellParams) -> Result<(), String> {
        if !self.settings.enabled {
            return Err(
                "the shell plugin is disabled on this server; an operator enables it with shell_enabled = true"
                    .into(),
            );
        }
        params.check()
    }

    fn run(&self, ctx: TaskContext, p: ShellParams) -> Result<serde_json::Value, PluginError> {
        if !self.settings.enabled {
            return Err(PluginError::failed(
                "the shell plugin is disabled on this server",
            ));
        }
        let mut command = Command::new(&p.argv[0]);
        command
            .args(&p.argv[1..])
            .env_clear()
            .envs(self.base_env())
            .envs(&p.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(cwd) = &p.cwd {
            command.current_dir(cwd);
        }
        let mut child = command
            .spawn()
            .map_err(|e| PluginError::Failed(format!("cannot start {:?}: {e}", p.argv[0])))?;
        let pgid = child.id() as i32;
        let stop_reading = Arc::new(AtomicBool::new(false));
        let pipes: [Option<OwnedFd>; 2] = [
            child.stdout.take().map(Into::into),
            child.stderr.take().map(Into::into),
        ];
        // Our own handles on the pipes, to see whether anything still writes to them.
        let watched: Vec<Option<OwnedFd>> = pipes
            .iter()
            .map(|p| p.as_ref().and_then(|fd| fd.try_clone().ok()))
            .collect();
        let streams = [("stdout", LogLevel::Info), ("stderr", LogLevel::Warning)];
        let readers: Vec<_> = pipes
            .into_iter()
            .zip(streams)
            .map(|(pipe, (source, level))| {
                pipe.map(|fd| {
                    spawn_reader(
                        fd,
                        ctx.logger.with_source(source),
                        level,
                        stop_reading.clone(),
                    )
                })
            })
            .collect();

        let started = Instant::now();
        let mut stopping: Option<(Instant, &'static str)> = None;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            match stopping {
                None => {
                    let timed_out = p.timeout().is_some_and(|t| started.elapsed() >= t);
                    if ctx.cancel.is_cancelled() || timed_out {
                        signal_group(pgid, libc::SIGTERM);
                        stopping =
                            Some((Instant::now(), if timed_out { "timeout" } else { "cancel" }));
                    }
                }
                Some((since, _)) if since.elapsed() >= GRACE => signal_group(pgid, libc::SIGKILL),
                Some(_) => {}
            }
            if stopping.is_some() {
                std::thread::sleep(POLL);
            } else {
                ctx.cancel.wait_timeout(POLL);
            }
        };
        // Orphans of the command would keep its pipes open; the group goes with it.
        signal_group(pgid, libc::SIGKILL);
        // Readers still busy with a closed pipe are only behind (logging waits for
        // the database): every line they hold is kept. A pipe something still
        // writes to, DRAIN after the command ended, is held by a process that left
        // the group: it is no longer read, so it cannot keep the task running.
        let drain_until = Instant::now() + DRAIN;
        loop {
            let busy: Vec<&OwnedFd> = readers
                .iter()
                .zip(&watched)
                .filter(|(r, _)| r.as_ref().is_some_and(|r| !r.is_finished()))
                .filter_map(|(_, w)| w.as_ref())
                .collect();
            if busy.is_empty() {
                break;
            }
            if Instant::now() >= drain_until && busy.iter().any(|fd| still_written(fd)) {
                stop_reading.store(true, Ordering::SeqCst);
                ctx.logger.with_source(RESERVED_SOURCE).warning(format!(
                    "the command ended but its output was still held open {} s later, by a process that left its process group; that output is no longer read",
                    DRAIN.as_secs()
                ));
                break;
            }
            std::thread::sleep(POLL);
        }
        for reader in readers.into_iter().flatten() {
            let _ = reader.join();
        }

        match stopping {
            Some((_, "cancel")) => return Err(PluginError::Cancelled),
            Some(_) => {
                return Err(PluginError::Failed(format!(
                    "timed out after {} s",
                    p.timeout().map_or(0.0, |t| t.as_secs_f64())
                )))
            }
            None => {}
        }
        match (status.code(), status.signal()) {
            (Some(0), _) => Ok(serde_json::json!({ "exit_code": 0 })),
            (Some(code), _) => Err(PluginError::Failed(format!("exit status {code}"))),
            (None, Some(signal)) => Err(PluginError::Failed(format!("killed by signal {signal}"))),
            (None, None) => Err(PluginError::Failed("ended without an exit status".into())),
        }
    }
}

fn signal_group(pgid: i32, signal: i32) {
    // SAFETY: kill(2) with a negative pid signals the process group we created.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// Whether some process still holds the write end of the pipe `fd` reads.
fn still_written(fd: &OwnedFd) -> bool {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for a descriptor we own; a zero timeout never blocks.
    let ready = unsafe { libc::poll(&mut pfd, 1, 0) };
    ready >= 0 && pfd.revents & libc::POLLHUP == 0
}

/// A pipe read with `poll(2)`, so that a reader blocked on a pipe that is never
/// closed can still be told to stop: it then sees the end of the stream.
struct Pipe {
    fd: OwnedFd,
    stop: Arc<AtomicBool>,
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return Ok(0);
            }
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for a descriptor we own.
            let ready = unsafe { libc::poll(&mut pfd, 1, 100) };
            if ready < 0 {
                let err = std::io::Error::last_os_error();
                if err.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            if ready > 0 {
                // SAFETY: reads into a buffer we own, from a descriptor we own.
                let n = unsafe { libc::read(pfd.fd, buf.as_mut_ptr().cast(), buf.len()) };
                if n < 0 {
                    let err = std::io::Error::last_os_error();
                    if err.kind() == std::io::ErrorKind::Interrupted {
                        continue;
                    }
                    return Err(err);
                }
                return Ok(n as usize);
            }
        }
    }
}

fn spawn_reader(
    fd: OwnedFd,
    logger: TaskLogger,
    level: LogLevel,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::with_capacity(64 * 1024, Pipe { fd, stop });
        let mut line = Vec::with_capacity(256);
        loop {
            line.clear();
            match read_line_capped(&mut reader, &mut line, MAX_MESSAGE_BYTES) {
                Ok(0) => break,
                Ok(_) => emit_line(&logger, level, &line),
                Err(e) => {
                    logger.error(format!("reading output failed: {e}"));
                    break;
                }
            }
        }
    })
}

/// Reads up to and excluding `\n` (and a `\r` before it), or `cap` bytes, whichever
/// comes first. Returns the bytes consumed (0 at end of stream).
fn read_line_capped(
    reader: &mut impl BufRead,
    line: &mut Vec<u8>,
    cap: usize,
) -> std::io::Result<usize> {
    let mut consumed = 0;
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            break;
        }
        let room = cap - line.len();
        let window = &available[..available.len().min(room)];
        if let Some(pos) = window.iter().position(|b| *b == b'\n') {
            line.extend_from_slice(&window[..pos]);
            reader.consume(pos + 1);
            consumed += pos + 1;
            break;
        }
        let n = window.len();
        line.extend_from_slice(window);
        reader.consume(n);
        consumed += n;
        if line.len() >= cap {
            break;
        }
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(consumed)
}

/// One line of output as a record: its level, the source it claims (never the
/// reserved one), its message and metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub level: LogLevel,
    pub source: Option<String>,
    pub message: String,
    pub metadata: serde_json::Value,
}

/// Reads a line: a JSON object with a string `message` is a structured record
/// (`level`, `source`, `metadata` optional; other fields ignored); anything else is
/// the message itself at `default_level`, invalid UTF-8 replaced. `tasklens exec`
/// reads its command's output with it too.
pub fn parse_line(default_level: LogLevel, raw: &[u8]) -> Line {
    let text = String::from_utf8_lossy(raw);
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        if let Ok(serde_json::Value::Object(mut obj)) = serde_json::from_str(trimmed) {
            if let Some(serde_json::Value::String(message)) = obj.remove("message") {
                let level = obj
                    .get("level")
                    .and_then(|l| l.as_str())
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(default_level);
                let source = obj
                    .get("source")
                    .and_then(|s| s.as_str())
                    .filter(|s| !is_reserved_source(s))
                    .map(str::to_owned);
                let metadata = obj.remove("metadata").unwrap_or(serde_json::Value::Null);
                return Line {
                    level,
                    source,
                    message,
                    metadata,
                };
            }
        }
    }
    Line {
        level: default_level,
        source: None,
        message: text.into_owned(),
        metadata: serde_json::Value::Null,
    }
}

fn emit_line(logger: &TaskLogger, default_level: LogLevel, raw: &[u8]) {
    let line = parse_line(default_level, raw);
    let target = match &line.source {
        Some(source) => logger.with_source(source),
        None => logger.clone(),
    };
    if target.enabled(line.level) || protocol::group::marker(&line.message).is_some() {
        target.log_body(
            line.level,
            Body::from_message(line.message, Some(&line.metadata)),
        );
    }
}

/// A source only the engine may write under.
fn is_reserved_source(source: &str) -> bool {
    protocol::entry::sanitize_source(source, "").eq_ignore_ascii_case(RESERVED_SOURCE)
}

#[cfg(test)]
mod tests {
    use super::*;

    impl ShellParams {
        fn parse(value: &serde_json::Value) -> Result<Self, String> {
            let p: ShellParams = crate::plugin::erased::parse_params(value)?;
            p.check().map(|_| p)
        }
    }

    #[test]
    fn params_are_checked() {
        let ok = ShellParams::parse(
            &serde_json::json!({"argv": ["echo", "hi"], "env": {"A": "1"}, "timeout_s": 2}),
        )
        .unwrap();
        assert_eq!(ok.argv, ["echo", "hi"]);
        assert_eq!(ok.env, BTreeMap::from([("A".to_string(), "1".to_string())]));
        assert_eq!(ok.timeout(), Some(Duration::from_secs(2)));
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"argv": []}),
            serde_json::json!({"argv": "echo hi"}),
            serde_json::json!({"argv": [""]}),
            serde_json::json!({"argv": ["echo", 1]}),
            serde_json::json!({"argv": ["echo"], "env": {"A": 1}}),
            serde_json::json!({"argv": ["echo"], "env": {"A=B": "1"}}),
            serde_json::json!({"argv": ["echo"], "timeout_s": 0}),
            serde_json::json!({"argv": ["echo"], "timeout_s": "soon"}),
            serde_json::json!({"argv": ["echo"], "cwd": 5}),
            serde_json::json!({"argv": ["echo"], "shell": true}),
        ] {
            assert!(ShellParams::parse(&bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        /// Any bytes are a line: never a panic, and text that is not a structured
        /// record is kept whole as the message at the stream's level.
        #[test]
        fn any_output_is_a_record(raw in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let line = parse_line(LogLevel::Warning, &raw);
            let text = String::from_utf8_lossy(&raw).into_owned();
            if line.source.is_none() && line.metadata.is_null() && line.level == LogLevel::Warning {
                let structured = serde_json::from_str::<serde_json::Value>(text.trim_start())
                    .ok()
                    .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned));
                proptest::prop_assert!(line.message == text || Some(&line.message) == structured.as_ref());
            }
        }

        /// A structured line keeps exactly its message, level, metadata and source,
        /// except that it can never claim the reserved source.
        #[test]
        fn structured_lines_keep_their_fields(
            message in ".{0,40}",
            level in proptest::sample::select(vec!["DEBUG", "INFO", "WARNING", "WARN", "ERROR"]),
            source in proptest::prop_oneof![
                proptest::strategy::Just("system".to_owned()),
                proptest::strategy::Just(" SYSTEM".to_owned()),
                "[a-z_]{1,12}",
            ],
            n in proptest::num::i64::ANY,
        ) {
            let raw = serde_json::json!({
                "message": message, "level": level, "source": source, "metadata": {"n": n}, "extra": [1]
            })
            .to_string();
            let line = parse_line(LogLevel::Info, raw.as_bytes());
            proptest::prop_assert_eq!(&line.message, &message);
            proptest::prop_assert_eq!(line.level, level.parse::<LogLevel>().unwrap());
            proptest::prop_assert_eq!(line.metadata, serde_json::json!({"n": n}));
            if is_reserved_source(&source) {
                proptest::prop_assert_eq!(line.source, None);
            } else {
                proptest::prop_assert_eq!(line.source, Some(source));
            }
        }
    }

    #[test]
    fn output_cannot_claim_the_engines_source() {
        for claimed in ["system", "System", " system ", "SYSTEM"] {
            assert!(is_reserved_source(claimed), "{claimed:?}");
        }
        for other in ["systemd", "sys", "api", ""] {
            assert!(!is_reserved_source(other), "{other:?}");
        }
    }

    #[test]
    fn long_lines_are_split_and_crlf_trimmed() {
        let input = b"abc\r\n0123456789XY\nlast".to_vec();
        let mut reader = BufReader::with_capacity(4, &input[..]);
        let mut lines = Vec::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            if read_line_capped(&mut reader, &mut line, 10).unwrap() == 0 {
                break;
            }
            lines.push(String::from_utf8(line.clone()).unwrap());
        }
        assert_eq!(lines, ["abc", "0123456789", "XY", "last"]);
    }
}
