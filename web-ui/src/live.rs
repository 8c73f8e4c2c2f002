//! A WebSocket to `/ws` that authenticates with its first message and hands every
//! server message to a callback. Closing happens on drop. `Reconnecting` reopens it
//! after a dropped connection.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use gloo_timers::callback::Timeout;

use protocol::{ClientMessage, ServerMessage};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{CloseEvent, MessageEvent, WebSocket};
use yew::Callback;

/// What a connection reports.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveEvent {
    /// The connection is open and the first messages are sent.
    Opened,
    Message(Box<ServerMessage>),
    /// The connection ended (the reason, if the server gave one).
    Closed(String),
}

pub struct Live {
    socket: WebSocket,
    _on_open: Closure<dyn FnMut()>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

/// `ws://` or `wss://` and the host the console was loaded from.
pub fn ws_url() -> String {
    let location = web_sys::window().expect("a window").location();
    let scheme = if location.protocol().unwrap_or_default() == "https:" {
        "wss"
    } else {
        "ws"
    };
    format!("{scheme}://{}/ws", location.host().unwrap_or_default())
}

impl Live {
    /// Connects, authenticates with `token`, then sends `first` (for example a subscribe).
    pub fn open(
        token: &str,
        first: Vec<ClientMessage>,
        on_event: Callback<LiveEvent>,
    ) -> Result<Live, String> {
        let socket = WebSocket::new(&ws_url()).map_err(|e| format!("{e:?}"))?;
        let mut hello = vec![serde_json::to_string(&ClientMessage::Auth {
            token: token.to_owned(),
        })
        .expect("serialises")];
        hello.extend(
            first
                .iter()
                .map(|m| serde_json::to_string(m).expect("serialises")),
        );
        let opened = socket.clone();
        let events = on_event.clone();
        let on_open = Closure::<dyn FnMut()>::new(move || {
            for text in &hello {
                let _ = opened.send_with_str(text);
            }
            events.emit(LiveEvent::Opened);
        });
        let events = on_event.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            if let Some(text) = event.data().as_string() {
                match serde_json::from_str::<ServerMessage>(&text) {
                    Ok(msg) => events.emit(LiveEvent::Message(Box::new(msg))),
                    Err(e) => web_sys::console::warn_1(
                        &format!("unreadable message from the server: {e}").into(),
                    ),
                }
            }
        });
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |event: CloseEvent| {
            on_event.emit(LiveEvent::Closed(event.reason()));
        });
        socket.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        Ok(Live {
            socket,
            _on_open: on_open,
            _on_message: on_message,
            _on_close: on_close,
        })
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.socket.set_onclose(None);
        self.socket.set_onmessage(None);
        self.socket.set_onopen(None);
        let _ = self.socket.close();
    }
}

/// How long to wait before reopening after `attempts` drops in a row: half a
/// second more each time, up to 5 s.
pub fn backoff_ms(attempts: u32) -> u32 {
    500 * attempts.min(10)
}

/// A `Live` that reopens after the connection drops, backing off up to 5 s, and
/// reports each opening (`LiveEvent::Opened`) so its owner can read what it missed.
/// A close that names authentication is final. Dropping it closes the connection.
pub struct Reconnecting {
    _slot: Rc<RefCell<Slot>>,
}

#[derive(Default)]
struct Slot {
    live: Option<Live>,
    retry: Option<Timeout>,
    attempts: u32,
}

struct Plan {
    token: String,
    first: Vec<ClientMessage>,
    on_event: Callback<LiveEvent>,
}

impl Reconnecting {
    pub fn open(
        token: &str,
        first: Vec<ClientMessage>,
        on_event: Callback<LiveEvent>,
    ) -> Reconnecting {
        let slot = Rc::new(RefCell::new(Slot::default()));
        let plan = Rc::new(Plan {
            token: token.to_owned(),
            first,
            on_event,
        });
        connect(&slot, plan);
        Reconnecting { _slot: slot }
    }
}

fn connect(slot: &Rc<RefCell<Slot>>, plan: Rc<Plan>) {
    let weak = Rc::downgrade(slot);
    let forward = {
        let plan = plan.clone();
        Callback::from(move |event: LiveEvent| {
            let Some(slot) = weak.upgrade() else { return };
            match &event {
                // An error frame comes before a close the server decided (too
                // many connections, a client too slow): the backoff goes on growing.
                LiveEvent::Message(msg) if !matches!(**msg, ServerMessage::Error { .. }) => {
                    slot.borrow_mut().attempts = 0
                }
                LiveEvent::Closed(reason) if !reason.contains("authenticat") => {
                    // The closed `Live` is still running this callback: it is
                    // replaced from the timer, not dropped here.
                    retry_later(&slot, Rc::downgrade(&slot), plan.clone())
                }
                _ => {}
            }
            plan.on_event.emit(event);
        })
    };
    match Live::open(&plan.token, plan.first.clone(), forward) {
        Ok(live) => slot.borrow_mut().live = Some(live),
        // No socket can be made (a refused URL): trying again would not help.
        Err(e) => plan.on_event.emit(LiveEvent::Closed(e)),
    }
}

fn retry_later(slot: &Rc<RefCell<Slot>>, weak: Weak<RefCell<Slot>>, plan: Rc<Plan>) {
    let mut s = slot.borrow_mut();
    s.attempts += 1;
    let delay = backoff_ms(s.attempts);
    s.retry = Some(Timeout::new(delay, move || {
        if let Some(slot) = weak.upgrade() {
            connect(&slot, plan);
        }
    }));
}
