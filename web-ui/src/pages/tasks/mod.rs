//! `/tasks`: the run-a-task form and the task list: filtered as its URL says
//! (`?status=running&plugin=shell&by=ci-bot&q=orders`), paged, and kept live over a
//! WebSocket that reopens after a dropped connection and then reads what it missed.

mod rows;

use std::cell::Cell;

use protocol::{ServerMessage, TaskId, TaskInfo};
use yew::prelude::*;
use yew_router::prelude::*;

use crate::app::{handle_error, Route};
use crate::auth::AuthContext;
use crate::components::run_form::RunForm;
use crate::components::status::StatusBadge;
use crate::components::task_filters::{QueryChange, TaskFilters};
use crate::format::{date_time, task_duration};
use crate::live::{LiveEvent, Reconnecting};
use crate::task_query::TaskQuery;
use rows::{RowsAction, TaskRows};

/// Tasks per request.
const PAGE: usize = 100;

/// Whether the list is live.
#[derive(Clone, Copy, PartialEq)]
enum LiveState {
    Connecting,
    Live,
    Reconnecting,
}

#[component]
pub fn TasksPage() -> Html {
    let auth = use_context::<AuthContext>().expect("auth context");
    let location = use_location();
    let navigator = use_navigator();
    let query = TaskQuery::from_query(location.as_ref().map_or("", |l| l.query_str()));
    let rows = use_reducer(TaskRows::default);
    let live_state = use_state(|| LiveState::Connecting);
    let plugins = use_state(Vec::<String>::new);
    let tick = use_state(|| 0u32);
    // The query shown now, for the live connection's callbacks, which outlive renders.
    let current = use_mut_ref(TaskQuery::default);
    *current.borrow_mut() = query.clone();

    let fetch = {
        let (auth, rows) = (auth.clone(), rows.clone());
        Callback::from(
            move |(query, before, refresh): (TaskQuery, Option<TaskId>, bool)| {
                let Some(api) = auth.api() else { return };
                let (auth, rows) = (auth.clone(), rows.clone());
                wasm_bindgen_futures::spawn_local(async move {
                    match api.tasks(&query.api_query(before, PAGE)).await {
                        Ok(list) if refresh => rows.dispatch(RowsAction::Refreshed { query, list }),
                        Ok(list) => rows.dispatch(RowsAction::Loaded {
                            query,
                            list,
                            append: before.is_some(),
                        }),
                        Err(e) => rows.dispatch(RowsAction::Failed(handle_error(&auth, e))),
                    }
                });
            },
        )
    };
    {
        let (rows, fetch) = (rows.clone(), fetch.clone());
        use_effect_with(query.clone(), move |query| {
            rows.dispatch(RowsAction::Reset(query.clone()));
            fetch.emit((query.clone(), None, false));
        });
    }
    {
        // Plugins to filter by, live status, and a clock for running durations.
        let (auth, rows, tick, plugins) =
            (auth.clone(), rows.clone(), tick.clone(), plugins.clone());
        let (live_state, current, fetch) = (live_state.clone(), current.clone(), fetch.clone());
        use_effect_with((), move |_| {
            let api = auth.api();
            if let Some(api) = api.clone() {
                let (admin, seal) = (auth.is_admin(), rows.clone());
                wasm_bindgen_futures::spawn_local(async move {
                    if let Ok(list) = api.plugins().await {
                        // As the server: a viewer's text does not search these.
                        if !admin {
                            let sealed = list.iter().filter(|p| p.privileged);
                            seal.dispatch(RowsAction::Seal(
                                sealed.map(|p| p.name.clone()).collect(),
                            ));
                        }
                        plugins.set(list.into_iter().map(|p| p.name).collect());
                    }
                });
            }
            let opened_before = Cell::new(false);
            let live = api.map(|api| {
                Reconnecting::open(
                    api.token(),
                    vec![protocol::ClientMessage::SubscribeTasks {}],
                    Callback::from(move |event| match event {
                        LiveEvent::Opened => {
                            live_state.set(LiveState::Live);
                            // Changes made while the connection was away.
                            if opened_before.replace(true) {
                                fetch.emit((current.borrow().clone(), None, true));
                            }
                        }
                        LiveEvent::Message(msg) => {
                            if let ServerMessage::Task { task } = *msg {
                                rows.dispatch(RowsAction::Changed(task));
                            }
                        }
                        // The token stopped working: the login page, as for REST.
                        LiveEvent::Closed(reason) if reason.contains("authenticat") => {
                            handle_error(&auth, crate::api::ApiError::Unauthorized);
                        }
                        LiveEvent::Closed(_) => live_state.set(LiveState::Reconnecting),
                    }),
                )
            });
            let clock =
                gloo_timers::callback::Interval::new(1000, move || tick.set(tick.wrapping_add(1)));
            move || {
                drop(live);
                drop(clock);
            }
        });
    }

    let on_query = {
        let navigator = navigator.clone();
        Callback::from(move |(next, replace): QueryChange| {
            let Some(nav) = &navigator else { return };
            let pairs = crate::view_url::decode_pairs(&next.to_query());
            let done = if replace {
                nav.replace_with_query(&Route::Tasks, &pairs)
            } else {
                nav.push_with_query(&Route::Tasks, &pairs)
            };
            if done.is_err() {
                nav.push(&Route::Tasks);
            }
        })
    };

    let load_more = {
        let (fetch, rows) = (fetch.clone(), rows.clone());
        Callback::from(move |_: MouseEvent| {
            if let Some(before) = rows.next_before {
                fetch.emit((rows.query.clone(), Some(before), false));
            }
        })
    };

    let on_delete = {
        let (auth, rows) = (auth.clone(), rows.clone());
        Callback::from(move |task: TaskInfo| {
            let confirmed = web_sys::window()
                .and_then(|w| {
                    w.confirm_with_message(&format!(
                        "Delete task {} ({}) and all its logs?",
                        task.id, task.plugin
                    ))
                    .ok()
                })
                .unwrap_or(false);
            let Some(api) = auth.api() else { return };
            if !confirmed {
                return;
            }
            let (rows, auth) = (rows.clone(), auth.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match api.delete_task(task.id).await {
                    Ok(()) => rows.dispatch(RowsAction::Removed(task.id)),
                    Err(e) => rows.dispatch(RowsAction::Failed(handle_error(&auth, e))),
                }
            });
        })
    };

    let admin = auth.is_admin();
    let body = if !rows.loaded && rows.error.is_none() {
        html! { <p class="muted">{ "Loading tasks…" }</p> }
    } else if rows.tasks.is_empty() && !query.is_empty() {
        html! { <div class="empty-state" data-testid="tasks-none"><p>{ "No task matches these filters." }</p></div> }
    } else if rows.tasks.is_empty() {
        html! { <div class="empty-state"><p>{ "No tasks yet. Run one with the form above: " }<code>{ "synthetic" }</code>{ " makes a demo log in a second." }</p></div> }
    } else {
        let items: Html = rows
            .tasks
            .iter()
            .map(|task| {
                let delete = {
                    let (on_delete, task) = (on_delete.clone(), task.clone());
                    Callback::from(move |_: MouseEvent| on_delete.emit(task.clone()))
                };
                let started = task.started_at.map(date_time).unwrap_or_else(|| "—".into());
                html! {
                    <tr data-testid="task-row" data-task-id={task.id.to_string()} data-status={task.status.as_str()}>
                        <td><Link<Route> to={Route::Task { id: task.id.to_string() }} classes="mono">{ task.id.to_string() }</Link<Route>></td>
                        <td><StatusBadge status={task.status} /></td>
                        <td>{ task.plugin.clone() }</td>
                        <td>{ started }</td>
                        <td class="num">{ task_duration(task) }</td>
                        <td class="muted">{ task.created_by.clone().unwrap_or_default() }</td>
                        <td>
                            if admin && task.status.is_terminal() {
                                <button class="link danger" onclick={delete} data-testid="task-delete">{ "Delete" }</button>
                            }
                        </td>
                    </tr>
                }
            })
            .collect();
        html! {
            <table class="tasks">
                <thead><tr><th>{ "Task" }</th><th>{ "Status" }</th><th>{ "Plugin" }</th><th>{ "Started" }</th><th class="num">{ "Duration" }</th><th>{ "By" }</th><th></th></tr></thead>
                <tbody>{ items }</tbody>
            </table>
        }
    };
    html! {
        <main class="page">
            <RunForm />
            <section>
                <div class="section-head">
                    <h2>{ "Tasks" }</h2>
                    { match *live_state {
                        LiveState::Live => html! { <span class="live on" data-testid="tasks-live" data-state="live" title="status changes appear as they happen">{ "● live" }</span> },
                        LiveState::Connecting => html! { <span class="live" data-testid="tasks-live" data-state="connecting">{ "connecting…" }</span> },
                        LiveState::Reconnecting => html! { <span class="live off" data-testid="tasks-live" data-state="reconnecting" title="the connection dropped; the list is read again once it is back">{ "reconnecting…" }</span> },
                    } }
                </div>
                <TaskFilters query={query.clone()} plugins={(*plugins).clone()} on_change={on_query} />
                if let Some(message) = rows.error.clone() {
                    <p class="error" role="alert">{ message }</p>
                }
                { body }
                if rows.next_before.is_some() {
                    <button class="secondary" data-testid="tasks-more" onclick={load_more}>{ "Load older tasks" }</button>
                }
            </section>
        </main>
    }
}
