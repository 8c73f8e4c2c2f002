//! `tasklens exec -- CMD …`: runs a local command as a Tasklens task, a one-shot
//! worker speaking the worker protocol (docs/api.md).
//!
//! It says `hello` with no plugins, `submit`s a task of plugin `exec` that runs on
//! itself, and starts the command in a process group of its own once the task
//! exists. Each stdout line becomes an INFO record of source `stdout`, each stderr
//! line a WARNING of source `stderr`; a line that is a JSON object with a `message`
//! is a structured record, as in the `shell` plugin. Records are numbered after the
//! server's task level, sent every 50 ms or 1,000 records, and kept until
//! acknowledged; past `max_unacked_bytes` the command's output is no longer read
//! until acks come (so a fast command is slowed, never cut). A dropped connection
//! is reopened and the task resumed, resending what was not acknowledged. The exit
//! code becomes the task's status and `exec`'s own; Ctrl-C (or a cancel from the
//! console) stops the command (SIGTERM to its group, SIGKILL after 3 s) and the
//! task ends `cancelled`.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use awc::ws;
use engine::plugin::builtin::shell::parse_line;
use futures_util::{SinkExt, StreamExt};
use protocol::worker::{ToWorkerMessage, WorkerEntry, WorkerMessage};
use protocol::{LogLevel, TaskId, TaskStatus, Timestamp, MAX_MESSAGE_BYTES};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use super::ExecArgs;

const BATCH_ROWS: usize = 1_000;
/// A batch is also sent once its records take this many bytes (before JSON escaping).
const BATCH_BYTES: u64 = 1 << 20;
const BATCH_EVERY: Duration = Duration::from_millis(50);
/// Lines read ahead of sending; the readers wait when it is full. A line is at most
/// the message cap (64 KiB), so this holds 64 MiB at worst.
const LINE_QUEUE: usize = 1_024;
const KILL_AFTER: Duration = Duration::from_secs(3);
/// How long the connection may stay down before `exec` gives up on the server.
const RECONNECT_FOR: Duration = Duration::from_secs(30);
const DONE_WAIT: Duration = Duration::from_secs(120);

type Conn = actix_codec::Framed<awc::BoxedSocket, ws::Codec>;

/// How this one-shot worker reaches the server.
struct Peer {
    ws: awc::Client,
    url: String,
    token: String,
    worker_id: String,
    host: String,
}

/// One line of the command's output: which stream, and the bytes without the newline.
struct Output {
    stderr: bool,
    line: Vec<u8>,
}

/// Records sent and not yet acknowledged, as the `logs` frames that carried them.
struct Unacked {
    frames: VecDeque<(u64, String)>,
    bytes: u64,
}

impl Unacked {
    fn ack(&mut self, seq: u64) {
        while self.frames.front().is_some_and(|(last, _)| *last <= seq) {
            let (_, frame) = self.frames.pop_front().expect("front exists");
            self.bytes -= frame.len() as u64;
        }
    }
}

struct Run {
    task_id: TaskId,
    task_level: LogLevel,
    max_unacked: u64,
    next_seq: u64,
    batch: Vec<WorkerEntry>,
    batch_bytes: u64,
    unacked: Unacked,
    cancelled: bool,
}

