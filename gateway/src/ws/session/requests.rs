//! What a client asks over its connection ([`ClientMessage`]): its token, on a
//! connection opened without one; then following tasks (each a [`Subscription`]:
//! history read, then live) with their filters, watching every task's status, and a
//! live search over every task (`subscribe_all`).

use actix::prelude::*;
use protocol::{ClientMessage, FilterSpec, LogFilter, TaskId};

// The transport's types through the parent: only it names `actix-web-actors`.
use super::{ws, Ctx, WsSession};
use crate::auth::Caller;
use crate::hub::{Interest, Unfollow, WatchAll, WatchAllLogs};
use crate::ws::frames;
use crate::ws::subscription::Subscription;

impl WsSession {
    pub(super) fn on_client_message(&mut self, text: &str, ctx: &mut Ctx) {
        let msg: ClientMessage = match serde_json::from_str(text) {
            Ok(msg) => msg,
            Err(e) => {
                ctx.text(frames::error(format!("bad message: {e}"), None));
                if self.caller.is_none() {
                    self.close(ctx, ws::CloseCode::Policy, "not authenticated");
                }
                return;
            }
        };
        if self.caller.is_none() {
            match msg {
                ClientMessage::Auth { token } => {
                    match self
                        .state
                        .tokens
                        .authenticate(self.peer, &token)
                        .and_then(Caller::not_worker)
                    {
                        Ok(caller) => {
                            self.inbox.set_deadline(None);
                            let hash = storage::tokens::hash_token(token.trim());
                            if let Err(e) = self.state.ws_connections.assign(&mut self.slot, &hash)
                            {
                                ctx.text(frames::error(e.message(), None));
                                self.close(
                                    ctx,
                                    ws::CloseCode::Policy,
                                    "too many connections for this token",
                                );
                                return;
                            }
                            self.token_hash = Some(hash);
                            self.caller = Some(caller);
                        }
                        Err(e) => {
                            ctx.text(frames::error(e.message(), None));
                            self.close(ctx, ws::CloseCode::Policy, "authentication failed");
                        }
                    }
                }
                _ => {
                    ctx.text(frames::error(
                        "authenticate first: send {\"type\":\"auth\",\"token\":\"…\"} or connect with a token",
                        None,
                    ));
                    self.close(ctx, ws::CloseCode::Policy, "not authenticated");
                }
            }
            return;
        }
        match msg {
            ClientMessage::Auth { .. } => ctx.text(frames::error(
                "already authenticated: a connection keeps its token; open a new connection for another",
                None,
            )),
            ClientMessage::Subscribe {
                task_id,
                filter,
                after_seq,
            } => self.subscribe(task_id, &filter, after_seq, ctx),
            ClientMessage::SetFilter {
                task_id,
                filter,
                after_seq,
            } => {
                if self.subs.contains_key(&task_id) {
                    self.subscribe(task_id, &filter, after_seq, ctx);
                } else {
                    ctx.text(frames::error(
                        format!("not subscribed to task {task_id}; subscribe first"),
                        Some(task_id),
                    ));
                }
            }
            ClientMessage::Unsubscribe { task_id } => {
                if self.subs.remove(&task_id).is_some() {
                    self.state.hub.do_send(Unfollow {
                        session: self.id,
                        task_id,
                    });
                } else {
                    ctx.text(frames::error(
                        format!("not subscribed to task {task_id}"),
                        Some(task_id),
                    ));
                }
            }
            ClientMessage::SubscribeTasks {} => {
                self.watch_all = true;
                self.state.hub.do_send(WatchAll {
                    session: self.id,
                    on: true,
                });
            }
            ClientMessage::SubscribeAll { filter } => match LogFilter::parse(&filter) {
                Ok(filter) => {
                    self.state.hub.do_send(WatchAllLogs {
                        session: self.id,
                        interest: Some(Interest::from(&filter)),
                    });
                    self.search = Some(filter);
                }
                Err(e) => ctx.text(frames::error(format!("bad filter: {e}"), None)),
            },
            ClientMessage::UnsubscribeAll {} => {
                self.search = None;
                self.state.hub.do_send(WatchAllLogs {
                    session: self.id,
                    interest: None,
                });
            }
            ClientMessage::UnsubscribeTasks {} => {
                self.watch_all = false;
                self.state.hub.do_send(WatchAll {
                    session: self.id,
                    on: false,
                });
            }
        }
    }

    fn subscribe(&mut self, task_id: TaskId, spec: &FilterSpec, after_seq: u64, ctx: &mut Ctx) {
        let filter = match LogFilter::parse(spec) {
            Ok(filter) => filter,
            Err(e) => {
                ctx.text(frames::error(format!("bad filter: {e}"), Some(task_id)));
                return;
            }
        };
        if !self.subs.contains_key(&task_id) && self.subs.len() >= self.state.ws.max_subscriptions {
            ctx.text(frames::error(
                format!(
                    "at most {} tasks can be followed on one connection",
                    self.state.ws.max_subscriptions
                ),
                Some(task_id),
            ));
            return;
        }
        self.next_generation += 1;
        let generation = self.next_generation;
        self.subs.insert(
            task_id,
            Subscription::new(task_id, filter, after_seq, generation),
        );
        let db = self.state.db.clone();
        ctx.spawn(
            async move { db.run(move |c| storage::tasks::get_task(c, task_id)).await }
                .into_actor(self)
                .map(move |found, act, ctx| {
                    if !act.current(task_id, generation) {
                        return;
                    }
                    match found {
                        Ok(Some(task)) => {
                            if let Some(sub) = act.subs.get_mut(&task_id) {
                                sub.note_status(task);
                            }
                            act.read_history(task_id, generation, ctx);
                        }
                        Ok(None) => {
                            act.fail_subscription(task_id, format!("task {task_id} not found"), ctx)
                        }
                        Err(e) => act.fail_storage(task_id, &e, ctx),
                    }
                }),
        );
    }

    pub(super) fn fail_subscription(&mut self, task_id: TaskId, message: String, ctx: &mut Ctx) {
        if self.subs.remove(&task_id).is_some() {
            self.state.hub.do_send(Unfollow {
                session: self.id,
                task_id,
            });
        }
        ctx.text(frames::error(message, Some(task_id)));
    }

    pub(super) fn fail_storage(
        &mut self,
        task_id: TaskId,
        error: &storage::StorageError,
        ctx: &mut Ctx,
    ) {
        log::error!(
            "task_id={task_id} error=\"{}\" Reading history for a WebSocket client failed.",
            engine::sink::error_chain(error)
        );
        self.fail_subscription(
            task_id,
            "the server could not read this task's history; subscribe again".into(),
            ctx,
        );
    }
}
