//! Where rows go on screen. A row is [`ROW_HEIGHT`] tall unless it measured
//! otherwise (a wrapped line): [`RowHeights`] holds those few, so a position is
//! arithmetic plus a sum over the rows that differ before it. Past
//! [`MAX_SCROLL_PX`] of content (browsers cap element heights) the scroll area
//! stays that tall and scrolls proportionally.

use std::collections::BTreeMap;

use crate::components::log_row::ROW_HEIGHT;

/// Rows rendered above and below the viewport: 200 px, two notches of a mouse
/// wheel, drawn before they scroll into sight. Every row more is drawn again on
/// each jump (30 made `e` a third slower: docs/benchmarks.md).
const MARGIN_ROWS: usize = 10;
/// Tallest scroll area used.
const MAX_SCROLL_PX: f64 = 8_000_000.0;
/// Rows whose measured height is kept at most: past it the measurements start
/// over, so scrolling through a huge wrapped log stays bounded in memory.
const MAX_MEASURED: usize = 100_000;
/// Differences below this are rounding, not another height.
const SAME_PX: f64 = 0.5;

/// The rows of one layout whose height is not [`ROW_HEIGHT`], as measured in the
/// page. Valid for one layout of rows ([`RowHeights::for_layout`]) at one width;
/// the view clears them when either changes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowHeights {
    /// Row → how much taller than [`ROW_HEIGHT`] it measured.
    extra: BTreeMap<usize, f64>,
    /// The layout the rows belong to.
    layout: u64,
}

/// Every row [`ROW_HEIGHT`] tall.
pub static UNIFORM: RowHeights = RowHeights {
    extra: BTreeMap::new(),
    layout: 0,
};

impl RowHeights {
    /// Starts over when the rows were laid out again since the last measurement.
    pub fn for_layout(&mut self, layout: u64) {
        if self.layout != layout {
            self.extra.clear();
            self.layout = layout;
        }
    }

    /// Whether the measurements hold for `layout`.
    pub fn holds_for(&self, layout: u64) -> bool {
        self.layout == layout
    }

    pub fn clear(&mut self) {
        self.extra.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.extra.is_empty()
    }

    /// Records row `row`'s measured height; whether that changes where rows go.
    pub fn measured(&mut self, row: usize, height: f64) -> bool {
        let extra = height - ROW_HEIGHT;
        if extra.abs() < SAME_PX {
            return self.extra.remove(&row).is_some();
        }
        match self.extra.get(&row) {
            Some(old) if (old - extra).abs() < SAME_PX => return false,
            Some(_) => {}
            None if self.extra.len() >= MAX_MEASURED => self.extra.clear(),
            None => {}
        }
        self.extra.insert(row, extra);
        true
    }

    /// Where row `row` starts, in content pixels.
    pub fn top(&self, row: usize) -> f64 {
        row as f64 * ROW_HEIGHT + self.extra.range(..row).map(|(_, e)| e).sum::<f64>()
    }

    pub fn height(&self, row: usize) -> f64 {
        ROW_HEIGHT + self.extra.get(&row).copied().unwrap_or(0.0)
    }

    /// The row at content pixel `y` (past the last row, the ones that would follow).
    pub fn row_at(&self, y: f64) -> usize {
        let y = y.max(0.0);
        // The extra height of the rows before the one looked at.
        let mut before = 0.0;
        for (&row, &extra) in &self.extra {
            let top = row as f64 * ROW_HEIGHT + before;
            if y < top {
                break;
            }
            if y < top + ROW_HEIGHT + extra {
                return row;
            }
            before += extra;
        }
        ((y - before) / ROW_HEIGHT).floor() as usize
    }
}

/// The viewport over `total` rows, scrolled to `scroll_top` (scroll pixels).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geometry<'a> {
    pub total: usize,
    pub viewport_height: f64,
    pub scroll_top: f64,
    pub heights: &'a RowHeights,
}