pub async fn exec(args: ExecArgs) -> Result<i32> {
    if args.client.json(false) {
        bail!("exec prints the command's own output; --output json does not apply (follow the task with `tasklens logs ID -f --output json`)");
    }
    let client = args.client.client()?;
    let token = client
        .token()
        .ok_or_else(|| {
            anyhow!("a worker (or admin) token is needed: pass --token or set TASKLENS_TOKEN")
        })?
        .to_owned();
    let peer = Peer {
        ws: client.awc(Duration::from_secs(30)),
        url: client.worker_ws_url(),
        token,
        worker_id: format!("exec-{}", uuid::Uuid::new_v4().simple()),
        host: hostname(),
    };
    let name = args.name.clone().unwrap_or_else(|| {
        args.command[0]
            .rsplit('/')
            .next()
            .unwrap_or("exec")
            .to_owned()
    });

    let (mut conn, welcome) = connect(&peer, &[]).await?;
    let ToWorkerMessage::Welcome {
        settings,
        max_unacked_bytes,
        ..
    } = welcome
    else {
        unreachable!("connect returns a welcome")
    };
    let cwd = std::env::current_dir()
        .ok()
        .map(|d| d.display().to_string());
    let submit = WorkerMessage::Submit {
        plugin: "exec".into(),
        params: serde_json::json!({"name": name, "argv": args.command, "cwd": cwd, "host": peer.host}),
    };
    send(&mut conn, &submit).await?;
    let task_id = loop {
        match next(&mut conn).await? {
            ToWorkerMessage::Run { task_id, .. } => break task_id,
            ToWorkerMessage::Error { message, .. } => {
                bail!("the server refused the task: {message}")
            }
            _ => {}
        }
    };
    eprintln!(
        "tasklens: task {task_id} ({}/tasks/{task_id})",
        client.base()
    );

    let mut child = Command::new(&args.command[0])
        .args(&args.command[1..])
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn();
    let mut run = Run {
        task_id,
        task_level: settings.task_log_level,
        max_unacked: max_unacked_bytes,
        next_seq: 0,
        batch: Vec::new(),
        batch_bytes: 0,
        unacked: Unacked {
            frames: VecDeque::new(),
            bytes: 0,
        },
        cancelled: false,
    };
    let (lines_tx, mut lines) = mpsc::channel::<Output>(LINE_QUEUE);
    let child_ref = match &mut child {
        Ok(child) => {
            for (pipe, stderr) in [
                (
                    child
                        .stdout
                        .take()
                        .map(|p| Box::new(p) as Box<dyn Read + Send>),
                    false,
                ),
                (
                    child
                        .stderr
                        .take()
                        .map(|p| Box::new(p) as Box<dyn Read + Send>),
                    true,
                ),
            ] {
                if let Some(pipe) = pipe {
                    let tx = lines_tx.clone();
                    std::thread::spawn(move || read_lines(pipe, stderr, tx));
                }
            }
            Some(child)
        }
        Err(e) => {
            run.push(
                LogLevel::Error,
                "exec",
                format!("cannot start {:?}: {e}", args.command[0]),
                serde_json::Value::Null,
            );
            None
        }
    };
    drop(lines_tx);

    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut tick = tokio::time::interval(BATCH_EVERY);
    let mut kill_at: Option<Instant> = None;
    let mut output_open = child_ref.is_some();
    let mut down_since: Option<Instant> = None;
    loop {
        let room = run.has_room();
        tokio::select! {
            line = lines.recv(), if output_open && room => match line {
                Some(out) => {
                    run.take_line(out);
                    if run.batch.len() >= BATCH_ROWS || run.batch_bytes >= BATCH_BYTES {
                        run.flush(&mut conn).await.ok();
                    }
                }
                None => output_open = false,
            },
            frame = conn.next() => {
                match frame {
                    Some(Ok(ws::Frame::Text(bytes))) => {
                        let msg: ToWorkerMessage = serde_json::from_slice(&bytes)
                            .context("an unexpected message from the server")?;
                        if let Some(kill) = run.on_message(msg, child_ref.as_deref()) {
                            kill_at = kill_at.or(Some(kill));
                        }
                    }
                    Some(Ok(ws::Frame::Ping(p))) => { let _ = conn.send(ws::Message::Pong(p)).await; }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => {
                        let since = *down_since.get_or_insert_with(Instant::now);
                        conn = reconnect(&peer, &mut run, since).await?;
                        down_since = None;
                    }
                }
            }
            _ = interrupt.recv() => {
                eprintln!("tasklens: interrupted; stopping the command");
                run.cancelled = true;
                kill_at = kill_at.or_else(|| stop(child_ref.as_deref()));
            }
            _ = terminate.recv() => {
                run.cancelled = true;
                kill_at = kill_at.or_else(|| stop(child_ref.as_deref()));
            }
            _ = tick.tick() => {
                run.flush(&mut conn).await.ok();
                if let (Some(at), Some(child)) = (kill_at, child_ref.as_deref()) {
                    if Instant::now() >= at {
                        // SAFETY: signalling the command's own process group.
                        unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                    }
                }
            }
        }
        if !output_open {
            break;
        }
    }
    let status = match child {
        Ok(mut child) => Some(child.wait().context("waiting for the command")?),
        Err(_) => None,
    };
    let (finish, code) = match status {
        _ if run.cancelled => (
            WorkerMessage::Finish {
                task_id,
                status: protocol::worker::FinishStatus::Cancelled,
                result: None,
                error: None,
            },
            130,
        ),
        Some(status) if status.success() => (
            WorkerMessage::Finish {
                task_id,
                status: protocol::worker::FinishStatus::Success,
                result: Some(serde_json::json!({"exit_code": 0})),
                error: None,
            },
            0,
        ),
        Some(status) => {
            let (code, what) = match (status.code(), status.signal()) {
                (Some(code), _) => (code, format!("the command exited with code {code}")),
                (None, Some(sig)) => (128 + sig, format!("the command was killed by signal {sig}")),
                _ => (1, "the command failed".to_owned()),
            };
            (
                WorkerMessage::Finish {
                    task_id,
                    status: protocol::worker::FinishStatus::Failed,
                    result: None,
                    error: Some(what),
                },
                code,
            )
        }
        None => (
            WorkerMessage::Finish {
                task_id,
                status: protocol::worker::FinishStatus::Failed,
                result: None,
                error: Some(format!("cannot start {:?}", args.command[0])),
            },
            127,
        ),
    };
    run.finish(conn, &finish, &peer).await?;
    Ok(code)
}

