//! `/tasks/{id}`: the task's details and its log panel.

use protocol::{TaskId, TaskInfo};
use yew::prelude::*;
use yew_router::prelude::*;

use crate::app::{handle_error, Route};
use crate::auth::{AuthAction, AuthContext};
use crate::components::log_view::LogPanel;
use crate::components::status::StatusBadge;
use crate::format::{date_time, task_duration};

#[derive(Properties, PartialEq)]
pub struct TaskPageProps {
    pub id: String,
}

#[component]
pub fn TaskPage(props: &TaskPageProps) -> Html {
    let auth = use_context::<AuthContext>().expect("auth context");
    let navigator = use_navigator().expect("a router");
    let task = use_state(|| None::<TaskInfo>);
    let error = use_state(|| None::<String>);
    let tick = use_state(|| 0u32);
    let id: Option<TaskId> = props.id.parse().ok();

    {
        // Re-render every second so a running task's duration counts up.
        let tick = tick.clone();
        use_effect_with((), move |_| {
            let clock =
                gloo_timers::callback::Interval::new(1000, move || tick.set(tick.wrapping_add(1)));
            move || drop(clock)
        });
    }

    {
        let (auth, task, error) = (auth.clone(), task.clone(), error.clone());
        use_effect_with(id, move |id| {
            task.set(None);
            if let (Some(api), Some(id)) = (auth.api(), *id) {
                let (task, error) = (task.clone(), error.clone());
                wasm_bindgen_futures::spawn_local(async move {
                    match api.task(id).await {
                        Ok(found) => task.set(Some(found)),
                        Err(e) => error.set(Some(handle_error(&auth, e))),
                    }
                });
            }
        });
    }

    let (Some(id), Some(api)) = (id, auth.api()) else {
        return html! { <main class="page empty-state"><p>{ format!("{:?} is not a task id.", props.id) }</p><Link<Route> to={Route::Tasks}>{ "Back to the task list" }</Link<Route>></main> };
    };
    let on_task = {
        let task = task.clone();
        Callback::from(move |mut updated: TaskInfo| {
            // Status frames leave large params out; keep the ones already shown.
            if updated.params_omitted {
                if let Some(known) = (*task).as_ref().filter(|t| t.id == updated.id) {
                    updated.params = known.params.clone();
                    updated.params_omitted = false;
                }
            }
            task.set(Some(updated))
        })
    };
    let on_unauthorized = {
        let auth = auth.clone();
        Callback::from(move |_| auth.dispatch(AuthAction::LoggedOut))
    };
    let cancel = {
        let (auth, error) = (auth.clone(), error.clone());
        Callback::from(move |_: MouseEvent| {
            let Some(api) = auth.api() else { return };
            let (auth, error) = (auth.clone(), error.clone());
            wasm_bindgen_futures::spawn_local(async move {
                if let Err(e) = api.cancel(id).await {
                    error.set(Some(handle_error(&auth, e)));
                }
            });
        })
    };
    let delete = {
        let (auth, error, navigator) = (auth.clone(), error.clone(), navigator.clone());
        Callback::from(move |_: MouseEvent| {
            let confirmed = web_sys::window()
                .and_then(|w| {
                    w.confirm_with_message("Delete this task and all its logs?")
                        .ok()
                })
                .unwrap_or(false);
            let Some(api) = auth.api() else { return };
            if !confirmed {
                return;
            }
            let (auth, error, navigator) = (auth.clone(), error.clone(), navigator.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match api.delete_task(id).await {
                    Ok(()) => navigator.push(&Route::Tasks),
                    Err(e) => error.set(Some(handle_error(&auth, e))),
                }
            });
        })
    };
    let header = match &*task {
        None => html! { <p class="muted">{ "Loading task…" }</p> },
        Some(t) => {
            let params = serde_json::to_string(&t.params).unwrap_or_default();
            html! {
                <header class="task-header" data-testid="task-header" data-status={t.status.as_str()}>
                    <div class="title">
                        <h1>{ t.plugin.clone() }</h1>
                        <StatusBadge status={t.status} />
                        <code class="muted">{ t.id.to_string() }</code>
                    </div>
                    <dl>
                        <dt>{ "Params" }</dt><dd><code>{ params }</code></dd>
                        <dt>{ "Started" }</dt><dd>{ t.started_at.map(date_time).unwrap_or_else(|| "not yet".into()) }</dd>
                        <dt>{ "Duration" }</dt><dd>{ task_duration(t) }</dd>
                        <dt>{ "By" }</dt><dd>{ t.created_by.clone().unwrap_or_default() }</dd>
                        if let Some(err) = &t.error {
                            <dt>{ "Error" }</dt><dd class="error">{ err.clone() }</dd>
                        }
                        if let Some(result) = &t.result {
                            <dt>{ "Result" }</dt><dd><code>{ serde_json::to_string(result).unwrap_or_default() }</code></dd>
                        }
                    </dl>
                    <div class="actions">
                        if !t.status.is_terminal() {
                            <button class="secondary" onclick={cancel} data-testid="task-cancel">{ "Cancel task" }</button>
                        }
                        if t.status.is_terminal() && auth.is_admin() {
                            <button class="link danger" onclick={delete} data-testid="task-delete">{ "Delete" }</button>
                        }
                    </div>
                </header>
            }
        }
    };
    html! {
        <main class="page task-page">
            <nav class="crumbs"><Link<Route> to={Route::Tasks}>{ "← Tasks" }</Link<Route>></nav>
            if let Some(message) = (*error).clone() {
                <p class="error" role="alert">{ message }</p>
            }
            { header }
            <LogPanel task_id={id} {api} {on_task} {on_unauthorized} started_at={(*task).as_ref().and_then(|t| t.started_at)} />
        </main>
    }
}
