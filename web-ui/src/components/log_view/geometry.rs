//! Where rows go on screen. Every row has one height, so positions are arithmetic;
//! past [`MAX_SCROLL_PX`] of content (browsers cap element heights) the scroll area
//! stays that tall and scrolls proportionally.

use crate::components::log_row::ROW_HEIGHT;

/// Rows rendered above and below the viewport.
const MARGIN_ROWS: usize = 30;
/// Tallest scroll area used.
const MAX_SCROLL_PX: f64 = 8_000_000.0;

/// The viewport over `total` rows, scrolled to `scroll_top` (scroll pixels).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geometry {
    pub total: usize,
    pub viewport_height: f64,
    pub scroll_top: f64,
}

impl Geometry {
    /// The scroll area's height, and the scale from scroll pixels to row pixels.
    pub fn area_and_scale(&self) -> (f64, f64) {
        let content = self.total as f64 * ROW_HEIGHT;
        let area = content.min(MAX_SCROLL_PX);
        let view = self.viewport_height.max(ROW_HEIGHT);
        let scale = if content > area && area > view {
            (content - view) / (area - view)
        } else {
            1.0
        };
        (area, scale)
    }

    /// The position at the top edge of the viewport.
    pub fn top_position(&self) -> usize {
        let (_, scale) = self.area_and_scale();
        (self.scroll_top * scale / ROW_HEIGHT) as usize
    }

    /// First and one-past-last positions to render, and where their layer sits.
    pub fn window(&self) -> (usize, usize, f64) {
        let (_, scale) = self.area_and_scale();
        let virtual_top = self.scroll_top * scale;
        let first = (virtual_top / ROW_HEIGHT).floor().max(0.0) as usize;
        let visible = (self.viewport_height / ROW_HEIGHT).ceil() as usize + 1;
        let start = first.saturating_sub(MARGIN_ROWS).min(self.total);
        let end = (first + visible + MARGIN_ROWS).min(self.total);
        // Where the layer must sit so that position `first` is at the top edge.
        let layer_top = self.scroll_top
            - (virtual_top - first as f64 * ROW_HEIGHT)
            - (first - start) as f64 * ROW_HEIGHT;
        (start, end, layer_top)
    }

    /// The scroll position that puts position `pos` in the middle of the viewport.
    pub fn centre(&self, pos: usize) -> f64 {
        let (_, scale) = self.area_and_scale();
        let target =
            (pos as f64 * ROW_HEIGHT - self.viewport_height / 2.0 + ROW_HEIGHT / 2.0).max(0.0);
        target / scale
    }

    /// Whether position `pos` is wholly inside the viewport.
    pub fn in_view(&self, pos: usize) -> bool {
        let (_, scale) = self.area_and_scale();
        let top = self.scroll_top * scale;
        let y = pos as f64 * ROW_HEIGHT;
        y >= top && y + ROW_HEIGHT <= top + self.viewport_height
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
        };
        assert_eq!(g.area_and_scale(), (20_000.0, 1.0));
        assert_eq!(g.top_position(), 100);
        let (start, end, layer_top) = g.window();
        assert_eq!((start, end), (70, 151));
        assert_eq!(layer_top, 1_400.0);
        assert_eq!(g.centre(100), 1_810.0);
        assert!(g.in_view(100) && g.in_view(119) && !g.in_view(120) && !g.in_view(99));
    }

    #[test]
    fn long_logs_scroll_proportionally_to_the_last_row() {
        let g = Geometry {
            total: 10_000_000,
            viewport_height: 400.0,
            scroll_top: 0.0,
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
}
