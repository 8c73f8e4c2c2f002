//! `/tasks`: the run-a-task form and the task list, with live status over WebSocket.

use std::rc::Rc;

use protocol::{ServerMessage, TaskId, TaskInfo, TaskList};
use yew::prelude::*;
use yew_router::prelude::*;

use crate::app::{handle_error, Route};
use crate::auth::AuthContext;
use crate::components::run_form::RunForm;
use crate::components::status::StatusBadge;
use crate::format::{date_time, task_duration};
use crate::live::{Live, LiveEvent};

/// The list, newest first.
#[derive(Default, PartialEq)]
struct TaskRows {
    tasks: Vec<TaskInfo>,
    next_before: Option<TaskId>,
    loaded: bool,
    error: Option<String>,
}

enum RowsAction {
    Loaded(TaskList, bool),
    Failed(String),
    Changed(TaskInfo),
    Removed(TaskId),
}

impl Reducible for TaskRows {
    type Action = RowsAction;

    fn reduce(self: Rc<Self>, action: RowsAction) -> Rc<Self> {
        let mut next = TaskRows {
            tasks: self.tasks.clone(),
            next_before: self.next_before,
            loaded: self.loaded,
            error: None,
        };
        match action {
            RowsAction::Loaded(list, append) => {
                if !append {
                    next.tasks.clear();
                }
                for task in list.tasks {
                    if !next.tasks.iter().any(|t| t.id == task.id) {
                        next.tasks.push(task);
                    }
                }
                next.next_before = list.next_before;
                next.loaded = true;
            }
            RowsAction::Failed(message) => next.error = Some(message),
            RowsAction::Changed(task) => match next.tasks.iter_mut().find(|t| t.id == task.id) {
                Some(row) => *row = task,
                None => next.tasks.insert(0, task),
            },
            RowsAction::Removed(id) => next.tasks.retain(|t| t.id != id),
        }
        Rc::new(next)
    }
}

#[component]
pub fn TasksPage() -> Html {
    let auth = use_context::<AuthContext>().expect("auth context");
    let rows = use_reducer(TaskRows::default);
    let tick = use_state(|| 0u32);

    {
        // First page, live status, and a clock for running durations.
        let (auth, rows, tick) = (auth.clone(), rows.clone(), tick.clone());
        use_effect_with((), move |_| {
            let api = auth.api();
            if let Some(api) = api.clone() {
                let (rows, auth) = (rows.clone(), auth.clone());
                wasm_bindgen_futures::spawn_local(async move {
                    match api.tasks(None).await {
                        Ok(list) => rows.dispatch(RowsAction::Loaded(list, false)),
                        Err(e) => rows.dispatch(RowsAction::Failed(handle_error(&auth, e))),
                    }
                });
            }
            let live = api.and_then(|api| {
                let rows = rows.clone();
                Live::open(
                    api.token(),
                    vec![protocol::ClientMessage::SubscribeTasks {}],
                    Callback::from(move |event| {
                        if let LiveEvent::Message(msg) = event {
                            if let ServerMessage::Task { task } = *msg {
                                rows.dispatch(RowsAction::Changed(task));
                            }
                        }
                    }),
                )
                .ok()
            });
            let clock =
                gloo_timers::callback::Interval::new(1000, move || tick.set(tick.wrapping_add(1)));
            move || {
                drop(live);
                drop(clock);
            }
        });
    }

    let load_more = {
        let (auth, rows) = (auth.clone(), rows.clone());
        Callback::from(move |_: MouseEvent| {
            let (Some(api), Some(before)) = (auth.api(), rows.next_before) else {
                return;
            };
            let (rows, auth) = (rows.clone(), auth.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match api.tasks(Some(before)).await {
                    Ok(list) => rows.dispatch(RowsAction::Loaded(list, true)),
                    Err(e) => rows.dispatch(RowsAction::Failed(handle_error(&auth, e))),
                }
            });
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
                <h2>{ "Tasks" }</h2>
                if let Some(message) = rows.error.clone() {
                    <p class="error" role="alert">{ message }</p>
                }
                { body }
                if rows.next_before.is_some() {
                    <button class="secondary" onclick={load_more}>{ "Load older tasks" }</button>
                }
            </section>
        </main>
    }
}
