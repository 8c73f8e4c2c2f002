//! Emission → WebSocket client latency: a synthetic task at a fixed rate, followed by
//! many subscribers with different filters; for every record that arrives live
//! (after `caught_up`), the time from its timestamp (taken at emission) to receipt.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Result};
use awc::ws;
use futures_util::{SinkExt, StreamExt};
use protocol::{TaskId, Timestamp};

use crate::client::Api;
use crate::report::Stats;
use crate::server::{Server, TOKEN};
use crate::Sizes;

/// Filters the subscribers cycle through, from broad to narrow.
const FILTERS: &[&str] = &[
    r#"{"level":"ERROR"}"#,
    r#"{"sources":["superset_api"],"level":"WARNING"}"#,
    r#"{"meta":{"dashboard_id":"3"}}"#,
    r#"{"q":"77"}"#,
    r#"{"sources":["system"],"level":"ERROR","meta":{"dashboard_id":"1"}}"#,
];

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Every `"timestamp":"…"` in a frame, without parsing the rest.
fn timestamps(frame: &str) -> impl Iterator<Item = i64> + '_ {
    frame
        .match_indices("\"timestamp\":\"")
        .filter_map(move |(at, key)| {
            let start = at + key.len();
            let end = start + frame[start..].find('"')?;
            frame[start..end]
                .parse::<Timestamp>()
                .ok()
                .map(Timestamp::as_micros)
        })
}

pub async fn latency(server: &Server, sizes: &Sizes) -> Result<Stats> {
    let api = Api::new(server);
    let task = api
        .start(serde_json::json!({"count": sizes.live_records, "rate": sizes.live_rate}))
        .await?;
    follow(server, task.id, sizes.subscribers).await
}

/// Follows `task` with `subscribers` filtered WebSocket clients until it ends; the
/// latency of every record that arrived live.
pub async fn follow(server: &Server, task: TaskId, subscribers: usize) -> Result<Stats> {
    let api = Api::new(server);
    let samples: Rc<RefCell<Vec<f64>>> = Rc::default();
    let mut followers = Vec::new();
    for n in 0..subscribers {
        let url = format!("ws://127.0.0.1:{}/ws", server.port);
        let (_, mut conn) = awc::Client::new()
            .ws(url)
            .bearer_auth(TOKEN)
            .max_frame_size(64 * 1024 * 1024)
            .connect()
            .await
            .map_err(|e| anyhow!("WebSocket {n}: {e}"))?;
        let subscribe = format!(
            r#"{{"type":"subscribe","task_id":"{}","filter":{},"after_seq":0}}"#,
            task,
            FILTERS[n % FILTERS.len()]
        );
        conn.send(ws::Message::Text(subscribe.into())).await?;
        let samples = samples.clone();
        followers.push(actix_rt::spawn(async move {
            let mut live = false;
            while let Some(frame) = conn.next().await {
                match frame {
                    Ok(ws::Frame::Text(bytes)) => {
                        let at = now_micros();
                        let text = std::str::from_utf8(&bytes).unwrap_or_default();
                        if text.starts_with(r#"{"type":"logs""#) {
                            if live {
                                let mut s = samples.borrow_mut();
                                s.extend(timestamps(text).map(|t| (at - t) as f64 / 1000.0));
                            }
                        } else if text.starts_with(r#"{"type":"caught_up""#) {
                            live = true;
                        } else if text.starts_with(r#"{"type":"task""#)
                            && !text.contains(r#""status":"running""#)
                            && !text.contains(r#""status":"queued""#)
                        {
                            return Ok(());
                        } else if text.starts_with(r#"{"type":"error""#) {
                            return Err(anyhow!("server error: {text}"));
                        }
                    }
                    Ok(ws::Frame::Ping(p)) => {
                        let _ = conn.send(ws::Message::Pong(p)).await;
                    }
                    Ok(ws::Frame::Close(reason)) => return Err(anyhow!("closed: {reason:?}")),
                    Ok(_) => {}
                    Err(e) => return Err(anyhow!("{e}")),
                }
            }
            Err(anyhow!("the connection ended before the task"))
        }));
    }
    for follower in followers {
        follower.await.map_err(|e| anyhow!("{e}"))??;
    }
    api.wait(task).await?;
    actix_rt::time::sleep(Duration::from_millis(10)).await;
    let samples = std::mem::take(&mut *samples.borrow_mut());
    if samples.is_empty() {
        return Err(anyhow!("no record arrived live"));
    }
    Ok(Stats::from_millis(samples))
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_are_found_in_frames() {
        let frame = r#"{"type":"logs","task_id":"x","entries":[{"seq":1,"timestamp":"2025-11-25T11:30:02.123456Z"},{"seq":2,"timestamp":"2025-11-25T11:30:02.123457Z"}]}"#;
        let found: Vec<i64> = super::timestamps(frame).collect();
        assert_eq!(found, [1_764_070_202_123_456, 1_764_070_202_123_457]);
    }
}
