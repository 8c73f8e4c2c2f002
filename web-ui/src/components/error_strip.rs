//! The strip above a task's log that puts its problems first: how many errors and
//! warnings it wrote, and its first error, a click away.

use yew::prelude::*;

#[derive(Properties, PartialEq)]
pub struct ErrorStripProps {
    pub errors: u64,
    pub warnings: u64,
    /// The task's first ERROR line: seq and message.
    pub first_error: Option<(u64, String)>,
    pub on_jump: Callback<u64>,
}

#[function_component]
pub fn ErrorStrip(props: &ErrorStripProps) -> Html {
    if props.errors == 0 && props.warnings == 0 {
        return html! {};
    }
    let plural = |n: u64, one: &str| format!("{n} {one}{}", if n == 1 { "" } else { "s" });
    let first = props.first_error.as_ref().map(|(seq, message)| {
        let seq = *seq;
        let onclick = props.on_jump.reform(move |e: MouseEvent| {
            e.prevent_default();
            seq
        });
        let first_line = message.lines().next().unwrap_or("").to_owned();
        html! {
            <a class="first-error" href={format!("#L{seq}")} {onclick} data-testid="first-error"
               title="go to the first error (e: next error, Shift+E: previous)">
                <span class="muted">{ format!("First error, line {seq}: ") }</span>{ crate::ansi::strip(&first_line) }
            </a>
        }
    });
    html! {
        <div class={classes!("error-strip", (props.errors > 0).then_some("has-errors"))} data-testid="error-strip" role="status">
            if props.errors > 0 {
                <span class="strip-errors" data-testid="error-count">{ plural(props.errors, "error") }</span>
            }
            if props.warnings > 0 {
                <span class="strip-warnings" data-testid="warning-count">{ plural(props.warnings, "warning") }</span>
            }
            { first.unwrap_or_else(|| html! {}) }
        </div>
    }
}