impl Run {
    /// Whether another line may be read: the batch being built, escaped for JSON
    /// (at most six bytes a byte) plus a line, must still fit in the window of
    /// unacknowledged bytes the server allows.
    fn has_room(&self) -> bool {
        let worst = 6 * (self.batch_bytes + MAX_MESSAGE_BYTES as u64) + 64 * 1024;
        self.unacked.bytes + worst <= self.max_unacked
    }

    fn push(
        &mut self,
        level: LogLevel,
        source: &str,
        message: String,
        metadata: serde_json::Value,
    ) {
        // A group's marks pass the level gate: the server keeps the sections.
        if level < self.task_level && protocol::group::marker(&message).is_none() {
            return;
        }
        self.next_seq += 1;
        self.batch_bytes += (message.len() + source.len()) as u64 + 96;
        self.batch.push(WorkerEntry {
            seq: self.next_seq,
            timestamp: Timestamp::from_datetime(chrono::Utc::now()),
            level,
            source: Some(source.to_owned()),
            message,
            metadata: (!metadata.is_null()).then_some(metadata),
        });
    }

    fn take_line(&mut self, out: Output) {
        let (default_level, default_source) = if out.stderr {
            (LogLevel::Warning, "stderr")
        } else {
            (LogLevel::Info, "stdout")
        };
        let line = parse_line(default_level, &out.line);
        let source = line.source.unwrap_or_else(|| default_source.to_owned());
        self.push(line.level, &source, line.message, line.metadata);
    }

    /// Sends what is batched as one `logs` message.
    async fn flush(&mut self, conn: &mut Conn) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let entries = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        let last = entries.last().map_or(0, |e| e.seq);
        let text = serde_json::to_string(&WorkerMessage::Logs {
            task_id: self.task_id,
            entries,
        })?;
        self.unacked.bytes += text.len() as u64;
        self.unacked.frames.push_back((last, text.clone()));
        conn.send(ws::Message::Text(text.into())).await?;
        Ok(())
    }

    /// Handles a message; returns when to kill the command if it asks to stop it.
    fn on_message(&mut self, msg: ToWorkerMessage, child: Option<&Child>) -> Option<Instant> {
        match msg {
            ToWorkerMessage::Ack { seq, .. } => self.unacked.ack(seq),
            ToWorkerMessage::Settings { settings, .. } => self.task_level = settings.task_log_level,
            ToWorkerMessage::Cancel { .. } => {
                eprintln!("tasklens: the task was cancelled; stopping the command");
                self.cancelled = true;
                return stop(child);
            }
            ToWorkerMessage::Error { message, fatal, .. } => {
                eprintln!(
                    "tasklens: server: {message}{}",
                    if fatal { " (reconnecting)" } else { "" }
                );
            }
            _ => {}
        }
        None
    }

    /// Sends the last records and `finish`, and waits for `done` (reconnecting if need be).
    async fn finish(&mut self, mut conn: Conn, finish: &WorkerMessage, peer: &Peer) -> Result<()> {
        let deadline = Instant::now() + DONE_WAIT;
        loop {
            let sent = async {
                self.flush(&mut conn).await?;
                send(&mut conn, finish).await
            }
            .await;
            if sent.is_ok() {
                loop {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match tokio::time::timeout(left, conn.next()).await {
                        Err(_) => bail!("the server did not confirm the task's end in time"),
                        Ok(Some(Ok(ws::Frame::Text(bytes)))) => {
                            match serde_json::from_slice::<ToWorkerMessage>(&bytes)? {
                                ToWorkerMessage::Done { status, .. } => {
                                    if status != TaskStatus::Success {
                                        eprintln!(
                                            "tasklens: task {} ended: {status}",
                                            self.task_id
                                        );
                                    }
                                    return Ok(());
                                }
                                ToWorkerMessage::Ack { seq, .. } => self.unacked.ack(seq),
                                ToWorkerMessage::Error {
                                    message,
                                    task_id: Some(_),
                                    fatal: false,
                                } => {
                                    bail!("the server refused the task's end: {message}")
                                }
                                _ => {}
                            }
                        }
                        Ok(Some(Ok(ws::Frame::Ping(p)))) => {
                            let _ = conn.send(ws::Message::Pong(p)).await;
                        }
                        Ok(Some(Ok(_))) => {}
                        Ok(Some(Err(_)) | None) => break,
                    }
                }
            }
            conn = reconnect(peer, self, Instant::now()).await?;
        }
    }
}

