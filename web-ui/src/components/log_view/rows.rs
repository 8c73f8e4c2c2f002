//! The log grid (only the rows in sight, each with its time in the view's time
//! mode) and the detail pane of the selected line.

use gloo_timers::callback::Timeout;
use protocol::LogEntry;
use yew::prelude::*;

use super::geometry::Geometry;
use super::model::LogModel;
use super::outline::Row;
use super::{LogPanel, Msg};
use crate::components::log_row::{line_text, message_html, row, RowState};
use crate::format::{clock, human_duration};
use crate::view_prefs::{offset, utc_clock, TimeMode};
use crate::view_url::{lines_hash, ViewFilter};

/// Lines one copy may hold (a page of the API's largest).
const MAX_COPIED_LINES: usize = 10_000;

/// Markdown for copied lines: a link to them, then a code block fenced with more
/// backticks than any run inside it.
pub fn markdown_block(title: &str, url: &str, lines: &[String]) -> String {
    let longest_run = lines
        .iter()
        .flat_map(|l| l.split(|c| c != '`'))
        .map(str::len)
        .max()
        .unwrap_or(0);
    let fence = "`".repeat((longest_run + 1).max(3));
    let mut out = format!("[{title}]({url})\n\n{fence}text\n");
    for line in lines {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&fence);
    out.push('\n');
    out
}

impl LogPanel {
    pub(super) fn viewport(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        // Until the new view's rows are there, the previous view's, where it was.
        let (shown, scroll_top) = match &self.previous {
            Some((model, top)) => (model, *top),
            None => (&self.model, self.scroll_top),
        };
        let stale = self.previous.is_some();
        let geometry = Geometry {
            total: shown.rows(),
            viewport_height: self.viewport_height,
            scroll_top,
            heights: self.heights(shown),
        };
        let (area, _) = geometry.area_and_scale();
        let (start, end, layer_top) = geometry.window();
        let selection = self.selection();
        let current = self
            .model
            .match_cursor
            .and_then(|i| self.model.matches.get(i))
            .map(|s| u64::from(*s));
        let rows: Html = (start..end)
            .filter_map(|r| shown.outline.row(r).map(|row| (r, row)))
            .map(|(r, (kind, depth))| match kind {
                Row::Header(g) => self.group_header(ctx, shown, r, g, depth),
                Row::Line(pos) => match shown.entry(pos) {
                    Some(entry) => row(
                        entry,
                        &self.matcher,
                        RowState {
                            pos: r,
                            depth,
                            time: self.time_text(ctx, shown, pos, entry),
                            selected: selection
                                .is_some_and(|(first, last)| (first..=last).contains(&entry.seq)),
                            current: current == Some(entry.seq),
                        },
                        &self.events,
                    ),
                    None => {
                        html! { <div key={format!("p{pos}")} class="log-row placeholder" role="row" aria-rowindex={(r + 1).to_string()}>{ "…" }</div> }
                    }
                },
            })
            .collect();
        let empty = if stale {
            html! {}
        } else if !self.model.index_loaded {
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
            <div class={classes!("viewport", (!self.prefs.show_meta).then_some("hide-meta"), self.prefs.wrap.then_some("wrap"))} ref={self.viewport.clone()} onscroll={link.callback(|_: Event| Msg::Scrolled)}
                 data-testid="log-viewport" tabindex="0" role="grid" aria-label="log lines" aria-rowcount={shown.rows().to_string()} aria-busy={stale.to_string()}
                 aria-activedescendant={self.selected.map(|seq| format!("row-{seq}"))}
                 style={format!("--seq-digits: {}", shown.seq_digits())}>
                <div class="spacer" style={format!("height:{area}px")}></div>
                <div class={classes!("rows", stale.then_some("stale"))} style={format!("top:{layer_top}px")}>{ rows }</div>
                { empty }
            </div>
        }
    }

    /// A group's header row: folded or not, its name, size, duration and worst
    /// level; a click folds or unfolds it.
    fn group_header(
        &self,
        ctx: &Context<Self>,
        shown: &LogModel,
        r: usize,
        g: usize,
        depth: u8,
    ) -> Html {
        let Some(group) = shown.outline.groups.get(g) else {
            return html! {};
        };
        let open = shown.outline.is_open(g);
        let seq = group.seq;
        let worst = group.worst.map(|l| l.as_str());
        let took = match group.ended {
            Some(ended) => {
                human_duration((ended.as_micros() - group.started.as_micros()) as f64 / 1e3)
            }
            None => "running".to_owned(),
        };
        let lines = match group.lines {
            1 => "1 line".to_owned(),
            n => format!("{n} lines"),
        };
        let toggle = ctx
            .link()
            .callback(move |_: MouseEvent| Msg::ToggleGroup(g));
        // The button and the permalink are inside the row: their clicks stop there.
        let toggle_button = ctx.link().callback(move |e: MouseEvent| {
            e.stop_propagation();
            Msg::ToggleGroup(g)
        });
        let follow_link = Callback::from(|e: MouseEvent| e.stop_propagation());
        let selected = self.selected == Some(seq);
        html! {
            <div key={format!("g{seq}")} id={format!("row-{seq}")} role="row" aria-rowindex={(r + 1).to_string()} aria-expanded={open.to_string()} aria-selected={selected.to_string()}
                 class={classes!("log-row", "group-header", worst.map(|w| format!("worst-{w}")), selected.then_some("selected"))}
                 style={format!("--depth: {depth}")}
                 data-testid="group-header" data-seq={seq.to_string()} data-open={open.to_string()} data-lines={group.lines.to_string()}
                 onclick={toggle}>
                <a class="ln" role="gridcell" href={format!("#L{seq}")} onclick={follow_link} title="permalink to this group">{ seq }</a>
                <button class="fold" role="gridcell" aria-label={format!("{} {}", if open { "fold" } else { "unfold" }, group.name)} onclick={toggle_button} data-testid="group-toggle">{ if open { "▾" } else { "▸" } }</button>
                <span class="group-name" role="gridcell">{ group.name.clone() }</span>
                <span class="group-info muted" role="gridcell" data-testid="group-info">{ format!("{lines} · {took}") }</span>
                if let Some(worst) = worst {
                    <span class={format!("lvl lvl-{worst}")} role="gridcell" data-testid="group-worst">{ worst }</span>
                }
            </div>
        }
    }