impl Geometry<'_> {
    /// The scroll area's height, and the scale from scroll pixels to content pixels.
    pub fn area_and_scale(&self) -> (f64, f64) {
        let content = self.heights.top(self.total);
        let area = content.min(MAX_SCROLL_PX);
        let view = self.viewport_height.max(ROW_HEIGHT);
        let scale = if content > area && area > view {
            (content - view) / (area - view)
        } else {
            1.0
        };
        (area, scale)
    }

    /// The content pixel at the top edge of the viewport.
    fn virtual_top(&self) -> f64 {
        self.scroll_top * self.area_and_scale().1
    }

    /// The position at the top edge of the viewport.
    pub fn top_position(&self) -> usize {
        self.heights.row_at(self.virtual_top())
    }

    /// The row at the top edge and how far into it the edge is: what a change of
    /// heights must keep in place.
    pub fn top_and_offset(&self) -> (usize, f64) {
        let y = self.virtual_top();
        let row = self.heights.row_at(y);
        (row, y - self.heights.top(row))
    }

    /// The scroll position that puts `offset` pixels into row `row` at the top edge.
    pub fn scroll_for(&self, row: usize, offset: f64) -> f64 {
        (self.heights.top(row) + offset) / self.area_and_scale().1
    }

    /// First and one-past-last positions to render, and where their layer sits.
    pub fn window(&self) -> (usize, usize, f64) {
        let virtual_top = self.virtual_top();
        let first = self.heights.row_at(virtual_top);
        let last = self.heights.row_at(virtual_top + self.viewport_height);
        let start = first.saturating_sub(MARGIN_ROWS).min(self.total);
        let end = (last + 1 + MARGIN_ROWS).min(self.total);
        // Where the layer must sit so that each row is at its content position.
        let layer_top = self.scroll_top - virtual_top + self.heights.top(start);
        (start, end, layer_top)
    }

    /// The scroll position that puts position `pos` in the middle of the viewport
    /// (a row taller than the viewport: its top at the top edge).
    pub fn centre(&self, pos: usize) -> f64 {
        let (_, scale) = self.area_and_scale();
        let height = self.heights.height(pos).min(self.viewport_height);
        let target = (self.heights.top(pos) - self.viewport_height / 2.0 + height / 2.0).max(0.0);
        target / scale
    }

    /// Whether position `pos` is wholly inside the viewport.
    pub fn in_view(&self, pos: usize) -> bool {
        let top = self.virtual_top();
        let y = self.heights.top(pos);
        y >= top && y + self.heights.height(pos) <= top + self.viewport_height
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_logs_scroll_one_to_one() {
        let g = Geometry {
            total: 1_000,
            viewport_height: 400.0,
            scroll_top: 2_000.0,
            heights: &UNIFORM,
        };
        assert_eq!(g.area_and_scale(), (20_000.0, 1.0));
        assert_eq!(g.top_position(), 100);
        let (start, end, layer_top) = g.window();
        // Rows 100 to 120 in sight, and MARGIN_ROWS either side.
        assert_eq!((start, end), (100 - MARGIN_ROWS, 121 + MARGIN_ROWS));
        assert_eq!(layer_top, (100 - MARGIN_ROWS) as f64 * 20.0);
        assert_eq!(g.centre(100), 1_810.0);
        assert!(g.in_view(100) && g.in_view(119) && !g.in_view(120) && !g.in_view(99));
    }

    #[test]
    fn long_logs_scroll_proportionally_to_the_last_row() {
        let g = Geometry {
            total: 10_000_000,
            viewport_height: 400.0,
            scroll_top: 0.0,
            heights: &UNIFORM,
        };
        let (area, scale) = g.area_and_scale();
        assert_eq!(area, MAX_SCROLL_PX);
        assert!(scale > 24.0);
        let bottom = Geometry {
            scroll_top: area - 400.0,
            ..g
        };
        let (_, end, _) = bottom.window();
        assert_eq!(end, 10_000_000);
        assert_eq!(bottom.top_position(), 10_000_000 - 20);
        // Centring the last row asks for no more than the area can scroll.
        assert!(g.centre(9_999_999) <= area);
    }

    #[test]
    fn wrapped_rows_push_the_rows_after_them_down() {
        let mut heights = RowHeights::default();
        assert!(heights.measured(10, 60.0), "a row three lines tall");
        assert!(heights.measured(12, 40.0));
        assert!(!heights.measured(12, 40.2), "rounding is no change");
        assert!(!heights.measured(11, 20.0), "a plain row stays plain");
        assert_eq!(heights.top(10), 200.0);
        assert_eq!(heights.top(11), 260.0);
        assert_eq!(heights.top(13), 320.0);
        for row in 0..20 {
            let top = heights.top(row);
            assert_eq!(heights.row_at(top), row, "the top of row {row}");
            assert_eq!(heights.row_at(top + heights.height(row) - 0.1), row);
        }
        assert_eq!(heights.row_at(1_000.0), 13 + (1_000 - 320) / 20);
        // Unwrapped again (another width): back to arithmetic.
        assert!(heights.measured(10, 20.0));
        assert_eq!(heights.top(13), 280.0);

        let g = Geometry {
            total: 1_000,
            viewport_height: 100.0,
            scroll_top: 250.0,
            heights: &heights,
        };
        assert_eq!(g.area_and_scale().0, 20_020.0);
        assert_eq!(g.top_and_offset(), (12, 10.0));
        assert_eq!(g.scroll_for(12, 10.0), 250.0);
        let (start, end, layer_top) = g.window();
        assert_eq!((start, end), (12 - MARGIN_ROWS, 12 + 4 + 1 + MARGIN_ROWS));
        assert_eq!(layer_top, heights.top(start));
        let near_the_top = Geometry {
            scroll_top: 0.0,
            ..g
        };
        assert_eq!(near_the_top.window(), (0, 5 + 1 + MARGIN_ROWS, 0.0));
        assert!(
            g.in_view(13) && !g.in_view(12),
            "row 12 starts above the edge"
        );
        // A row taller than the viewport is centred by its top.
        assert!(heights.measured(500, 300.0));
        let g = Geometry {
            total: 1_000,
            viewport_height: 100.0,
            scroll_top: 0.0,
            heights: &heights,
        };
        assert_eq!(g.centre(500), heights.top(500));
    }

    #[test]
    fn measurements_start_over_with_a_new_layout_and_stay_bounded() {
        let mut heights = RowHeights::default();
        heights.for_layout(1);
        heights.measured(3, 40.0);
        heights.for_layout(1);
        assert!(heights.holds_for(1) && heights.top(4) == 100.0);
        heights.for_layout(2);
        assert!(heights.holds_for(2) && heights.top(4) == 80.0);
        for row in 0..MAX_MEASURED + 10 {
            heights.measured(row, 40.0);
        }
        assert!(heights.extra.len() <= MAX_MEASURED);
    }
}
