//! A WebSocket to `/ws` that authenticates with its first message and hands every
//! server message to a callback. Closing happens on drop.

use protocol::{ClientMessage, ServerMessage};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{CloseEvent, MessageEvent, WebSocket};
use yew::Callback;

/// What a connection reports.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveEvent {
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
        let on_open = Closure::<dyn FnMut()>::new(move || {
            for text in &hello {
                let _ = opened.send_with_str(text);
            }
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
