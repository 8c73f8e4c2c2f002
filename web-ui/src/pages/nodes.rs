//! `/admin/nodes`: the servers sharing the database, their role, running tasks and
//! last heartbeat, refreshed every few seconds. The list is the admins' (viewers
//! are told so).

use gloo_timers::callback::Interval;
use protocol::NodeInfo;
use yew::prelude::*;

use crate::app::handle_error;
use crate::auth::AuthContext;
use crate::format::{date_time, human_duration, now_millis};

/// How often the list is read again (heartbeats come every third of the node
/// timeout, 5 s by default).
const REFRESH_MS: u32 = 5_000;

#[component]
pub fn NodesPage() -> Html {
    let auth = use_context::<AuthContext>().expect("auth context");
    let nodes = use_state(|| None::<Vec<NodeInfo>>);
    let error = use_state(|| None::<String>);

    {
        let (auth, nodes, error) = (auth.clone(), nodes.clone(), error.clone());
        use_effect_with((), move |_| {
            let load = move || {
                let Some(api) = auth.api() else { return };
                let (auth, nodes, error) = (auth.clone(), nodes.clone(), error.clone());
                wasm_bindgen_futures::spawn_local(async move {
                    match api.nodes().await {
                        Ok(mut list) => {
                            list.sort_by(|a, b| a.id.cmp(&b.id));
                            nodes.set(Some(list));
                            error.set(None);
                        }
                        Err(e) => error.set(Some(handle_error(&auth, e))),
                    }
                });
            };
            load();
            let every = Interval::new(REFRESH_MS, load);
            move || drop(every)
        });
    }

    let rows: Html = (*nodes)
        .iter()
        .flatten()
        .map(|n| {
            let silent = now_millis() - n.heartbeat_at.as_micros() as f64 / 1000.0;
            html! {
                <tr data-node-id={n.id.clone()}>
                    <td>{ &n.id }</td>
                    <td data-testid="node-role">{ &n.role }</td>
                    <td data-testid="node-alive">
                        <span class={classes!("status", if n.alive { "status-running" } else { "status-failed" })}>
                            { if n.alive { "alive" } else { "silent" } }
                        </span>
                    </td>
                    <td data-testid="node-running">{ n.running }</td>
                    <td title={date_time(n.heartbeat_at)}>{ format!("{} ago", human_duration(silent)) }</td>
                    <td>{ date_time(n.started_at) }</td>
                </tr>
            }
        })
        .collect();
    html! {
        <main class="page">
            <h1>{ "Admin › Nodes" }</h1>
            <p class="muted">{ "The servers sharing this database. A node silent for longer than node_timeout_secs has had its running tasks ended as interrupted by a survivor." }</p>
            if let Some(message) = (*error).clone() {
                <p class="error" role="alert" data-testid="nodes-error">{ message }</p>
            }
            if nodes.is_none() && error.is_none() {
                <p class="muted">{ "Loading…" }</p>
            }
            if nodes.is_some() {
                <table class="tasks" data-testid="nodes">
                    <thead><tr>
                        <th>{ "Node" }</th><th>{ "Role" }</th><th>{ "State" }</th>
                        <th>{ "Running tasks" }</th><th>{ "Last heartbeat" }</th><th>{ "Started" }</th>
                    </tr></thead>
                    <tbody>{ rows }</tbody>
                </table>
            }
        </main>
    }
}
