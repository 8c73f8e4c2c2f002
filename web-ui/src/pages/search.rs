//! `/search`: records across every task (`GET /api/logs/search`), newest task first;
//! each hit opens its task at the line (`/tasks/{id}#L{seq}`). The query is in the
//! URL, so a search can be shared and survives a reload.

use std::rc::Rc;

use protocol::{LogLevel, SearchHit, SearchPage, TaskStatus};
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;
use yew_router::prelude::*;

use crate::app::{handle_error, Route};
use crate::auth::AuthContext;
use crate::format::date_time;
use crate::search_url::SearchQuery;

/// Hits per request.
const PAGE: usize = 100;

#[derive(Default, PartialEq)]
struct Results {
    hits: Vec<SearchHit>,
    cursor: Option<String>,
    /// Records the last page read without filling itself (`scanned`).
    scanned: Option<u64>,
    loading: bool,
    error: Option<String>,
}

enum ResultsAction {
    Loading { fresh: bool },
    Loaded(SearchPage),
    Failed(String),
}

impl Reducible for Results {
    type Action = ResultsAction;

    fn reduce(self: Rc<Self>, action: ResultsAction) -> Rc<Self> {
        let mut next = Results {
            hits: self.hits.clone(),
            cursor: self.cursor.clone(),
            scanned: self.scanned,
            loading: false,
            error: None,
        };
        match action {
            ResultsAction::Loading { fresh } => {
                if fresh {
                    next = Results::default();
                }
                next.loading = true;
            }
            ResultsAction::Loaded(page) => {
                next.hits.extend(page.hits);
                next.cursor = page.next_cursor.filter(|_| page.has_more);
                next.scanned = page.scanned;
            }
            ResultsAction::Failed(message) => next.error = Some(message),
        }
        Rc::new(next)
    }
}

