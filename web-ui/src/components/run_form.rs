//! Run a task: pick a plugin, edit its JSON parameters (prefilled with the plugin's
//! example), submit. Errors (bad JSON, bad parameters, no permission) show in place.

use protocol::{NewTask, PluginInfo};
use web_sys::{HtmlSelectElement, HtmlTextAreaElement};
use yew::prelude::*;
use yew_router::prelude::*;

use crate::app::{handle_error, Route};
use crate::auth::AuthContext;

#[component]
pub fn RunForm() -> Html {
    let auth = use_context::<AuthContext>().expect("auth context");
    let navigator = use_navigator().expect("a router");
    let plugins = use_state(Vec::<PluginInfo>::new);
    let selected = use_state(String::new);
    let params = use_state(String::new);
    let error = use_state(|| None::<String>);
    let busy = use_state(|| false);

    {
        let (auth, plugins, selected, params) = (
            auth.clone(),
            plugins.clone(),
            selected.clone(),
            params.clone(),
        );
        use_effect_with((), move |_| {
            if let Some(api) = auth.api() {
                wasm_bindgen_futures::spawn_local(async move {
                    if let Ok(list) = api.plugins().await {
                        let first = list
                            .iter()
                            .find(|p| p.name == "synthetic")
                            .or(list.first())
                            .cloned();
                        if let Some(first) = first {
                            params.set(
                                serde_json::to_string_pretty(&first.example_params)
                                    .unwrap_or_default(),
                            );
                            selected.set(first.name);
                        }
                        plugins.set(list);
                    }
                });
            }
        });
    }

    let on_plugin = {
        let (plugins, selected, params, error) = (
            plugins.clone(),
            selected.clone(),
            params.clone(),
            error.clone(),
        );
        Callback::from(move |e: Event| {
            let name = e.target_unchecked_into::<HtmlSelectElement>().value();
            if let Some(p) = plugins.iter().find(|p| p.name == name) {
                params.set(serde_json::to_string_pretty(&p.example_params).unwrap_or_default());
            }
            error.set(None);
            selected.set(name);
        })
    };
    let on_params = {
        let params = params.clone();
        Callback::from(move |e: InputEvent| {
            params.set(e.target_unchecked_into::<HtmlTextAreaElement>().value())
        })
    };
    let submit = {
        let (auth, selected, params, error, busy) = (
            auth.clone(),
            selected.clone(),
            params.clone(),
            error.clone(),
            busy.clone(),
        );
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let text = params.trim().to_owned();
            let parsed: serde_json::Value = if text.is_empty() {
                serde_json::json!({})
            } else {
                match serde_json::from_str(&text) {
                    Ok(value @ serde_json::Value::Object(_)) => value,
                    Ok(_) => {
                        return error.set(Some(
                            "Parameters must be a JSON object, such as {\"count\": 100}.".into(),
                        ))
                    }
                    Err(e) => {
                        return error.set(Some(format!("Parameters are not valid JSON: {e}")))
                    }
                }
            };
            let Some(api) = auth.api() else { return };
            let body = NewTask {
                plugin: (*selected).clone(),
                params: parsed,
                priority: 0,
            };
            let (auth, error, busy, navigator) =
                (auth.clone(), error.clone(), busy.clone(), navigator.clone());
            busy.set(true);
            wasm_bindgen_futures::spawn_local(async move {
                match api.submit(&body).await {
                    Ok(task) => navigator.push(&Route::Task {
                        id: task.id.to_string(),
                    }),
                    Err(e) => error.set(Some(handle_error(&auth, e))),
                }
                busy.set(false);
            });
        })
    };

    let description = plugins.iter().find(|p| p.name == *selected).map(|p| {
        let mut text = p.description.clone();
        if p.privileged {
            text.push_str(" (admin only)");
        }
        text
    });
    let options: Html = plugins
        .iter()
        .map(|p| html! { <option value={p.name.clone()} selected={p.name == *selected}>{ p.name.clone() }</option> })
        .collect();
    html! {
        <section class="card run-form">
            <h2>{ "Run a task" }</h2>
            <form onsubmit={submit}>
                <div class="row-fields">
                    <label>{ "Plugin" }
                        <select data-testid="run-plugin" onchange={on_plugin}>{ options }</select>
                    </label>
                    <label class="grow">{ "Parameters (JSON)" }
                        <textarea data-testid="run-params" rows="4" spellcheck="false" value={(*params).clone()} oninput={on_params} />
                    </label>
                </div>
                if let Some(text) = description {
                    <p class="muted small">{ text }</p>
                }
                if let Some(message) = (*error).clone() {
                    <p class="error" role="alert" data-testid="run-error">{ message }</p>
                }
                <button type="submit" class="primary" disabled={*busy || selected.is_empty()} data-testid="run-submit">{ if *busy { "Starting…" } else { "Run" } }</button>
            </form>
        </section>
    }
}
