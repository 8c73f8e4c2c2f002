//! The log grid (only the rows in sight, each with its time in the view's time
//! mode) and the detail pane of the selected line.

use gloo_timers::callback::Timeout;
use protocol::LogEntry;
use yew::prelude::*;

use super::{LogPanel, Msg};
use crate::components::log_row::{line_text, message_html, row, RowState};
use crate::format::clock;
use crate::view_prefs::{offset, utc_clock, TimeMode};
use crate::view_url::ViewFilter;

impl LogPanel {
    pub(super) fn viewport(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let geometry = self.geometry();
        let (area, _) = geometry.area_and_scale();
        let (start, end, layer_top) = geometry.window();
        let current = self
            .model
            .match_cursor
            .and_then(|i| self.model.matches.get(i))
            .map(|s| u64::from(*s));
        let rows: Html = (start..end)
            .map(|pos| match self.model.entry(pos) {
                Some(entry) => row(
                    entry,
                    &self.matcher,
                    RowState {
                        pos,
                        time: self.time_text(ctx, pos, entry),
                        selected: self.selected == Some(entry.seq),
                        current: current == Some(entry.seq),
                    },
                    &self.events,
                ),
                None => {
                    html! { <div key={format!("p{pos}")} class="log-row placeholder">{ "…" }</div> }
                }
            })
            .collect();
        let empty = if !self.model.index_loaded {
            html! { <p class="empty-state">{ "Loading lines…" }</p> }
        } else if self.model.index.is_empty() {
            let filtered = self.filter != ViewFilter::default();
            html! {
                <div class="empty-state">
                    if filtered {
                        <p>{ "No lines match this view." }</p>
                        <button class="secondary" onclick={link.callback(|_| Msg::ClearFilters)}>{ "Clear filters" }</button>
                    } else if self.task_running {
                        <p>{ "No lines yet. They appear here as the task writes them." }</p>
                    } else {
                        <p>{ "This task wrote no lines at or above the task log level." }</p>
                    }
                </div>
            }
        } else {
            html! {}
        };
        html! {
            <div class={classes!("viewport", (!self.prefs.show_meta).then_some("hide-meta"))} ref={self.viewport.clone()} onscroll={link.callback(|_: Event| Msg::Scrolled)}
                 data-testid="log-viewport" tabindex="0" role="grid" aria-label="log lines" aria-rowcount={self.model.total().to_string()}
                 aria-activedescendant={self.selected.map(|seq| format!("row-{seq}"))}
                 style={format!("--seq-digits: {}", self.model.seq_digits())}>
                <div class="spacer" style={format!("height:{area}px")}></div>
                <div class="rows" style={format!("top:{layer_top}px")}>{ rows }</div>
                { empty }
            </div>
        }
    }

    /// The time column's text for the row at `pos`, in the view's time mode.
    fn time_text(&self, ctx: &Context<Self>, pos: usize, entry: &LogEntry) -> String {
        match self.prefs.time {
            TimeMode::Local => clock(entry.timestamp),
            TimeMode::Utc => utc_clock(entry.timestamp),
            TimeMode::SinceStart => match ctx.props().started_at {
                Some(start) => offset(entry.timestamp.as_micros() - start.as_micros()),
                None => clock(entry.timestamp),
            },
            // The line above in the view; blank until it is loaded.
            TimeMode::SincePrevious => match pos.checked_sub(1).and_then(|p| self.model.entry(p)) {
                Some(previous) => {
                    offset(entry.timestamp.as_micros() - previous.timestamp.as_micros())
                }
                None if pos == 0 => offset(0),
                None => String::new(),
            },
        }
    }

    /// Copies line `seq` as text, as the export writes it.
    pub(super) fn copy(&mut self, ctx: &Context<Self>, seq: u64) -> bool {
        if let Some(entry) = self.model.entry_by_seq(seq) {
            let text = line_text(entry);
            if let Some(window) = web_sys::window() {
                let _ = window.navigator().clipboard().write_text(&text);
            }
            self.flash = Some(format!("Line {seq} copied"));
            let link = ctx.link().clone();
            Timeout::new(1500, move || link.send_message(Msg::DownloadDone(None))).forget();
        }
        true
    }

    pub(super) fn detail(&self, ctx: &Context<Self>) -> Html {
        let Some(seq) = self.selected else {
            return html! {};
        };
        let Some(entry) = self.model.entry_by_seq(seq) else {
            return html! {};
        };
        let meta = entry
            .metadata_value()
            .map(|m| serde_json::to_string_pretty(&m).unwrap_or_default());
        let link = ctx.link();
        let copy = link.callback(move |_| Msg::Copy(seq));
        html! {
            <aside class="detail" data-testid="log-detail">
                <header>
                    <strong>{ format!("Line {seq}") }</strong>
                    <span class={format!("lvl lvl-{}", entry.level.as_str())}>{ entry.level.as_str() }</span>
                    <span class="src">{ entry.source.to_string() }</span>
                    <span class="ts">{ entry.timestamp.to_string() }</span>
                    <button class="secondary" onclick={copy}>{ "Copy line" }</button>
                    <button class="link" onclick={link.callback(|_| Msg::CloseDetail)} title="close (Esc)">{ "×" }</button>
                </header>
                <pre class="message">{ message_html(&entry.message, &self.matcher) }</pre>
                if let Some(meta) = meta {
                    <pre class="metadata">{ meta }</pre>
                }
            </aside>
        }
    }
}
