//! `/login`: paste a token; it is checked with `GET /api/me` before it is kept.

use web_sys::HtmlInputElement;
use yew::prelude::*;
use yew_router::prelude::*;

use crate::api::Api;
use crate::app::Route;
use crate::auth::{AuthAction, AuthContext};

#[component]
pub fn Login() -> Html {
    let auth = use_context::<AuthContext>().expect("auth context");
    let navigator = use_navigator().expect("a router");
    let input = use_node_ref();
    let error = use_state(|| None::<String>);
    let busy = use_state(|| false);

    let submit = {
        let (auth, input, error, busy, navigator) = (
            auth.clone(),
            input.clone(),
            error.clone(),
            busy.clone(),
            navigator.clone(),
        );
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let token = input
                .cast::<HtmlInputElement>()
                .map(|i| i.value().trim().to_owned())
                .unwrap_or_default();
            if token.is_empty() {
                error.set(Some("Paste your API token (it starts with tlk_).".into()));
                return;
            }
            let (auth, error, busy, navigator) =
                (auth.clone(), error.clone(), busy.clone(), navigator.clone());
            busy.set(true);
            wasm_bindgen_futures::spawn_local(async move {
                match Api::new(token.clone()).whoami().await {
                    Ok(me) => {
                        auth.dispatch(AuthAction::LoggedIn {
                            token,
                            name: me.name,
                            role: me.role,
                        });
                        let next = web_sys::window()
                            .and_then(|w| w.location().search().ok())
                            .and_then(|s| web_sys::UrlSearchParams::new_with_str(&s).ok())
                            .and_then(|p| p.get("next"))
                            .filter(|n| safe_next(n));
                        match next {
                            Some(path) => {
                                let _ = web_sys::window().map(|w| w.location().set_href(&path));
                            }
                            None => navigator.push(&Route::Tasks),
                        }
                    }
                    Err(crate::api::ApiError::Unauthorized) => {
                        error.set(Some("That token is not valid.".into()));
                        busy.set(false);
                    }
                    Err(other) => {
                        error.set(Some(other.to_string()));
                        busy.set(false);
                    }
                }
            });
        })
    };

    html! {
        <main class="login">
            <form class="card" onsubmit={submit}>
                <h1>{ "Tasklens" }</h1>
                <p class="muted">{ "Log in with an API token. The server printed an admin token on its first start; admins create more with " }<code>{ "tasklens tokens create" }</code>{ "." }</p>
                <label for="token">{ "API token" }</label>
                <input id="token" ref={input} type="password" autocomplete="current-password" placeholder="tlk_…" data-testid="login-token" autofocus=true />
                if let Some(message) = (*error).clone() {
                    <p class="error" role="alert" data-testid="login-error">{ message }</p>
                }
                <button type="submit" class="primary" disabled={*busy} data-testid="login-submit">{ if *busy { "Checking…" } else { "Log in" } }</button>
            </form>
        </main>
    }
}

/// Whether `next` is a path on this site to return to after login. Browsers read
/// `/\host` like `//host` and drop tabs and newlines inside URLs, so only a
/// plain path is accepted: it starts with one `/`, holds no backslash, control
/// character or space, and is not the login page itself.
pub fn safe_next(next: &str) -> bool {
    let mut chars = next.chars();
    chars.next() == Some('/')
        && !matches!(chars.next(), Some('/' | '\\'))
        && !next
            .chars()
            .any(|c| c == '\\' || c.is_control() || c.is_whitespace())
        && !next.starts_with("/login")
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_paths_on_this_site_are_followed_after_login() {
        for ok in [
            "/tasks",
            "/tasks/1?level=ERROR#L5",
            "/",
            "/admin/settings/logging",
        ] {
            assert!(safe_next(ok), "{ok}");
        }
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "/\\/evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/x\\y",
            "https://evil.example",
            "javascript:alert(1)",
            "evil.example",
            "",
            "/login",
            "/login?next=/x",
            "/ /evil.example",
        ] {
            assert!(!safe_next(bad), "{bad:?}");
        }
    }
}
