//! The keyboard shortcuts of the task page, listed once: the `?` overlay shows this
//! table, and the panel's key handler is documented by it.

use yew::prelude::*;

/// (keys, what they do), in the order the overlay lists them.
pub const SHORTCUTS: &[(&str, &str)] = &[
    ("?", "show or hide this list"),
    ("/", "search this log"),
    (
        "Enter / Shift+Enter",
        "next / previous search match (in the search box)",
    ),
    ("e / Shift+E", "next / previous ERROR line"),
    ("↓ / ↑ or j / k", "select the next / previous line"),
    (
        "Shift+click",
        "select the lines from the selected one to this one (#L120-L180)",
    ),
    (
        "t",
        "change the time column: local, UTC, since start, since previous line",
    ),
    ("m", "show or hide metadata"),
    ("w", "wrap long lines on or off"),
    ("[ / ]", "fold / unfold every group"),
    (
        "o",
        "fold or unfold the selected group (or the one around the selected line)",
    ),
    ("End", "go to the newest line and follow"),
    ("Esc", "close the line's details or this list"),
];

#[derive(Properties, PartialEq)]
pub struct ShortcutsProps {
    pub on_close: Callback<()>,
}

#[function_component]
pub fn Shortcuts(props: &ShortcutsProps) -> Html {
    let close = props.on_close.reform(|_: MouseEvent| ());
    let rows: Html = SHORTCUTS
        .iter()
        .map(|(keys, what)| html! { <tr><th scope="row"><kbd>{ *keys }</kbd></th><td>{ *what }</td></tr> })
        .collect();
    html! {
        <div class="overlay" data-testid="shortcuts" role="dialog" aria-modal="true" aria-labelledby="shortcuts-title">
            <div class="overlay-box">
                <header>
                    <h2 id="shortcuts-title">{ "Keyboard shortcuts" }</h2>
                    <button class="link" onclick={close} title="close (Esc)" aria-label="close">{ "×" }</button>
                </header>
                <table>{ rows }</table>
            </div>
        </div>
    }
}
