//! The task list's filter bar: status chips, plugin, who started it, and a search
//! over ids and params. Each change is handed up as the whole new query; typing is
//! debounced and replaces the URL entry rather than adding one per keystroke.

use gloo_timers::callback::Timeout;
use protocol::TaskStatus;
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use crate::task_query::TaskQuery;

const TYPING_DEBOUNCE_MS: u32 = 300;

/// A new query, and whether it replaces the current URL entry (typing) or adds one.
pub type QueryChange = (TaskQuery, bool);

#[derive(Properties, PartialEq)]
pub struct TaskFiltersProps {
    pub query: TaskQuery,
    /// Plugin names to choose from.
    pub plugins: Vec<String>,
    pub on_change: Callback<QueryChange>,
}

#[component]
pub fn TaskFilters(props: &TaskFiltersProps) -> Html {
    // One timer per typed field, so typing in one does not drop the other's edit.
    let debounce = use_mut_ref(std::collections::BTreeMap::<&'static str, Timeout>::new);
    // What the inputs hold while typing, ahead of the URL.
    let text = use_state(|| props.query.text.clone());
    let by = use_state(|| props.query.by.clone());
    {
        let (text, by) = (text.clone(), by.clone());
        use_effect_with(props.query.clone(), move |query| {
            text.set(query.text.clone());
            by.set(query.by.clone());
        });
    }
    // The query as shown now: a typed edit applies to it when its timer fires, so
    // edits to different fields made close together all land.
    let latest = use_mut_ref(TaskQuery::default);
    *latest.borrow_mut() = props.query.clone();
    let change = |field: &'static str, edit: fn(&mut TaskQuery, String), replace: bool| {
        let (latest, on_change, debounce) =
            (latest.clone(), props.on_change.clone(), debounce.clone());
        move |value: String| {
            if replace {
                let (latest, on_change) = (latest.clone(), on_change.clone());
                let timer = Timeout::new(TYPING_DEBOUNCE_MS, move || {
                    let mut next = latest.borrow().clone();
                    edit(&mut next, value);
                    on_change.emit((next, true))
                });
                debounce.borrow_mut().insert(field, timer);
            } else {
                let mut next = latest.borrow().clone();
                edit(&mut next, value);
                on_change.emit((next, false));
            }
        }
    };
    let chips: Html = TaskStatus::ALL
        .iter()
        .map(|status| {
            let on = props.query.statuses.contains(status);
            let (query, on_change, status) = (props.query.clone(), props.on_change.clone(), *status);
            let onclick = Callback::from(move |_: MouseEvent| {
                let mut next = query.clone();
                next.toggle(status);
                on_change.emit((next, false));
            });
            html! {
                <button type="button" class={classes!("chip", on.then_some("on"))} data-status={status.as_str()}
                        aria-pressed={on.to_string()} {onclick}>{ status.as_str() }</button>
            }
        })
        .collect();
    let mut names = props.plugins.clone();
    if !props.query.plugin.is_empty() && !names.contains(&props.query.plugin) {
        names.push(props.query.plugin.clone());
    }
    let plugin_options: Html = names
        .iter()
        .map(|name| html! { <option value={name.clone()} selected={*name == props.query.plugin}>{ name }</option> })
        .collect();
    let on_plugin = {
        let set = change("plugin", |q, v| q.plugin = v, false);
        Callback::from(move |e: Event| set(e.target_unchecked_into::<HtmlSelectElement>().value()))
    };
    // A typed field: shown at once, applied once typing pauses.
    let typed =
        |field: &'static str, shown: &UseStateHandle<String>, edit: fn(&mut TaskQuery, String)| {
            let (set, shown) = (change(field, edit, true), shown.clone());
            Callback::from(move |e: InputEvent| {
                let value = e.target_unchecked_into::<HtmlInputElement>().value();
                shown.set(value.clone());
                set(value)
            })
        };
    let on_text = typed("text", &text, |q, v| q.text = v);
    let on_by = typed("by", &by, |q, v| q.by = v);
    let clear = {
        let (on_change, debounce) = (props.on_change.clone(), debounce.clone());
        Callback::from(move |_: MouseEvent| {
            debounce.borrow_mut().clear();
            on_change.emit((TaskQuery::default(), false))
        })
    };
    html! {
        <div class="task-filters" data-testid="task-filters">
            <div class="sources" role="group" aria-label="status" data-testid="task-filter-status">{ chips }</div>
            <label class="field">{ "Plugin" }
                <select data-testid="task-filter-plugin" onchange={on_plugin}>
                    <option value="" selected={props.query.plugin.is_empty()}>{ "any" }</option>
                    { plugin_options }
                </select>
            </label>
            <label class="field">{ "Started by" }
                <input data-testid="task-filter-by" placeholder="token name" value={(*by).clone()} oninput={on_by} />
            </label>
            <input type="search" data-testid="task-filter-text" placeholder="Search id or params" aria-label="search tasks by id or params"
                   value={(*text).clone()} oninput={on_text} />
            if !props.query.is_empty() {
                <button type="button" class="link" data-testid="task-filter-clear" onclick={clear}>{ "clear filters" }</button>
            }
        </div>
    }
}
