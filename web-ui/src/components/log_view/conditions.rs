//! The view's metadata conditions (chips, one typed pair at a time) and its time
//! range: their inputs, and what they do to the view's filter.

use protocol::time::{parse_time_input, Datelike, NaiveDateTime, Timelike};
use protocol::Timestamp;
use web_sys::{HtmlInputElement, KeyboardEvent};
use yew::prelude::*;

use super::{LogPanel, Msg};
use crate::view_prefs::TimeMode;

impl LogPanel {
    /// Puts the typed pair in the filter in place of the previous draft; whether
    /// the filter changed.
    fn apply_meta_draft(&mut self) -> bool {
        let mut meta = self.filter.meta.clone();
        // The previous draft goes, and a chip it stood in for comes back.
        if let Some((old, replaced)) = self.meta_draft.take() {
            meta.remove(&old);
            if let Some(value) = replaced {
                meta.insert(old, value);
            }
        }
        let key = self.meta_key.trim();
        if !key.is_empty() && !self.meta_value.is_empty() {
            let replaced = meta.insert(key.to_owned(), self.meta_value.clone());
            self.meta_draft = Some((key.to_owned(), replaced));
        }
        let changed = meta != self.filter.meta;
        self.filter.meta = meta;
        changed
    }

    /// The typed range, read in the zone the time column shows (UTC in UTC mode,
    /// else the browser's); a time ago counts back from now.
    fn typed_range(&self) -> Result<(Option<Timestamp>, Option<Timestamp>), String> {
        let now = Timestamp((js_sys::Date::now() * 1000.0) as i64);
        let utc = self.prefs.time == TimeMode::Utc;
        // The browser's offset at the typed local time itself (daylight saving).
        let offset = move |at: NaiveDateTime| -> Option<i32> {
            if utc {
                return Some(0);
            }
            let date = js_sys::Date::new_with_year_month_day_hr_min_sec(
                at.year() as u32,
                at.month0() as i32,
                at.day() as i32,
                at.hour() as i32,
                at.minute() as i32,
                at.second() as i32,
            );
            Some(-(date.get_timezone_offset() as i32) * 60)
        };
        let read = |text: &str, which: &str| -> Result<Option<Timestamp>, String> {
            if text.trim().is_empty() {
                return Ok(None);
            }
            parse_time_input(text, now, offset)
                .map(Some)
                .map_err(|e| format!("{which}: {e}"))
        };
        let range = (read(&self.range_from, "from")?, read(&self.range_to, "to")?);
        if let (Some(from), Some(to)) = range {
            if from >= to {
                return Err("the range must start before it ends".into());
            }
        }
        Ok(range)
    }

    pub(super) fn on_condition(&mut self, ctx: &Context<Self>, msg: Msg) -> bool {
        match msg {
            Msg::MetaKey(k) => {
                self.meta_key = k;
                true
            }
            Msg::MetaValue(v) => {
                self.meta_value = v;
                self.after_typing(ctx, || Msg::MetaApply);
                true
            }
            Msg::MetaApply => {
                self.debounce = None;
                if self.apply_meta_draft() {
                    self.reload(ctx);
                }
                true
            }
            Msg::MetaCommit => {
                self.debounce = None;
                if self.apply_meta_draft() {
                    self.reload(ctx);
                }
                if self.meta_draft.take().is_some() {
                    self.meta_key.clear();
                    self.meta_value.clear();
                }
                true
            }
            Msg::MetaRemove(key) => {
                if self.meta_draft.as_ref().is_some_and(|(k, _)| *k == key) {
                    self.meta_draft = None;
                    self.meta_key.clear();
                    self.meta_value.clear();
                }
                if self.filter.meta.remove(&key).is_some() {
                    self.reload(ctx);
                }
                true
            }
            Msg::RangeFrom(text) => {
                self.range_from = text;
                true
            }
            Msg::RangeTo(text) => {
                self.range_to = text;
                true
            }
            Msg::RangeApply => {
                match self.typed_range() {
                    Ok((since, until)) => {
                        self.range_error = None;
                        if (since, until) != (self.filter.since, self.filter.until) {
                            self.filter.since = since;
                            self.filter.until = until;
                            self.reload(ctx);
                        }
                    }
                    Err(e) => self.range_error = Some(e),
                }
                true
            }
            Msg::RangeClear => {
                self.range_from.clear();
                self.range_to.clear();
                self.range_error = None;
                if self.filter.since.is_some() || self.filter.until.is_some() {
                    self.filter.since = None;
                    self.filter.until = None;
                    self.reload(ctx);
                }
                true
            }
            _ => false,
        }
    }

