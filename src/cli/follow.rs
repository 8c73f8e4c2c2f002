//! `--follow`: streams a task's records over WebSocket until the task ends, resuming
//! after the last record shown if the connection drops.

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use awc::ws;
use futures_util::{SinkExt, StreamExt};
use protocol::{ClientMessage, FilterSpec, ServerMessage, TaskId, TaskStatus};

use super::output::{print_entries, use_color};
use crate::client::Client;

const MAX_RECONNECTS: u32 = 20;

/// The exit code for a final status.
pub fn exit_code(status: TaskStatus) -> i32 {
    match status {
        TaskStatus::Success => 0,
        TaskStatus::Failed => 1,
        TaskStatus::Cancelled => 3,
        TaskStatus::Interrupted => 4,
        TaskStatus::Queued | TaskStatus::Running => 2,
    }
}

enum Ended {
    Task(TaskStatus),
    Dropped(String),
}

pub async fn follow(
    client: &Client,
    task_id: TaskId,
    filter: FilterSpec,
    after_seq: u64,
    json: bool,
) -> Result<i32> {
    let color = use_color() && !json;
    let mut last_seq = after_seq;
    let mut attempts = 0;
    loop {
        match stream_once(client, task_id, &filter, &mut last_seq, json, color).await {
            Ok(Ended::Task(status)) => {
                eprintln!("task {task_id} ended: {status}");
                return Ok(exit_code(status));
            }
            Ok(Ended::Dropped(why)) | Err(FollowError::Transient(why)) => {
                attempts += 1;
                if attempts > MAX_RECONNECTS {
                    bail!("lost the connection to the server {MAX_RECONNECTS} times; last: {why}");
                }
                eprintln!("connection lost ({why}); resuming after seq {last_seq}");
                tokio::time::sleep(Duration::from_millis(250 * u64::from(attempts.min(8)))).await;
            }
            Err(FollowError::Fatal(e)) => return Err(e),
        }
    }
}

pub(super) enum FollowError {
    Transient(String),
    Fatal(anyhow::Error),
}

/// An open `/ws` connection.
pub(super) type Connection = actix_codec::Framed<awc::BoxedSocket, ws::Codec>;

/// Opens `/ws` with the client's token: a 401 is fatal, anything else worth a retry.
pub(super) async fn connect(client: &Client) -> Result<Connection, FollowError> {
    let mut request = client
        .awc(Duration::from_secs(30))
        .ws(client.ws_url())
        .max_frame_size(256 * 1024 * 1024);
    if let Some(token) = client.token() {
        request = request.bearer_auth(token);
    }
    let (_, conn) = request.connect().await.map_err(|e| match e {
        awc::error::WsClientError::InvalidResponseStatus(status) if status.as_u16() == 401 => {
            FollowError::Fatal(anyhow!(
                "401: the token is not valid (pass --token or set TASKLENS_TOKEN)"
            ))
        }
        other => FollowError::Transient(format!("cannot connect to {}: {other}", client.ws_url())),
    })?;
    Ok(conn)
}

async fn stream_once(
    client: &Client,
    task_id: TaskId,
    filter: &FilterSpec,
    last_seq: &mut u64,
    json: bool,
    color: bool,
) -> Result<Ended, FollowError> {
    let mut conn = connect(client).await?;
    let subscribe = ClientMessage::Subscribe {
        task_id,
        filter: filter.clone(),
        after_seq: *last_seq,
    };
    send(&mut conn, &subscribe).await?;
    let mut caught_up = false;
    let mut out = std::io::stdout();
    loop {
        let msg = match next_message(&mut conn).await? {
            Incoming::Message(msg) => msg,
            Incoming::Closed(why) => return Ok(Ended::Dropped(why)),
        };
        match msg {
            ServerMessage::Logs { entries, .. } => {
                if let Some(last) = entries.last() {
                    *last_seq = last.seq;
                }
                let mut lock = out.lock();
                print_entries(&mut lock, &entries, json, color)
                    .map_err(|e| FollowError::Fatal(e.into()))?;
            }
            ServerMessage::CaughtUp { seq, .. } => {
                caught_up = true;
                *last_seq = (*last_seq).max(seq);
            }
            ServerMessage::Task { task } if task.id == task_id => {
                if caught_up && task.status.is_terminal() {
                    use std::io::Write;
                    let _ = out.flush();
                    return Ok(Ended::Task(task.status));
                }
            }
            // Following one task never asks for a live search.
            ServerMessage::Task { .. } | ServerMessage::Matched { .. } => {}
            ServerMessage::Error {
                message,
                task_id: Some(id),
            } if id == task_id => {
                return Err(FollowError::Fatal(anyhow!("{message}")));
            }
            ServerMessage::Error { message, .. } => eprintln!("server: {message}"),
        }
    }
}

/// Sends one client message.
pub(super) async fn send(conn: &mut Connection, msg: &ClientMessage) -> Result<(), FollowError> {
    let text = serde_json::to_string(msg).expect("client messages serialise");
    conn.send(ws::Message::Text(text.into()))
        .await
        .map_err(|e| FollowError::Transient(e.to_string()))
}

/// What the connection brings next, pings answered on the way.
pub(super) enum Incoming {
    Message(ServerMessage),
    /// The connection ended, and why.
    Closed(String),
}

pub(super) async fn next_message(conn: &mut Connection) -> Result<Incoming, FollowError> {
    while let Some(frame) = conn.next().await {
        let frame = frame.map_err(|e| FollowError::Transient(e.to_string()))?;
        match frame {
            ws::Frame::Text(bytes) => {
                return serde_json::from_slice(&bytes)
                    .map(Incoming::Message)
                    .map_err(|e| {
                        FollowError::Fatal(anyhow!("unexpected message from the server: {e}"))
                    });
            }
            ws::Frame::Ping(payload) => {
                let _ = conn.send(ws::Message::Pong(payload)).await;
            }
            ws::Frame::Close(reason) => {
                return Ok(Incoming::Closed(
                    reason
                        .and_then(|r| r.description)
                        .unwrap_or_else(|| "closed by the server".into()),
                ));
            }
            _ => {}
        }
    }
    Ok(Incoming::Closed("the connection ended".into()))
}
