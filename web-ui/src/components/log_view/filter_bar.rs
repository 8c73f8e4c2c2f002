//! The filter bar: level, sources, search (with match stepping), metadata and time
//! (in `conditions`), and the view's status line (count, live state, follow, time mode, downloads); and what
//! each of its controls does to the view.

use std::collections::BTreeMap;

use gloo_timers::callback::Timeout;
use protocol::LogLevel;
use web_sys::{HtmlInputElement, KeyboardEvent};
use yew::prelude::*;

use super::{LiveState, LogPanel, Msg};
use crate::view_prefs::TimeMode;
use crate::view_url::{short_time, ViewFilter};

const TYPING_DEBOUNCE_MS: u32 = 250;

impl LogPanel {
    /// Puts `filter` in place of the view's, and the inputs with it.
    pub(super) fn reset_filter(&mut self, filter: ViewFilter) {
        self.range_from = filter.since.map(short_time).unwrap_or_default();
        self.range_to = filter.until.map(short_time).unwrap_or_default();
        self.range_error = None;
        self.filter = filter;
        self.search_text.clear();
        self.meta_key.clear();
        self.meta_value.clear();
        self.meta_draft = None;
    }

    /// Sends `msg` once typing pauses (a later keystroke starts the wait again).
    pub(super) fn after_typing(&mut self, ctx: &Context<Self>, msg: fn() -> Msg) {
        let link = ctx.link().clone();
        self.debounce = Some(Timeout::new(TYPING_DEBOUNCE_MS, move || {
            link.send_message(msg())
        }));
    }

    /// A filter control changed: the view reloads when its filter did.
    pub(super) fn on_filter(&mut self, ctx: &Context<Self>, msg: Msg) -> bool {
        match msg {
            Msg::SetLevel(level) => {
                if let Ok(level) = level.parse() {
                    self.filter.level = level;
                    self.reload(ctx);
                }
                true
            }
            Msg::ToggleSource(source) => {
                match self.filter.sources.iter().position(|s| *s == source) {
                    Some(i) => {
                        self.filter.sources.remove(i);
                    }
                    None => self.filter.sources.push(source),
                }
                self.reload(ctx);
                true
            }
            Msg::ClearSources => {
                self.filter.sources.clear();
                self.reload(ctx);
                true
            }
            Msg::SearchTyped(text) => {
                self.search_text = text;
                self.after_typing(ctx, || Msg::SearchApply);
                true
            }
            Msg::SearchApply => {
                self.debounce = None;
                if self.search_text != self.filter.q {
                    self.filter.q = self.search_text.clone();
                    self.reload(ctx);
                }
                true
            }
            Msg::ToggleRegex => {
                self.filter.regex = !self.filter.regex;
                if !self.filter.q.is_empty() {
                    self.reload(ctx);
                }
                true
            }
            Msg::ToggleOnly => {
                self.filter.only_matching = !self.filter.only_matching;
                if !self.filter.q.is_empty() {
                    self.reload(ctx);
                }
                true
            }
            Msg::ClearFilters => {
                self.reset_filter(ViewFilter::default());
                self.reload(ctx);
                true
            }
            _ => false,
        }
    }

    pub(super) fn level_counts(&self) -> BTreeMap<LogLevel, u64> {
        let mut out = BTreeMap::new();
        for source in &self.counts {
            if !self.filter.sources.is_empty() && !self.filter.sources.contains(&source.source) {
                continue;
            }
            for (level, n) in &source.levels {
                *out.entry(*level).or_insert(0) += n;
            }
        }
        out
    }

    /// How many records of `level` the task has, whatever the view's sources.
    pub(super) fn task_level_total(&self, level: LogLevel) -> u64 {
        self.counts
            .iter()
            .filter_map(|c| c.levels.get(&level))
            .sum()
    }