    /// The chips of the metadata conditions, each with its remove button.
    pub(super) fn meta_chips(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let chips: Html = self
            .filter
            .meta
            .iter()
            .map(|(key, value)| {
                let draft = self.meta_draft.as_ref().is_some_and(|(k, _)| k == key);
                let remove = key.clone();
                html! {
                    <span class={classes!("chip", "on", draft.then_some("draft"))} data-meta-key={key.clone()}>
                        { format!("{key} = {value}") }
                        <button type="button" class="chip-remove" aria-label={format!("remove {key}")} data-testid="filter-meta-remove"
                                onclick={link.callback(move |_| Msg::MetaRemove(remove.clone()))}>{ "×" }</button>
                    </span>
                }
            })
            .collect();
        html! {
                if !self.filter.meta.is_empty() {
                    <div class="sources" data-testid="filter-meta-chips" aria-label="metadata conditions">{ chips }</div>
                }
        }
    }

    /// The inputs of the next metadata pair and of the time range.
    pub(super) fn condition_inputs(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let on_enter = |msg: fn() -> Msg| {
            link.batch_callback(move |e: KeyboardEvent| (e.key() == "Enter").then(msg))
        };
        html! {
            <>
                    <div class="meta-filter" title="metadata: KEY = VALUE (dots reach nested keys); Enter adds another">
                        <input placeholder="metadata key" data-testid="filter-meta-key" value={self.meta_key.clone()}
                               oninput={link.callback(|e: InputEvent| Msg::MetaKey(e.target_unchecked_into::<HtmlInputElement>().value()))}
                               onchange={link.callback(|_| Msg::MetaApply)} onkeydown={on_enter(|| Msg::MetaCommit)} />
                        <span>{ "=" }</span>
                        <input placeholder="value" data-testid="filter-meta-value" value={self.meta_value.clone()}
                               oninput={link.callback(|e: InputEvent| Msg::MetaValue(e.target_unchecked_into::<HtmlInputElement>().value()))}
                               onkeydown={on_enter(|| Msg::MetaCommit)} />
                    </div>
                    <div class="range-filter" title="from / to: 2026-12-01 10:00 (in the time column's zone), RFC 3339, or a time ago such as 10m">
                        <input placeholder="from (10m, 2026-12-01 10:00)" data-testid="filter-since" value={self.range_from.clone()}
                               oninput={link.callback(|e: InputEvent| Msg::RangeFrom(e.target_unchecked_into::<HtmlInputElement>().value()))}
                               onchange={link.callback(|_| Msg::RangeApply)} onkeydown={on_enter(|| Msg::RangeApply)} />
                        <span>{ "–" }</span>
                        <input placeholder="to" data-testid="filter-until" value={self.range_to.clone()}
                               oninput={link.callback(|e: InputEvent| Msg::RangeTo(e.target_unchecked_into::<HtmlInputElement>().value()))}
                               onchange={link.callback(|_| Msg::RangeApply)} onkeydown={on_enter(|| Msg::RangeApply)} />
                        if self.filter.since.is_some() || self.filter.until.is_some() || !self.range_from.is_empty() || !self.range_to.is_empty() {
                            <button type="button" class="link" data-testid="filter-range-clear" title="any time" onclick={link.callback(|_| Msg::RangeClear)}>{ "×" }</button>
                        }
                        if let Some(e) = &self.range_error {
                            <span class="error small" role="alert" data-testid="filter-range-error">{ e.clone() }</span>
                        }
                    </div>
            </>
        }
    }
}
