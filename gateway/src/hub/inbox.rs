//! [`Inbox`]: what the hub has handed a WebSocket session and the session has not
//! taken yet, bounded in bytes.
//!
//! The hub appends; the session takes everything at once when it runs. The session
//! runs inside its HTTP response body, which the server polls only while the socket
//! accepts data, so bytes pile up here exactly when the client does not read what it
//! was sent, and never merely because the session was scheduled late: a late session
//! takes its whole inbox the next time it runs. Two bounds make the client's
//! allowance for falling behind: the bytes queued, and how long the oldest delivery
//! has waited untaken (the hub sweeps for that, so a client that never reads again
//! is found even when nothing more is sent to it). Past either, the inbox is
//! emptied, marked overflowed, and the hub stops delivering to it.
//!
//! The hub wakes the session with one message when the inbox turns non-empty, not
//! one per delivery, so the session's actor mailbox never fills whatever the rate.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix::Message;
use engine::batch::LogBatch;
use protocol::{TaskId, TaskInfo};

/// One item for a session.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// A batch of a followed task (some of its records may not pass the session's
    /// filter; the session applies it).
    Logs {
        task_id: TaskId,
        batch: Arc<LogBatch>,
    },
    /// A batch of any task for the session's live search (`subscribe_all`); the
    /// session applies its search filter.
    Matched {
        task_id: TaskId,
        batch: Arc<LogBatch>,
    },
    /// A status change of a followed or watched task.
    Status(Arc<TaskInfo>),
}

/// Tells a session that its inbox has deliveries (or overflowed).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Wake;

/// The outcome of [`Inbox::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued; the session must be woken (the inbox was empty and not yet woken).
    Wake,
    /// Queued; a wake-up is already on its way.
    Queued,
    /// The bound was passed: the inbox is now empty and overflowed.
    Overflowed,
}

#[derive(Debug, Default)]
struct State {
    items: VecDeque<Delivery>,
    bytes: u64,
    /// When the inbox last turned non-empty.
    waiting_since: Option<Instant>,
    /// By when the session must have authenticated.
    deadline: Option<Instant>,
    wake_sent: bool,
    overflowed: bool,
}

impl State {
    /// Empties the inbox for good: the client fell too far behind.
    fn overflow(&mut self) {
        self.items = VecDeque::new();
        self.bytes = 0;
        self.waiting_since = None;
        self.overflowed = true;
    }
}

#[derive(Debug)]
pub struct Inbox {
    state: Mutex<State>,
    max_bytes: u64,
    /// The client's socket (a duplicate descriptor), to disconnect a client that
    /// reads nothing more: its session cannot run to close it.
    socket: Mutex<Option<std::net::TcpStream>>,
}

impl Inbox {
    pub fn new(max_bytes: u64) -> Self {
        Inbox {
            state: Mutex::new(State::default()),
            max_bytes,
            socket: Mutex::new(None),
        }
    }

    pub fn with_socket(self, socket: Option<std::net::TcpStream>) -> Self {
        *self.socket.lock().unwrap_or_else(|e| e.into_inner()) = socket;
        self
    }

