//! The run form's fields for a plugin's params (see `params_form`): one input per
//! property, of its kind, with its default as placeholder and its description.

use std::rc::Rc;

use web_sys::{HtmlInputElement, HtmlSelectElement, HtmlTextAreaElement};
use yew::prelude::*;

use crate::params_form::{Field, Kind, ParamsForm, Texts};

#[derive(Properties, PartialEq)]
pub struct ParamFieldsProps {
    pub form: Rc<ParamsForm>,
    pub texts: Texts,
    /// A field's new text: (name, text).
    pub on_input: Callback<(String, String)>,
}

#[component]
pub fn ParamFields(props: &ParamFieldsProps) -> Html {
    let fields: Html = props
        .form
        .fields
        .iter()
        .map(|field| field_input(field, props.texts.get(&field.name), &props.on_input))
        .collect();
    html! { <div class="param-fields" data-testid="run-fields">{ fields }</div> }
}

fn field_input(
    field: &Field,
    text: Option<&String>,
    on_input: &Callback<(String, String)>,
) -> Html {
    let name = field.name.clone();
    let text = text.cloned().unwrap_or_default();
    let testid = format!("run-field-{}", field.name);
    let placeholder = field.placeholder();
    let input = match &field.kind {
        Kind::Boolean => {
            let checked = match text.as_str() {
                "" => field.default_on(),
                t => t == "true",
            };
            let onchange = on_input.reform({
                let name = name.clone();
                move |e: Event| {
                    let on = e.target_unchecked_into::<HtmlInputElement>().checked();
                    (name.clone(), on.to_string())
                }
            });
            html! { <input type="checkbox" data-testid={testid} {checked} {onchange} /> }
        }
        Kind::Choice(options) => {
            let choices: Html = options
                .iter()
                .map(|o| html! { <option value={o.clone()} selected={*o == text}>{ o.clone() }</option> })
                .collect();
            let onchange = on_input.reform({
                let name = name.clone();
                move |e: Event| {
                    (
                        name.clone(),
                        e.target_unchecked_into::<HtmlSelectElement>().value(),
                    )
                }
            });
            // Nothing chosen shows as such: a required field then says so on
            // submit, rather than the browser showing the first option as chosen.
            let unset = match (field.required, placeholder.is_empty()) {
                (true, _) => "choose…".to_owned(),
                (false, true) => "—".to_owned(),
                (false, false) => format!("default ({placeholder})"),
            };
            html! {
                <select data-testid={testid} {onchange}>
                    <option value="" selected={text.is_empty()}>{ unset }</option>
                    { choices }
                </select>
            }
        }
        Kind::TextList | Kind::TextMap | Kind::Json => {
            let hint = match field.kind {
                Kind::TextList => "one per line",
                Kind::TextMap => "KEY=VALUE, one per line",
                _ => "JSON",
            };
            let rows = (text.lines().count() + 1).clamp(2, 8).to_string();
            let oninput = on_input.reform({
                let name = name.clone();
                move |e: InputEvent| {
                    (
                        name.clone(),
                        e.target_unchecked_into::<HtmlTextAreaElement>().value(),
                    )
                }
            });
            let placeholder = if placeholder.is_empty() {
                hint.to_owned()
            } else {
                placeholder
            };
            html! { <textarea data-testid={testid} {rows} spellcheck="false" value={text} {placeholder} title={hint} {oninput} /> }
        }
        Kind::Integer | Kind::Number | Kind::Text => {
            let inputmode = match field.kind {
                Kind::Integer => Some("numeric"),
                Kind::Number => Some("decimal"),
                _ => None,
            };
            let oninput = on_input.reform(move |e: InputEvent| {
                (
                    name.clone(),
                    e.target_unchecked_into::<HtmlInputElement>().value(),
                )
            });
            html! { <input type="text" data-testid={testid} {inputmode} value={text} {placeholder} {oninput} /> }
        }
    };
    html! {
        <label class="param" data-param={field.name.clone()}>
            <span class="param-name">
                { field.name.clone() }
                if field.required {
                    <span class="required" title="required">{ " *" }</span>
                }
            </span>
            { input }
            if let Some(text) = &field.description {
                <span class="muted small">{ text.clone() }</span>
            }
        </label>
    }
}
