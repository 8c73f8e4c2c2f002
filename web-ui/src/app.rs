//! Routes and the shell around every page.

use yew::prelude::*;
use yew_router::prelude::*;

use crate::auth::{AuthAction, AuthContext, AuthProvider};
use crate::pages::{
    login::Login, nodes::NodesPage, search::SearchPageView, settings::LoggingSettings,
    task::TaskPage, tasks::TasksPage,
};

#[derive(Debug, Clone, PartialEq, Routable)]
pub enum Route {
    #[at("/")]
    Home,
    #[at("/login")]
    Login,
    #[at("/tasks")]
    Tasks,
    #[at("/tasks/:id")]
    Task { id: String },
    #[at("/search")]
    Search,
    #[at("/admin/settings/logging")]
    Settings,
    #[at("/admin/nodes")]
    Nodes,
    #[not_found]
    #[at("/404")]
    NotFound,
}

#[component]
pub fn App() -> Html {
    html! {
        <BrowserRouter>
            <AuthProvider>
                <Shell />
            </AuthProvider>
        </BrowserRouter>
    }
}

#[component]
fn Shell() -> Html {
    let auth = use_context::<AuthContext>().expect("AuthProvider wraps the shell");
    let route = use_route::<Route>().unwrap_or(Route::NotFound);
    if auth.token.is_none() && route != Route::Login {
        // Remember where the user was going, so login returns there.
        let here = web_sys::window()
            .and_then(|w| {
                let l = w.location();
                Some(format!(
                    "{}{}{}",
                    l.pathname().ok()?,
                    l.search().ok()?,
                    l.hash().ok()?
                ))
            })
            .unwrap_or_default();
        let query = [("next", here)];
        return html! { <RedirectWithQuery to={Route::Login} query={query.to_vec()} /> };
    }
    let logout = {
        let auth = auth.clone();
        Callback::from(move |_: MouseEvent| auth.dispatch(AuthAction::LoggedOut))
    };
    let page = match route.clone() {
        Route::Home => html! { <Redirect<Route> to={Route::Tasks} /> },
        Route::Login => html! { <Login /> },
        Route::Tasks => html! { <TasksPage /> },
        Route::Task { id } => html! { <TaskPage {id} /> },
        Route::Search => html! { <SearchPageView /> },
        Route::Settings => html! { <LoggingSettings /> },
        Route::Nodes => html! { <NodesPage /> },
        Route::NotFound => html! {
            <main class="page empty-state">
                <h1>{ "Page not found" }</h1>
                <p><Link<Route> to={Route::Tasks}>{ "Go to the task list" }</Link<Route>></p>
            </main>
        },
    };
    if route == Route::Login {
        return page;
    }
    let role = auth.role.map(|r| r.to_string()).unwrap_or_default();
    html! {
        <>
            <header class="topbar">
                <Link<Route> to={Route::Tasks} classes="brand">{ "Tasklens" }</Link<Route>>
                <nav>
                    <Link<Route> to={Route::Tasks}>{ "Tasks" }</Link<Route>>
                    <Link<Route> to={Route::Search}>{ "Search" }</Link<Route>>
                    <Link<Route> to={Route::Settings}>{ "Admin Settings › Logging" }</Link<Route>>
                    if auth.is_admin() {
                        <Link<Route> to={Route::Nodes}>{ "Admin › Nodes" }</Link<Route>>
                    }
                </nav>
                <GlobalSearch />
                <span class="who" title="the token you logged in with">{ format!("{} ({role})", auth.name) }</span>
                <button class="link" onclick={logout} data-testid="logout">{ "Log out" }</button>
            </header>
            { page }
        </>
    }
}

/// The search box of the top bar: Enter opens `/search` for the text.
#[component]
fn GlobalSearch() -> Html {
    let navigator = use_navigator();
    let onkeydown = Callback::from(move |e: KeyboardEvent| {
        if e.key() != "Enter" {
            return;
        }
        let Some(input) = e.target_dyn_into::<web_sys::HtmlInputElement>() else {
            return;
        };
        let text = input.value();
        if text.trim().is_empty() {
            return;
        }
        if let Some(nav) = &navigator {
            let query = crate::search_url::SearchQuery {
                text,
                ..Default::default()
            };
            let pairs = crate::view_url::decode_pairs(&query.to_query());
            if nav.push_with_query(&Route::Search, &pairs).is_err() {
                nav.push(&Route::Search);
            }
            input.set_value("");
        }
    });
    html! {
        <input class="global-search" type="search" placeholder="Search all tasks…" aria-label="search the logs of every task"
               {onkeydown} data-testid="global-search" />
    }
}

#[derive(Properties, PartialEq)]
struct RedirectWithQueryProps {
    to: Route,
    query: Vec<(&'static str, String)>,
}

#[component]
fn RedirectWithQuery(props: &RedirectWithQueryProps) -> Html {
    let navigator = use_navigator();
    let (to, query) = (props.to.clone(), props.query.clone());
    use_effect_with((), move |_| {
        if let Some(nav) = navigator {
            if nav.replace_with_query(&to, &query).is_err() {
                nav.replace(&to);
            }
        }
    });
    html! {}
}

/// Turns an API error into a message, logging out on 401.
pub fn handle_error(auth: &AuthContext, error: crate::api::ApiError) -> String {
    if error == crate::api::ApiError::Unauthorized {
        auth.dispatch(AuthAction::LoggedOut);
    }
    error.to_string()
}
