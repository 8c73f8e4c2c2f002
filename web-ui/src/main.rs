//! The Tasklens web console: a Yew single-page app compiled to wasm and served by the
//! Tasklens server. Layout:
//!
//! - `app`: routes (`/login`, `/tasks`, `/tasks/{id}`, `/admin/settings/logging`)
//!   and the shell around them (top bar, auth redirect).
//! - `auth`: the token (kept in `sessionStorage` for the browser session) and who it
//!   belongs to, as a context.
//! - `api`: REST calls with the token; `live`: WebSocket connections.
//! - `pages`: one component per route; `components`: the pieces they share, above
//!   all the log panel.
//! - `ansi`, `view_url`, `search_url`, `task_query`, `params_form`, `format`: pure helpers (unit-tested natively).

mod ansi;
mod api;
mod app;
mod auth;
mod components;
mod format;
mod live;
mod pages;
mod params_form;
mod search_url;
mod task_query;
mod view_prefs;
mod view_url;

fn main() {
    yew::Renderer::<app::App>::new().render();
}
