//! `/admin/settings/logging`: app log level, task log level and the belief_scope
//! switch. Admins change them (applied at once, no restart); viewers see them read-only.

use protocol::{LogLevel, LogSettings};
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use crate::app::handle_error;
use crate::auth::AuthContext;

#[component]
pub fn LoggingSettings() -> Html {
    let auth = use_context::<AuthContext>().expect("auth context");
    let draft = use_state(|| None::<LogSettings>);
    let status = use_state(|| None::<(bool, String)>);
    let busy = use_state(|| false);

    {
        let (auth, draft, status) = (auth.clone(), draft.clone(), status.clone());
        use_effect_with((), move |_| {
            if let Some(api) = auth.api() {
                wasm_bindgen_futures::spawn_local(async move {
                    match api.log_settings().await {
                        Ok(current) => draft.set(Some(current)),
                        Err(e) => status.set(Some((false, handle_error(&auth, e)))),
                    }
                });
            }
        });
    }

    let admin = auth.is_admin();
    let Some(current) = *draft else {
        return html! {
            <main class="page narrow">
                <h1>{ "Admin Settings › Logging" }</h1>
                if let Some((_, message)) = (*status).clone() { <p class="error" role="alert">{ message }</p> } else { <p class="muted">{ "Loading…" }</p> }
            </main>
        };
    };
    let level_select = |id: &'static str, value: LogLevel, set: fn(&mut LogSettings, LogLevel)| {
        let (draft, status) = (draft.clone(), status.clone());
        let onchange = Callback::from(move |e: Event| {
            let picked = e.target_unchecked_into::<HtmlSelectElement>().value();
            if let (Some(mut s), Ok(level)) = (*draft, picked.parse::<LogLevel>()) {
                set(&mut s, level);
                draft.set(Some(s));
                status.set(None);
            }
        });
        let options: Html = LogLevel::ALL
            .iter()
            .map(|l| html! { <option value={l.as_str()} selected={*l == value}>{ l.as_str() }</option> })
            .collect();
        html! { <select id={id} data-testid={format!("settings-{}", id.replace('_', "-"))} disabled={!admin} {onchange}>{ options }</select> }
    };
    let on_belief = {
        let (draft, status) = (draft.clone(), status.clone());
        Callback::from(move |e: Event| {
            let on = e.target_unchecked_into::<HtmlInputElement>().checked();
            if let Some(mut s) = *draft {
                s.belief_scope_enabled = on;
                draft.set(Some(s));
                status.set(None);
            }
        })
    };
    let save = {
        let (auth, draft, status, busy) =
            (auth.clone(), draft.clone(), status.clone(), busy.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let (Some(api), Some(settings)) = (auth.api(), *draft) else {
                return;
            };
            let (auth, draft, status, busy) =
                (auth.clone(), draft.clone(), status.clone(), busy.clone());
            busy.set(true);
            wasm_bindgen_futures::spawn_local(async move {
                match api.set_log_settings(&settings).await {
                    Ok(applied) => {
                        draft.set(Some(applied));
                        status.set(Some((true, "Saved and applied: running tasks and the server log use these settings now, no restart needed.".into())));
                    }
                    Err(e) => status.set(Some((false, handle_error(&auth, e)))),
                }
                busy.set(false);
            });
        })
    };
    html! {
        <main class="page narrow">
            <h1>{ "Admin Settings › Logging" }</h1>
            if !admin {
                <p class="notice">{ "You are logged in as a viewer: these settings are shown read-only. An admin token can change them." }</p>
            }
            <form class="card settings" onsubmit={save}>
                <label for="app_level">{ "App log level" }<span class="muted">{ "The server's own log output." }</span></label>
                { level_select("app_level", current.app_log_level, |s, l| s.app_log_level = l) }
                <label for="task_level">{ "Task log level" }<span class="muted">{ "Task records below this level are neither stored nor streamed. DEBUG keeps belief_scope records." }</span></label>
                { level_select("task_level", current.task_log_level, |s, l| s.task_log_level = l) }
                <label for="belief">{ "belief_scope records" }<span class="muted">{ "Entry / Exit / Coherence records of belief_scope guards (DEBUG)." }</span></label>
                <input id="belief" type="checkbox" data-testid="settings-belief-scope" checked={current.belief_scope_enabled} disabled={!admin} onchange={on_belief} />
                if admin {
                    <button type="submit" class="primary" disabled={*busy} data-testid="settings-save">{ if *busy { "Saving…" } else { "Save" } }</button>
                }
                if let Some((ok, message)) = (*status).clone() {
                    <p class={if ok { "ok" } else { "error" }} role="status" data-testid="settings-status">{ message }</p>
                }
            </form>
        </main>
    }
}
