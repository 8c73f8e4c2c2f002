//! Run a task: pick a plugin, fill in its parameters (fields read from the
//! plugin's params schema, prefilled with its example; or the JSON itself, in the
//! JSON editor), submit. Errors (bad input, refused parameters, no permission) show
//! in place.

use std::rc::Rc;

use protocol::{NewTask, PluginInfo};
use web_sys::{HtmlSelectElement, HtmlTextAreaElement};
use yew::prelude::*;
use yew_router::prelude::*;

use crate::app::{handle_error, Route};
use crate::auth::AuthContext;
use crate::components::param_fields::ParamFields;
use crate::params_form::{ParamsForm, Texts};

/// Which editor the parameters are in.
#[derive(Clone, Copy, PartialEq)]
enum Editor {
    Fields,
    Json,
}

/// What the form holds for one plugin.
#[derive(Clone, PartialEq)]
struct Draft {
    plugin: String,
    form: Option<Rc<ParamsForm>>,
    editor: Editor,
    texts: Texts,
    json: String,
}

impl Draft {
    /// The plugin's example, in its fields when they can show it.
    fn of(plugin: &PluginInfo) -> Draft {
        let form = ParamsForm::from_schema(&plugin.params_schema).map(Rc::new);
        let texts = form
            .as_ref()
            .and_then(|f| f.texts(&plugin.example_params).ok());
        Draft {
            plugin: plugin.name.clone(),
            editor: if texts.is_some() {
                Editor::Fields
            } else {
                Editor::Json
            },
            form,
            texts: texts.unwrap_or_default(),
            json: serde_json::to_string_pretty(&plugin.example_params).unwrap_or_default(),
        }
    }

    /// The parameters, from whichever editor is shown.
    fn params(&self) -> Result<serde_json::Value, String> {
        match (&self.form, self.editor) {
            (Some(form), Editor::Fields) => form.params(&self.texts),
            _ => {
                let text = self.json.trim();
                if text.is_empty() {
                    return Ok(serde_json::json!({}));
                }
                match serde_json::from_str(text) {
                    Ok(value @ serde_json::Value::Object(_)) => Ok(value),
                    Ok(_) => {
                        Err("Parameters must be a JSON object, such as {\"count\": 100}.".into())
                    }
                    Err(e) => Err(format!("Parameters are not valid JSON: {e}")),
                }
            }
        }
    }

    /// The same parameters in the other editor, or why they cannot move.
    fn switched(&self) -> Result<Draft, String> {
        let mut next = self.clone();
        match (self.editor, &self.form) {
            (Editor::Fields, _) => {
                let params = self.params()?;
                next.json = serde_json::to_string_pretty(&params).unwrap_or_default();
                next.editor = Editor::Json;
            }
            (Editor::Json, Some(form)) => {
                next.texts = form.texts(&self.params()?).map_err(|why| {
                    format!("These parameters do not fit the fields ({why}); keep editing them as JSON.")
                })?;
                next.editor = Editor::Fields;
            }
            (Editor::Json, None) => {}
        }
        Ok(next)
    }
}

#[component]
pub fn RunForm() -> Html {
    let auth = use_context::<AuthContext>().expect("auth context");
    let navigator = use_navigator().expect("a router");
    let plugins = use_state(Vec::<PluginInfo>::new);
    let draft = use_state(|| None::<Draft>);
    let error = use_state(|| None::<String>);
    let busy = use_state(|| false);

    {
        let (auth, plugins, draft) = (auth.clone(), plugins.clone(), draft.clone());
        use_effect_with((), move |_| {
            if let Some(api) = auth.api() {
                wasm_bindgen_futures::spawn_local(async move {
                    if let Ok(list) = api.plugins().await {
                        let first = list.iter().find(|p| p.name == "synthetic").or(list.first());
                        draft.set(first.map(Draft::of));
                        plugins.set(list);
                    }
                });
            }
        });
    }

    let on_plugin = {
        let (plugins, draft, error) = (plugins.clone(), draft.clone(), error.clone());
        Callback::from(move |e: Event| {
            let name = e.target_unchecked_into::<HtmlSelectElement>().value();
            if let Some(p) = plugins.iter().find(|p| p.name == name) {
                draft.set(Some(Draft::of(p)));
            }
            error.set(None);
        })
    };
    let edit = |change: fn(&mut Draft, String)| {
        let (draft, error) = (draft.clone(), error.clone());
        move |value: String| {
            if let Some(current) = (*draft).clone() {
                let mut next = current;
                change(&mut next, value);
                draft.set(Some(next));
                error.set(None);
            }
        }
    };
    let on_json = {
        let set = edit(|d, v| d.json = v);
        Callback::from(move |e: InputEvent| {
            set(e.target_unchecked_into::<HtmlTextAreaElement>().value())
        })
    };
    let on_field = {
        let (draft, error) = (draft.clone(), error.clone());
        Callback::from(move |(name, value): (String, String)| {
            if let Some(mut next) = (*draft).clone() {
                next.texts.insert(name, value);
                draft.set(Some(next));
                error.set(None);
            }
        })
    };
    let on_switch = {
        let (draft, error) = (draft.clone(), error.clone());
        Callback::from(move |_: MouseEvent| {
            if let Some(current) = (*draft).as_ref() {
                match current.switched() {
                    Ok(next) => {
                        draft.set(Some(next));
                        error.set(None);
                    }
                    Err(why) => error.set(Some(why)),
                }
            }
        })
    };
    let submit = {
        let (auth, draft, error, busy) = (auth.clone(), draft.clone(), error.clone(), busy.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let Some(current) = (*draft).as_ref() else {
                return;
            };
            let parsed = match current.params() {
                Ok(params) => params,
                Err(why) => return error.set(Some(why)),
            };
            let Some(api) = auth.api() else { return };
            let body = NewTask {
                plugin: current.plugin.clone(),
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

    let selected = draft.as_ref().map(|d| d.plugin.clone()).unwrap_or_default();
    let description = plugins.iter().find(|p| p.name == selected).map(|p| {
        let mut text = p.description.clone();
        if p.privileged {
            text.push_str(" (admin only)");
        }
        text
    });
    let options: Html = plugins
        .iter()
        .map(|p| html! { <option value={p.name.clone()} selected={p.name == selected}>{ p.name.clone() }</option> })
        .collect();
    let editor = match (*draft).as_ref() {
        None => html! {},
        Some(d) => {
            let switch = d.form.as_ref().map(|_| {
                let (label, testid) = match d.editor {
                    Editor::Fields => ("Edit as JSON", "run-mode-json"),
                    Editor::Json => ("Edit as fields", "run-mode-fields"),
                };
                html! { <button type="button" class="link" data-testid={testid} onclick={on_switch.clone()}>{ label }</button> }
            });
            match (&d.form, d.editor) {
                (Some(form), Editor::Fields) => html! {
                    <div class="grow">
                        <ParamFields form={form.clone()} texts={d.texts.clone()} on_input={on_field.clone()} />
                        { switch }
                    </div>
                },
                _ => html! {
                    <label class="grow">{ "Parameters (JSON)" }
                        <textarea data-testid="run-params" rows="4" spellcheck="false" value={d.json.clone()} oninput={on_json.clone()} />
                        { switch }
                    </label>
                },
            }
        }
    };
    html! {
        <section class="card run-form">
            <h2>{ "Run a task" }</h2>
            <form onsubmit={submit}>
                <div class="row-fields">
                    <label>{ "Plugin" }
                        <select data-testid="run-plugin" onchange={on_plugin}>{ options }</select>
                    </label>
                    { editor }
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