    /// The time column's text for the row at `pos`, in the view's time mode.
    fn time_text(
        &self,
        ctx: &Context<Self>,
        shown: &LogModel,
        pos: usize,
        entry: &LogEntry,
    ) -> String {
        match self.prefs.time {
            TimeMode::Local => clock(entry.timestamp),
            TimeMode::Utc => utc_clock(entry.timestamp),
            TimeMode::SinceStart => match ctx.props().started_at {
                Some(start) => offset(entry.timestamp.as_micros() - start.as_micros()),
                None => clock(entry.timestamp),
            },
            // The line above in the view; blank until it is loaded.
            TimeMode::SincePrevious => match pos.checked_sub(1).and_then(|p| shown.entry(p)) {
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

    /// Copies the selected lines of the view, as text or as a Markdown link and code
    /// block; at most [`MAX_COPIED_LINES`].
    pub(super) fn copy_range(&self, ctx: &Context<Self>, markdown: bool) {
        let Some((first, last)) = self.selection() else {
            return;
        };
        let count = self.model.position_of(last + 1) - self.model.position_of(first);
        if count > MAX_COPIED_LINES {
            ctx.link().send_message(Msg::RangeCopied(Err(format!(
                "{count} lines are more than can be copied at once ({MAX_COPIED_LINES}); download the view instead"
            ))));
            return;
        }
        let (api, task, spec) = (
            ctx.props().api.clone(),
            ctx.props().task_id,
            self.filter.view_spec(),
        );
        let location = super::location();
        let url = format!(
            "{}{}{}{}",
            location.origin().unwrap_or_default(),
            location.pathname().unwrap_or_default(),
            location.search().unwrap_or_default(),
            lines_hash(first, last)
        );
        ctx.link().send_future(async move {
            let mut lines: Vec<String> = Vec::new();
            let mut after = first - 1;
            'pages: loop {
                let page = match api.log_page(task, &spec, after, 1000).await {
                    Ok(page) => page,
                    Err(e) => return Msg::RangeCopied(Err(e.to_string())),
                };
                for entry in &page.logs {
                    if entry.seq > last {
                        break 'pages;
                    }
                    lines.push(line_text(entry));
                }
                if !page.has_more {
                    break;
                }
                after = page.next_after_seq;
            }
            let text = if markdown {
                markdown_block(
                    &format!("Lines {first}–{last} of task {task}"),
                    &url,
                    &lines,
                )
            } else {
                lines.iter().map(|l| format!("{l}\n")).collect()
            };
            let Some(window) = web_sys::window() else {
                return Msg::RangeCopied(Err("no window to copy from".into()));
            };
            let written = window.navigator().clipboard().write_text(&text);
            match wasm_bindgen_futures::JsFuture::from(written).await {
                Ok(_) => Msg::RangeCopied(Ok(lines.len())),
                Err(_) => Msg::RangeCopied(Err("the browser did not allow copying".into())),
            }
        });
    }

    /// The detail pane: the selected line whole, or for a range, what it spans and
    /// how to copy it.
    pub(super) fn detail(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let Some((first, last)) = self.selection() else {
            return html! {};
        };
        if first != last {
            let count = self.model.position_of(last + 1) - self.model.position_of(first);
            return html! {
                <aside class="detail" data-testid="range-detail">
                    <header>
                        <strong>{ format!("Lines {first}–{last}") }</strong>
                        <span class="muted" data-testid="range-count">{ format!("{count} lines in this view") }</span>
                        <button class="secondary" onclick={link.callback(|_| Msg::CopyRange(false))} data-testid="copy-range-text">{ "Copy as text" }</button>
                        <button class="secondary" onclick={link.callback(|_| Msg::CopyRange(true))} data-testid="copy-range-markdown">{ "Copy as Markdown" }</button>
                        <button class="link" onclick={link.callback(|_| Msg::CloseDetail)} title="close (Esc)" aria-label="close">{ "×" }</button>
                    </header>
                    <p class="muted">{ "Shift-click another line to change the range; the address links to it." }</p>
                </aside>
            };
        }
        let seq = first;
        let Some(entry) = self.model.entry_by_seq(seq) else {
            return html! {};
        };
        let meta = entry
            .metadata_value()
            .map(|m| serde_json::to_string_pretty(&m).unwrap_or_default());
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
                <pre class="message">{ message_html(entry.message(), &self.matcher) }</pre>
                if let Some(meta) = meta {
                    <pre class="metadata">{ meta }</pre>
                }
            </aside>
        }
    }
}

#[cfg(test)]
mod tests {
    use super::markdown_block;

    #[test]
    fn markdown_fences_outlast_backticks_in_the_lines() {
        let plain = markdown_block(
            "Lines 1–2",
            "http://h/tasks/x#L1-L2",
            &["a".into(), "b".into()],
        );
        assert_eq!(
            plain,
            "[Lines 1–2](http://h/tasks/x#L1-L2)\n\n```text\na\nb\n```\n"
        );
        let fenced = markdown_block("t", "u", &["run ````x````".into()]);
        assert!(
            fenced.contains("\n`````text\n") && fenced.ends_with("\n`````\n"),
            "{fenced}"
        );
    }
}