    pub(super) fn toolbar(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let levels = self.level_counts();
        let level_options: Html = LogLevel::ALL
            .iter()
            .map(|level| {
                let n: u64 = levels.range(*level..).map(|(_, n)| n).sum();
                html! { <option value={level.as_str()} selected={*level == self.filter.level}>{ format!("{} and above ({n})", level.as_str()) }</option> }
            })
            .collect();
        let chips: Html = self
            .counts
            .iter()
            .map(|c| {
                let n: u64 = c.levels.range(self.filter.level..).map(|(_, n)| n).sum();
                let on = self.filter.sources.contains(&c.source);
                let name = c.source.clone();
                html! {
                    <button type="button" class={classes!("chip", on.then_some("on"))} data-source={c.source.clone()} aria-pressed={on.to_string()}
                            onclick={link.callback(move |_| Msg::ToggleSource(name.clone()))}>
                        { c.source.clone() }<span class="count">{ n }</span>
                    </button>
                }
            })
            .collect();
        let time_options: Html = TimeMode::ALL
            .iter()
            .map(|mode| html! { <option value={mode.as_str()} selected={*mode == self.prefs.time}>{ mode.label() }</option> })
            .collect();
        let find = self.filter.find_spec().is_some();
        let match_info = if find {
            let at = self
                .model
                .match_cursor
                .map(|i| (i + 1).to_string())
                .unwrap_or_else(|| "–".into());
            html! {
                <span class="matches" data-testid="match-count">
                    { format!("{at} / {} matches", self.model.matches.len()) }
                    <button type="button" title="previous match (Shift+Enter)" onclick={link.callback(|_| Msg::PrevMatch)} data-testid="match-prev">{ "↑" }</button>
                    <button type="button" title="next match (Enter)" onclick={link.callback(|_| Msg::NextMatch)} data-testid="match-next">{ "↓" }</button>
                </span>
            }
        } else {
            html! {}
        };
        let on_search_key =
            link.batch_callback(|e: KeyboardEvent| match (e.key().as_str(), e.shift_key()) {
                ("Enter", false) => Some(Msg::NextMatch),
                ("Enter", true) => Some(Msg::PrevMatch),
                _ => None,
            });
        let live = match (self.task_running, self.live_state) {
            (false, _) => html! { <span class="live done">{ "finished" }</span> },
            (true, LiveState::Live) => {
                html! { <span class="live on" title="new lines appear as they are written">{ "● live" }</span> }
            }
            (true, LiveState::Connecting) => html! { <span class="live">{ "connecting…" }</span> },
            (true, LiveState::Reconnecting) => {
                html! { <span class="live off" title="the connection dropped; resuming from the last line shown">{ "reconnecting…" }</span> }
            }
        };
        html! {
            <div class="toolbar">
                <div class="filters">
                    <label class="field">{ "Level" }
                        <select data-testid="filter-level" onchange={link.callback(|e: Event| Msg::SetLevel(e.target_unchecked_into::<web_sys::HtmlSelectElement>().value()))}>{ level_options }</select>
                    </label>
                    <div class="search">
                        <input ref={self.search_input.clone()} type="search" placeholder="Search ( / )" data-testid="filter-search"
                               value={self.search_text.clone()}
                               oninput={link.callback(|e: InputEvent| Msg::SearchTyped(e.target_unchecked_into::<HtmlInputElement>().value()))}
                               onkeydown={on_search_key} />
                        <label class="toggle" title="regular expression (Rust regex syntax)"><input type="checkbox" data-testid="filter-regex" checked={self.filter.regex} onchange={link.callback(|_| Msg::ToggleRegex)} />{ ".*" }</label>
                        <label class="toggle" title="show only matching lines"><input type="checkbox" data-testid="filter-only" checked={self.filter.only_matching} onchange={link.callback(|_| Msg::ToggleOnly)} />{ "only matches" }</label>
                        { match_info }
                        if let Some(e) = &self.matcher_error {
                            <span class="error small">{ format!("regex: {e}") }</span>
                        }
                    </div>
                    { self.condition_inputs(ctx) }
                </div>
                { self.meta_chips(ctx) }
                <div class="sources" data-testid="filter-source">
                    { chips }
                    if !self.filter.sources.is_empty() {
                        <button type="button" class="link" onclick={link.callback(|_| Msg::ClearSources)}>{ "all sources" }</button>
                    }
                </div>
                <div class="status-line">
                    <span data-testid="log-count" class="count" aria-busy={(!self.model.index_loaded).to_string()}>
                        { if self.model.index_loaded { format!("{} lines", self.model.total()) } else { "loading…".to_owned() } }
                    </span>
                    { live }
                    <button type="button" class={classes!("follow", self.follow.then_some("on"))} aria-pressed={self.follow.to_string()} data-testid="follow-toggle"
                            title="keep the newest line in view" onclick={link.callback(|_| Msg::ToggleFollow)}>{ if self.follow { "Following" } else { "Follow" } }</button>
                    <label class="field">{ "Time" }
                        <select data-testid="time-mode" onchange={link.callback(|e: Event| {
                            let value = e.target_unchecked_into::<web_sys::HtmlSelectElement>().value();
                            Msg::SetTimeMode(TimeMode::parse(&value).unwrap_or_default())
                        })}>{ time_options }</select>
                    </label>
                    if self.model.outline.has_groups() {
                        <span class="fold-all">
                            <button type="button" class="secondary" onclick={link.callback(|_| Msg::FoldAll(true))} data-testid="expand-all" title="unfold every group (])">{ "Expand all" }</button>
                            <button type="button" class="secondary" onclick={link.callback(|_| Msg::FoldAll(false))} data-testid="collapse-all" title="fold every group ([)">{ "Collapse all" }</button>
                        </span>
                    }
                    <label class="toggle" title="show metadata in the rows (m)"><input type="checkbox" data-testid="show-meta" checked={self.prefs.show_meta} onchange={link.callback(|_| Msg::ToggleMeta)} />{ "metadata" }</label>
                    <label class="toggle" title="wrap long lines (w)"><input type="checkbox" data-testid="wrap-lines" checked={self.prefs.wrap} onchange={link.callback(|_| Msg::ToggleWrap)} />{ "wrap" }</label>
                    <button type="button" class="secondary" onclick={link.callback(|_| Msg::ToggleHelp)} data-testid="shortcuts-button" title="keyboard shortcuts (?)" aria-label="keyboard shortcuts">{ "?" }</button>
                    <button type="button" class="secondary" onclick={link.callback(|_| Msg::Download("ndjson"))} data-testid="download-ndjson" title="all lines of this view, as JSON lines">{ "⇩ NDJSON" }</button>
                    <button type="button" class="secondary" onclick={link.callback(|_| Msg::Download("text"))} data-testid="download-text" title="all lines of this view, as text">{ "⇩ Text" }</button>
                    if let Some(flash) = &self.flash {
                        <span class="flash" role="status">{ flash.clone() }</span>
                    }
                </div>
            </div>
        }
    }
}
