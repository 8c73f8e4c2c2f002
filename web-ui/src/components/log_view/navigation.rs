//! Where the view is: scrolling (and following the newest line), the selected line
//! and its permalink in the URL, and jumps to a line, a match or an ERROR.

use web_sys::HtmlElement;
use yew::prelude::*;

use super::geometry::{Geometry, RowHeights, UNIFORM};
use super::model::LogModel;
use super::{location, LogPanel};
use crate::components::log_row::ROW_HEIGHT;
use crate::view_url::{lines_from_hash, lines_hash, ViewFilter};

impl LogPanel {
    pub(super) fn geometry(&self) -> Geometry<'_> {
        Geometry {
            total: self.model.rows(),
            viewport_height: self.viewport_height,
            scroll_top: self.scroll_top,
            heights: self.heights(&self.model),
        }
    }

    /// The heights of `model`'s rows: measured while lines wrap, else all one.
    pub(super) fn heights<'m>(&self, model: &'m LogModel) -> &'m RowHeights {
        if self.prefs.wrap {
            model.heights()
        } else {
            &UNIFORM
        }
    }

    /// Measures the rows in the DOM while lines wrap. When a height changed, the
    /// rows after it moved: the line at the top edge (or the one kept centred, or
    /// the newest while following) is put back in place and the grid drawn again.
    /// Whether it must be.
    pub(super) fn measure_rows(&mut self, ctx: &Context<Self>, viewport: &HtmlElement) -> bool {
        if !self.prefs.wrap || self.previous.is_some() || !self.model.index_loaded {
            return false;
        }
        let (top, offset) = self.geometry().top_and_offset();
        let mut changed = false;
        let width = viewport.client_width();
        if width != self.measured_width {
            self.measured_width = width;
            changed = !self.model.heights.is_empty();
            self.model.heights.clear();
        }
        self.model.heights.for_layout(self.model.outline.layout());
        let Ok(Some(layer)) = viewport.query_selector(".rows") else {
            return changed;
        };
        let rows = layer.children();
        for i in 0..rows.length() {
            let Some(row) = rows.item(i) else { continue };
            let Some(r) = row
                .get_attribute("aria-rowindex")
                .and_then(|r| r.parse::<usize>().ok())
                .and_then(|r| r.checked_sub(1))
            else {
                continue;
            };
            changed |= self
                .model
                .heights
                .measured(r, row.get_bounding_client_rect().height());
        }
        if !changed {
            return false;
        }
        self.keep_in_place(top, offset);
        ctx.link().send_message(super::Msg::Measured);
        true
    }

    /// After rows changed height: the newest line stays in view while following,
    /// a line kept centred stays centred, and otherwise row `top` goes back to the
    /// top edge, `offset` pixels into it.
    pub(super) fn keep_in_place(&mut self, top: usize, offset: f64) {
        if self.follow {
            self.scroll_to = Some(f64::MAX);
        } else if let Some(row) = self.anchor {
            self.center_on(row);
        } else {
            let target = self.geometry().scroll_for(top, offset);
            self.scroll_to = Some(target);
            self.scroll_top = target;
        }
    }

    /// After the viewport changed size: a line kept in the middle is centred again,
    /// and while following the newest line stays at the bottom edge (also when a
    /// scroll is still pending: it was reckoned for the old size). Whether either
    /// applied.
    pub(super) fn keep_after_resize(&mut self) -> bool {
        if let Some(row) = self.anchor {
            self.center_on(row);
            true
        } else if self.follow {
            self.scroll_to = Some(f64::MAX);
            true
        } else {
            false
        }
    }

    /// The way lines are shown changed: it is remembered, and rows measured the
    /// old way are measured again.
    pub(super) fn prefs_changed(&mut self) {
        self.prefs.save();
        self.model.heights.clear();
    }

    /// Scrolls so that row `row` is in the middle of the viewport, and keeps it
    /// there until the user scrolls.
    pub(super) fn center_on(&mut self, row: usize) {
        self.anchor = Some(row);
        let top = self.geometry().centre(row);
        self.scroll_to = Some(top);
        self.scroll_top = top;
    }

    /// The URL says the view's filter and its selected line.
    pub(super) fn write_url(&self) {
        let query = self.filter.to_query();
        let hash = self
            .selection()
            .map(|(first, last)| lines_hash(first, last))
            .unwrap_or_default();
        let path = location().pathname().unwrap_or_default();
        let url = if query.is_empty() {
            format!("{path}{hash}")
        } else {
            format!("{path}?{query}{hash}")
        };
        if let Ok(history) = web_sys::window().expect("a window").history() {
            let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&url));
        }
    }

    pub(super) fn on_scrolled(&mut self, ctx: &Context<Self>) -> bool {
        // The grid shows the previous view: its scrolling says nothing about the new.
        if self.previous.is_some() {
            return false;
        }
        if let Some(el) = self.viewport.cast::<HtmlElement>() {
            let (top, height, full) = (
                el.scroll_top() as f64,
                el.client_height() as f64,
                el.scroll_height() as f64,
            );
            // The viewport changed size (the page around it did).
            let resized = (height - self.viewport_height).abs() > 1.0;
            self.viewport_height = height;
            if resized && self.keep_after_resize() {
                self.fetch_visible_pages(ctx);
                return true;
            }
            let at_bottom = top + height >= full - ROW_HEIGHT;
            // Ours while the position is still the one this panel set (the panel's own
            // Scrolled message and the browser's scroll event both report it); any
            // other position is the user's doing.
            let ours = self.own_scroll.is_some_and(|own| (own - top).abs() < 1.0);
            if !ours {
                self.own_scroll = None;
            }
            if !ours && self.scroll_to.is_none() {
                self.anchor = None;
            }
            // The user scrolled while a jump waited for its rows: theirs wins. (A
            // size change that moved nothing is no scroll.)
            if !ours && self.scroll_to.is_none() && (top - self.scroll_top).abs() >= 1.0 {
                self.arriving = None;
            }
            if !ours && self.scroll_to.is_none() && self.model.index_loaded {
                // Following pauses when the user scrolls up and resumes at the bottom.
                self.follow = at_bottom;
            }
            self.scroll_top = top;
        }
        self.fetch_visible_pages(ctx);
        // The panel's own scroll after a jump, and the browser's event for it, find
        // the grid drawn where it is: drawing it again would only delay the jump.
        self.drawn != (self.scroll_top, self.viewport_height, self.follow)
    }

    /// The selected lines, first and last (the same for one line).
    pub(super) fn selection(&self) -> Option<(u64, u64)> {
        let anchor = self.selected?;
        let other = self.selected_to.unwrap_or(anchor);
        Some((anchor.min(other), anchor.max(other)))
    }

    /// Selects line `seq` of the view and brings it into the middle of the viewport.
    pub(super) fn go_to(&mut self, ctx: &Context<Self>, seq: u64) {
        self.jump(ctx, seq, None);
    }

    /// Selects lines `seq` to `to` (or `seq` alone) and brings `seq` into the
    /// middle of the viewport. When the rows around it are not fetched yet, the
    /// grid keeps showing what it shows until they are ([`LogPanel::arrive`]): one
    /// draw at the new place, with its rows, rather than a screen of placeholders
    /// first and the rows after.
    pub(super) fn jump(&mut self, ctx: &Context<Self>, seq: u64, to: Option<u64>) {
        self.follow = false;
        if self.model.index_loaded {
            let row = self.model.reveal_row(seq);
            let (start, end) = self.window_around(row);
            if self.fetch_pages(ctx, start..end) {
                self.arriving = Some((seq, to));
                // A line kept centred before no longer is: the view is on its way.
                self.anchor = None;
                return;
            }
        }
        self.land(ctx, seq, to);
    }

    /// The rows a jump waits for arrived (or could not be fetched): it lands, unless
    /// more are still on their way.
    pub(super) fn arrive(&mut self, ctx: &Context<Self>, failed: bool) {
        let Some((seq, to)) = self.arriving else {
            return;
        };
        let (start, end) = self.window_around(self.model.row_of_seq(seq));
        if failed || self.model.holds(&self.model.outline.lines_in(start..end)) {
            self.land(ctx, seq, to);
        }
    }

    /// Selects the lines and goes to them, or (the index not known yet) once the
    /// index is there.
    fn land(&mut self, ctx: &Context<Self>, seq: u64, to: Option<u64>) {
        self.arriving = None;
        self.selected = Some(seq);
        self.selected_to = to;
        self.write_url();
        if !self.model.index_loaded {
            self.pending_jump = Some(seq);
            return;
        }
        // Revealed when the jump began, unless folded again since.
        let row = self.model.reveal_row(seq);
        self.center_on(row);
        self.fetch_visible_pages(ctx);
        self.prefetch_next_error(ctx, seq);
    }

    /// Fetches the lines around the view's next ERROR after `seq` ahead of time (a
    /// page or two), so that the next `e` lands at once.
    fn prefetch_next_error(&mut self, ctx: &Context<Self>, seq: u64) {
        let Some(next) = self.model.next_error(seq, true) else {
            return;
        };
        let last = self.model.total().saturating_sub(1);
        let pos = self.model.position_of(next).min(last);
        let reach = super::model::PAGE / 2;
        let around = [pos.saturating_sub(reach), pos, (pos + reach).min(last)];
        for page in self.model.missing_pages(&around) {
            self.fetch_page(ctx, page);
        }
    }

    /// The rows drawn when row `row` is in the middle of the viewport.
    fn window_around(&self, row: usize) -> (usize, usize) {
        let here = self.geometry();
        let there = Geometry {
            scroll_top: here.centre(row),
            ..here
        };
        let (start, end, _) = there.window();
        (start, end)
    }

    /// A click on a line selects it (or, the only one selected, unselects it); with
    /// Shift, the selection runs from the line selected first to this one.
    pub(super) fn select(&mut self, seq: u64, extend: bool) -> bool {
        match (self.selected, extend) {
            (Some(anchor), true) => self.selected_to = (seq != anchor).then_some(seq),
            (Some(anchor), false) if anchor == seq && self.selected_to.is_none() => {
                self.selected = None;
            }
            _ => {
                self.selected = Some(seq);
                self.selected_to = None;
            }
        }
        self.follow = false;
        self.write_url();
        true
    }

    pub(super) fn hash_changed(&mut self, ctx: &Context<Self>) -> bool {
        let Some((first, last)) = lines_from_hash(&location().hash().unwrap_or_default()) else {
            return false;
        };
        if self.selection() == Some((first, last)) {
            return false;
        }
        self.jump(ctx, first, (last != first).then_some(last));
        true
    }

    /// Goes to line `seq`; when the view's filter hides it, first widens the view to
    /// the whole log at the same level (an ERROR passes every level).
    pub(super) fn jump_to_line(&mut self, ctx: &Context<Self>, seq: u64) -> bool {
        if self.model.index_loaded && !self.model.shows(seq) {
            self.reset_filter(ViewFilter {
                level: self.filter.level,
                ..ViewFilter::default()
            });
            self.selected = Some(seq);
            self.selected_to = None;
            self.pending_jump = Some(seq);
            self.follow = false;
            self.reload(ctx);
        } else {
            self.go_to(ctx, seq);
        }
        true
    }

    pub(super) fn jump_to_match(&mut self, ctx: &Context<Self>, forward: bool) -> bool {
        let top_seq = self
            .model
            .seq_at_row(self.geometry().top_position())
            .unwrap_or(0);
        let Some(next) = self.model.next_match(top_seq, forward) else {
            return true;
        };
        self.model.match_cursor = Some(next);
        self.follow = false;
        let row = self.model.reveal_row(u64::from(self.model.matches[next]));
        self.center_on(row);
        self.fetch_visible_pages(ctx);
        true
    }

    /// Goes to the next or previous ERROR of the view from the selected line (or the
    /// top of the viewport), round the end. The first press asks the server for that
    /// one line while the view's ERROR seqs load for the presses after it (on a large
    /// task they take a while); whichever answers first makes the jump.
    pub(super) fn jump_to_error(&mut self, ctx: &Context<Self>, forward: bool) -> bool {
        // From the line a jump is on its way to, or the selected one; without
        // either, from just above the top row, so that it can be the one.
        let from = self
            .arriving
            .map(|(seq, _)| seq)
            .or(self.selected)
            .unwrap_or_else(|| {
                let top = self.geometry().top_position();
                self.model
                    .seq_at_row(top)
                    .map_or(0, |s| s.saturating_sub(1))
            });
        if self.model.errors.is_none() {
            let mut spec = self.filter.view_spec();
            spec.level = Some(protocol::LogLevel::Error);
            if self.error_jump.replace(forward).is_none() {
                let (api, task, generation) = (
                    ctx.props().api.clone(),
                    ctx.props().task_id,
                    self.generation,
                );
                let quick = spec.clone();
                ctx.link().send_future(async move {
                    let seq = api
                        .next_record(task, &quick, from, forward)
                        .await
                        .ok()
                        .flatten()
                        .map(|entry| entry.seq);
                    super::Msg::ErrorFound { generation, seq }
                });
            }
            if !std::mem::replace(&mut self.errors_requested, true) {
                self.fetch_seqs(ctx, &spec, |generation, seqs| super::Msg::ErrorsLoaded {
                    generation,
                    seqs,
                });
            }
            return false;
        }
        match self.model.next_error(from, forward) {
            Some(seq) => self.go_to(ctx, seq),
            None => self.flash = Some("No ERROR lines in this view".into()),
        }
        true
    }

    /// The server's answer to a first press: the ERROR to go to, unless the view's
    /// ERROR seqs came first. With none that way, they decide (round the end).
    pub(super) fn error_found(
        &mut self,
        ctx: &Context<Self>,
        generation: u64,
        seq: Option<u64>,
    ) -> bool {
        if generation != self.generation {
            return false;
        }
        match seq {
            Some(seq) if self.error_jump.take().is_some() => {
                self.go_to(ctx, seq);
                true
            }
            _ => false,
        }
    }

    /// Moves the selection `delta` lines down (or up), scrolling only when the line
    /// leaves the viewport, as a list does.
    pub(super) fn move_selection(&mut self, ctx: &Context<Self>, delta: i64) -> bool {
        if !self.model.index_loaded || self.model.index.is_empty() {
            return false;
        }
        let from = match self.selected {
            // From a line folded away since it was selected: from its group's header.
            Some(seq) => self.model.row_of_seq(seq) as i64,
            None => self.geometry().top_position() as i64 - delta.signum(),
        };
        let to = (from + delta).clamp(0, self.model.rows() as i64 - 1) as usize;
        let Some(seq) = self.model.seq_at_row(to) else {
            return false;
        };
        self.selected = Some(seq);
        self.selected_to = None;
        self.follow = false;
        self.write_url();
        if !self.geometry().in_view(to) {
            self.center_on(to);
        }
        self.fetch_visible_pages(ctx);
        true
    }
}