    /// Shuts the client's connection down in both directions: the server's pending
    /// writes fail, which ends the connection and its session.
    pub fn disconnect(&self) {
        if let Some(socket) = self.socket.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a delivery estimated at `bytes` on the wire. One delivery always fits
    /// in an empty inbox, so a single large batch cannot overflow a client that has
    /// read everything before it.
    pub fn push(&self, item: Delivery, bytes: u64) -> Pushed {
        let mut st = self.lock();
        if st.overflowed {
            return Pushed::Overflowed;
        }
        if !st.items.is_empty() && st.bytes.saturating_add(bytes) > self.max_bytes {
            st.overflow();
            return Pushed::Overflowed;
        }
        if st.items.is_empty() {
            st.waiting_since = Some(Instant::now());
        }
        st.items.push_back(item);
        st.bytes += bytes;
        if st.wake_sent {
            Pushed::Queued
        } else {
            st.wake_sent = true;
            Pushed::Wake
        }
    }

    /// Takes every queued delivery, in order; the next push wakes the session again.
    pub fn take(&self) -> VecDeque<Delivery> {
        let mut st = self.lock();
        st.bytes = 0;
        st.waiting_since = None;
        st.wake_sent = false;
        std::mem::take(&mut st.items)
    }

    /// Marks the client as fallen too far behind (also used by the session for what
    /// it buffers itself); the inbox is emptied and takes nothing more.
    pub fn overflow(&self) {
        self.lock().overflow();
    }

    /// Overflows the inbox if its oldest delivery has waited longer than `max_wait`
    /// untaken; returns whether it did.
    pub fn overflow_if_waiting(&self, max_wait: Duration) -> bool {
        let mut st = self.lock();
        let waited = st
            .waiting_since
            .is_some_and(|since| since.elapsed() > max_wait);
        if waited {
            st.overflow();
        }
        waited
    }

    /// Sets (or, with `None`, lifts) the time by which the session must have
    /// authenticated; the hub disconnects it past that even if it cannot run.
    pub fn set_deadline(&self, deadline: Option<Instant>) {
        self.lock().deadline = deadline;
    }

    /// Whether the deadline passed more than `grace` ago (the session closes
    /// itself at the deadline when it can run, with a reason).
    pub fn past_deadline(&self, grace: Duration) -> bool {
        self.lock()
            .deadline
            .is_some_and(|d| Instant::now() > d + grace)
    }

    pub fn overflowed(&self) -> bool {
        self.lock().overflowed
    }

    /// Bytes queued and not taken.
    pub fn queued_bytes(&self) -> u64 {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> Delivery {
        Delivery::Status(Arc::new(TaskInfo {
            id: TaskId(uuid::Uuid::nil()),
            plugin: "p".into(),
            params: serde_json::json!({}),
            status: protocol::TaskStatus::Running,
            created_at: protocol::Timestamp(0),
            started_at: None,
            finished_at: None,
            result: None,
            error: None,
            created_by: None,
            params_omitted: false,
            node: None,
            priority: 0,
        }))
    }

    #[test]
    fn one_wake_per_take_and_the_bound_is_in_bytes() {
        let inbox = Inbox::new(100);
        assert_eq!(inbox.push(status(), 60), Pushed::Wake);
        assert_eq!(inbox.push(status(), 40), Pushed::Queued);
        assert_eq!(inbox.queued_bytes(), 100);
        assert_eq!(inbox.take().len(), 2);
        assert_eq!(inbox.queued_bytes(), 0);
        // A reader that takes what it is given is never overflowed, whatever the total.
        for _ in 0..1_000 {
            assert_eq!(inbox.push(status(), 90), Pushed::Wake);
            inbox.take();
        }
        assert!(!inbox.overflowed());
        // One delivery larger than the bound fits in an empty inbox.
        assert_eq!(inbox.push(status(), 500), Pushed::Wake);
        assert_eq!(inbox.push(status(), 1), Pushed::Overflowed);
        assert!(inbox.overflowed());
        assert!(inbox.take().is_empty(), "an overflowed inbox holds nothing");
        assert_eq!(inbox.push(status(), 1), Pushed::Overflowed);
    }

    #[test]
    fn what_waits_untaken_too_long_overflows_the_inbox() {
        let inbox = Inbox::new(1 << 20);
        assert!(
            !inbox.overflow_if_waiting(Duration::ZERO),
            "an empty inbox waits for nothing"
        );
        inbox.push(status(), 10);
        assert!(!inbox.overflow_if_waiting(Duration::from_secs(60)));
        inbox.take();
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            !inbox.overflow_if_waiting(Duration::from_millis(10)),
            "taken: the wait is over"
        );
        inbox.push(status(), 10);
        std::thread::sleep(Duration::from_millis(20));
        assert!(inbox.overflow_if_waiting(Duration::from_millis(10)));
        assert!(inbox.overflowed());
        assert!(inbox.take().is_empty());
    }
}