#[component]
pub fn SearchPageView() -> Html {
    let auth = use_context::<AuthContext>().expect("auth context");
    let location = use_location();
    let navigator = use_navigator();
    let query = SearchQuery::from_query(location.as_ref().map_or("", |l| l.query_str()));
    let results = use_reducer(Results::default);

    let load = {
        let (auth, results) = (auth.clone(), results.clone());
        Callback::from(move |(query, cursor): (SearchQuery, Option<String>)| {
            let Some(api) = auth.api() else { return };
            let (auth, results) = (auth.clone(), results.clone());
            results.dispatch(ResultsAction::Loading {
                fresh: cursor.is_none(),
            });
            wasm_bindgen_futures::spawn_local(async move {
                match api.search(&query.api_query(cursor.as_deref(), PAGE)).await {
                    Ok(page) => results.dispatch(ResultsAction::Loaded(page)),
                    Err(e) => results.dispatch(ResultsAction::Failed(handle_error(&auth, e))),
                }
            });
        })
    };
    {
        let load = load.clone();
        use_effect_with(query.clone(), move |query| {
            if !query.is_empty() {
                load.emit((query.clone(), None));
            }
        });
    }

    let text_ref = use_node_ref();
    let regex_ref = use_node_ref();
    let level_ref = use_node_ref();
    let plugin_ref = use_node_ref();
    let status_ref = use_node_ref();
    let submit = {
        let refs = (
            text_ref.clone(),
            regex_ref.clone(),
            level_ref.clone(),
            plugin_ref.clone(),
            status_ref.clone(),
        );
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let input = |r: &NodeRef| r.cast::<HtmlInputElement>();
            let select = |r: &NodeRef| {
                r.cast::<HtmlSelectElement>()
                    .map(|s| s.value())
                    .unwrap_or_default()
            };
            let next = SearchQuery {
                text: input(&refs.0).map(|i| i.value()).unwrap_or_default(),
                regex: input(&refs.1).is_some_and(|i| i.checked()),
                level: select(&refs.2).parse().ok(),
                plugin: input(&refs.3)
                    .map(|i| i.value().trim().to_owned())
                    .unwrap_or_default(),
                status: select(&refs.4),
            };
            if let Some(nav) = &navigator {
                let pairs = crate::view_url::decode_pairs(&next.to_query());
                if nav.push_with_query(&Route::Search, &pairs).is_err() {
                    nav.push(&Route::Search);
                }
            }
        })
    };
    let more = {
        let (load, query, cursor) = (load.clone(), query.clone(), results.cursor.clone());
        Callback::from(move |_: MouseEvent| {
            if let Some(cursor) = cursor.clone() {
                load.emit((query.clone(), Some(cursor)));
            }
        })
    };

    let level_options: Html = [
        None,
        Some(LogLevel::Info),
        Some(LogLevel::Warning),
        Some(LogLevel::Error),
    ]
    .into_iter()
    .map(|level| {
        let value = level.map(|l| l.to_string()).unwrap_or_default();
        let label = level.map_or("any level".to_owned(), |l| format!("{l} and above"));
        html! { <option value={value} selected={query.level == level}>{ label }</option> }
    })
    .collect();
    let status_options: Html = std::iter::once("")
        .chain(TaskStatus::ALL.iter().map(|s| s.as_str()))
        .map(|s| {
            let label = if s.is_empty() { "any status" } else { s };
            html! { <option value={s} selected={query.status == s}>{ label }</option> }
        })
        .collect();
    let mark = (!query.regex).then_some(query.text.as_str());
    let rows: Html = results.hits.iter().map(|hit| hit_row(hit, mark)).collect();
    let summary = if query.is_empty() {
        "Search the logs of every task: type a text, or pick a level.".to_owned()
    } else if results.loading && results.hits.is_empty() {
        "Searching…".to_owned()
    } else if results.hits.is_empty() && results.cursor.is_none() && results.error.is_none() {
        "No record matches.".to_owned()
    } else {
        let more = if results.cursor.is_some() { "+" } else { "" };
        format!("{}{more} records, newest task first", results.hits.len())
    };
    html! {
        <main class="page search-page">
            <h1>{ "Search every task" }</h1>
            <form class="search-form" onsubmit={submit} role="search">
                <input ref={text_ref} type="search" placeholder="text in the message" value={query.text.clone()}
                       aria-label="text to find" data-testid="search-text" />
                <label class="inline"><input ref={regex_ref} type="checkbox" checked={query.regex} data-testid="search-regex" />{ " regex" }</label>
                <select ref={level_ref} aria-label="level" data-testid="search-level">{ level_options }</select>
                <input ref={plugin_ref} placeholder="plugin" value={query.plugin.clone()} aria-label="plugin" data-testid="search-plugin" />
                <select ref={status_ref} aria-label="task status" data-testid="search-status">{ status_options }</select>
                <button type="submit" data-testid="search-submit">{ "Search" }</button>
            </form>
            <p class="muted" data-testid="search-summary" aria-live="polite">{ summary }</p>
            if let Some(message) = results.error.clone() {
                <p class="error" role="alert" data-testid="search-error">{ message }</p>
            }
            if !results.hits.is_empty() {
                <table class="tasks search-hits" data-testid="search-hits">
                    <thead><tr>
                        <th>{ "Task" }</th><th>{ "Plugin" }</th><th>{ "Time" }</th>
                        <th>{ "Level" }</th><th>{ "Source" }</th><th>{ "Message" }</th>
                    </tr></thead>
                    <tbody>{ rows }</tbody>
                </table>
            }
            if let Some(scanned) = results.scanned {
                <p class="muted" data-testid="search-scanned">
                    { format!("This page stopped after reading {scanned} records; more may match further on.") }
                </p>
            }
            if results.cursor.is_some() {
                <button onclick={more} disabled={results.loading} data-testid="search-more">{ "More" }</button>
            }
        </main>
    }
}

fn hit_row(hit: &SearchHit, mark: Option<&str>) -> Html {
    let id = hit.task_id.to_string();
    let href = format!("/tasks/{id}#L{}", hit.log.seq);
    let level = hit.log.level.as_str();
    let message = crate::ansi::strip(hit.log.message());
    html! {
        <tr class={format!("lvl-{level}")} data-testid="search-hit" data-task={id.clone()} data-seq={hit.log.seq.to_string()}>
            <td><a href={href} class="mono" title="open the task at this line">{ format!("{id}#L{}", hit.log.seq) }</a></td>
            <td>{ &hit.plugin }</td>
            <td>{ date_time(hit.log.timestamp) }</td>
            <td class="lvl">{ level }</td>
            <td>{ hit.log.source.to_string() }</td>
            <td class="message">{ marked(&message, mark) }</td>
        </tr>
    }
}

/// The message with the first occurrence of `text` marked, found as the server
/// finds it (ASCII letters without case).
fn marked(message: &str, text: Option<&str>) -> Html {
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return html! { { message } };
    };
    let (hay, needle) = (message.as_bytes(), text.as_bytes());
    let found = (0..=hay.len().saturating_sub(needle.len())).find(|&i| {
        hay.len() >= needle.len() && hay[i..i + needle.len()].eq_ignore_ascii_case(needle)
    });
    match found {
        Some(at) if message.is_char_boundary(at) && message.is_char_boundary(at + needle.len()) => {
            html! {
                <>
                    { &message[..at] }
                    <mark>{ &message[at..at + needle.len()] }</mark>
                    { &message[at + needle.len()..] }
                </>
            }
        }
        _ => html! { { message } },
    }
}