/// Asks the command's process group to stop; returns when to kill it.
fn stop(child: Option<&Child>) -> Option<Instant> {
    let child = child?;
    // SAFETY: signalling the command's own process group.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGTERM) };
    Some(Instant::now() + KILL_AFTER)
}

/// Reads lines (at most the message cap each; longer ones are split) into `tx`.
fn read_lines(pipe: Box<dyn Read + Send>, stderr: bool, tx: mpsc::Sender<Output>) {
    let mut reader = BufReader::with_capacity(64 * 1024, pipe);
    loop {
        let mut line = Vec::new();
        match (&mut reader)
            .take(MAX_MESSAGE_BYTES as u64)
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if line.last() == Some(&b'\n') {
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                }
                if tx.blocking_send(Output { stderr, line }).is_err() {
                    return;
                }
            }
        }
    }
}

async fn send(conn: &mut Conn, msg: &WorkerMessage) -> Result<()> {
    let text = serde_json::to_string(msg)?;
    conn.send(ws::Message::Text(text.into())).await?;
    Ok(())
}

/// The next message (answering pings); an error when the connection ends.
async fn next(conn: &mut Conn) -> Result<ToWorkerMessage> {
    loop {
        match conn.next().await {
            Some(Ok(ws::Frame::Text(bytes))) => {
                return serde_json::from_slice(&bytes)
                    .context("an unexpected message from the server")
            }
            Some(Ok(ws::Frame::Ping(p))) => {
                let _ = conn.send(ws::Message::Pong(p)).await;
            }
            Some(Ok(ws::Frame::Close(reason))) => {
                bail!(
                    "the server closed the connection: {}",
                    reason.and_then(|r| r.description).unwrap_or_default()
                )
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => bail!("the connection failed: {e}"),
            None => bail!("the server closed the connection"),
        }
    }
}

/// Connects and says hello; returns the connection and the `welcome`.
async fn connect(peer: &Peer, resume: &[TaskId]) -> Result<(Conn, ToWorkerMessage)> {
    let url = &peer.url;
    let (_, mut conn) = peer
        .ws
        .ws(url)
        .max_frame_size(16 << 20)
        .bearer_auth(&peer.token)
        .connect()
        .await
        .map_err(|e| match e {
            awc::error::WsClientError::InvalidResponseStatus(s) if s.as_u16() == 401 => {
                anyhow!("401: the token is not valid (pass --token or set TASKLENS_TOKEN)")
            }
            awc::error::WsClientError::InvalidResponseStatus(s) if s.as_u16() == 403 => {
                anyhow!("403: exec needs a worker or admin token, not a viewer's")
            }
            other => anyhow!("cannot connect to {url}: {other}"),
        })?;
    let hello = WorkerMessage::Hello {
        protocol: 1,
        worker_id: peer.worker_id.clone(),
        name: Some(format!("exec@{}", peer.host)),
        capacity: 0,
        plugins: Vec::new(),
        resume: resume.to_vec(),
    };
    send(&mut conn, &hello).await?;
    loop {
        match next(&mut conn).await? {
            welcome @ ToWorkerMessage::Welcome { .. } => return Ok((conn, welcome)),
            ToWorkerMessage::Error { message, .. } => {
                bail!("the server refused this worker: {message}")
            }
            _ => {}
        }
    }
}

/// Reopens a dropped connection and resumes the task: resends what was not
/// acknowledged. Gives up after [`RECONNECT_FOR`] without a connection.
async fn reconnect(peer: &Peer, run: &mut Run, since: Instant) -> Result<Conn> {
    let mut delay = Duration::from_millis(100);
    loop {
        if since.elapsed() > RECONNECT_FOR {
            bail!(
                "lost the connection to the server for {} s; the task will end interrupted",
                RECONNECT_FOR.as_secs()
            );
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
        let Ok((mut conn, welcome)) = connect(peer, &[run.task_id]).await else {
            continue;
        };
        let ToWorkerMessage::Welcome { resumed, .. } = welcome else {
            continue;
        };
        let Some(task) = resumed.iter().find(|r| r.task_id == run.task_id) else {
            bail!("the server ended the task while the connection was down");
        };
        run.unacked.ack(task.acked_seq);
        let mut ok = true;
        for (_, frame) in &run.unacked.frames {
            if conn
                .send(ws::Message::Text(frame.clone().into()))
                .await
                .is_err()
            {
                ok = false;
                break;
            }
        }
        if ok {
            eprintln!("tasklens: reconnected; resumed task {}", run.task_id);
            return Ok(conn);
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
