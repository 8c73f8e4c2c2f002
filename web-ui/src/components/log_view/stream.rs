//! The view's WebSocket: subscribed with the view's filter from the last indexed
//! seq, so nothing falls between the index and the stream; after a dropped
//! connection it reopens (backing off up to 5 s) from the last seq shown.

use gloo_timers::callback::Timeout;
use protocol::{ClientMessage, ServerMessage};
use yew::prelude::*;

use super::{LiveState, LogPanel, Msg};
use crate::live::{backoff_ms, Live, LiveEvent};

impl LogPanel {
    pub(super) fn open_live(&mut self, ctx: &Context<Self>) {
        let generation = self.generation;
        let after_seq = self.model.index.last().map_or(0, |s| u64::from(*s));
        let subscribe = ClientMessage::Subscribe {
            task_id: ctx.props().task_id,
            filter: self.filter.view_spec(),
            after_seq,
        };
        let on_event = ctx
            .link()
            .callback(move |event| Msg::Live { generation, event });
        match Live::open(ctx.props().api.token(), vec![subscribe], on_event) {
            Ok(live) => self.live = Some(live),
            Err(e) => self.error = Some(format!("live updates unavailable: {e}")),
        }
    }

    pub(super) fn on_live(
        &mut self,
        ctx: &Context<Self>,
        generation: u64,
        event: LiveEvent,
    ) -> bool {
        if generation != self.generation {
            return false;
        }
        match event {
            LiveEvent::Opened => return false,
            LiveEvent::Message(msg) => match *msg {
                ServerMessage::Logs { entries, .. } => {
                    self.reconnects = 0;
                    let find = self.filter.find_spec().is_some();
                    let matcher = &self.matcher;
                    self.model.apply_live(entries, |entry| {
                        find && matcher.is_match(&crate::ansi::strip(entry.message()))
                    });
                    if self.follow {
                        self.scroll_to = Some(f64::MAX);
                    }
                    self.fetch_visible_pages(ctx);
                }
                ServerMessage::CaughtUp { .. } => self.live_state = LiveState::Live,
                ServerMessage::Task { task } => {
                    self.task_running = !task.status.is_terminal();
                    ctx.props().on_task.emit(task);
                    ctx.link().send_message(Msg::RefreshCounts);
                }
                ServerMessage::Error { message, .. } => self.error = Some(message),
                // The view never asks for a live search over all tasks.
                ServerMessage::Matched { .. } => {}
            },
            LiveEvent::Closed(reason) => {
                self.live = None;
                if reason.contains("authenticat") {
                    ctx.props().on_unauthorized.emit(());
                    return true;
                }
                self.live_state = LiveState::Reconnecting;
                self.reconnects += 1;
                let link = ctx.link().clone();
                Timeout::new(backoff_ms(self.reconnects), move || {
                    link.send_message(Msg::Reconnect { generation })
                })
                .forget();
            }
        }
        true
    }
}
