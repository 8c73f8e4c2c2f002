//! ANSI escape sequences in log messages (colours from `shell` output): SGR sequences
//! become styled segments; every other escape sequence is dropped, so no escape code
//! is ever shown as text.

/// A colour: one of the 256 indexed colours, or an RGB triple.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Color {
    Index(u8),
    Rgb(u8, u8, u8),
}

impl Color {
    /// The CSS colour. The first 16 use the theme's palette (CSS variables), the rest
    /// the standard xterm 256-colour cube and grey ramp.
    pub fn css(self) -> String {
        match self {
            Color::Index(n) if n < 16 => format!("var(--ansi-{n})"),
            Color::Index(n) if n < 232 => {
                let n = n - 16;
                let level = |v: u8| if v == 0 { 0 } else { 55 + v * 40 };
                format!(
                    "rgb({},{},{})",
                    level(n / 36),
                    level((n / 6) % 6),
                    level(n % 6)
                )
            }
            Color::Index(n) => {
                let grey = 8 + (n - 232) * 10;
                format!("rgb({grey},{grey},{grey})")
            }
            Color::Rgb(r, g, b) => format!("rgb({r},{g},{b})"),
        }
    }
}

/// How a run of text looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Style {
    pub fg: Option<Color>,
    pub bg: Option<Color>,
    pub bold: bool,
    pub dim: bool,
    pub italic: bool,
    pub underline: bool,
}

impl Style {
    pub fn is_plain(&self) -> bool {
        *self == Style::default()
    }

    /// Inline CSS for the style.
    pub fn css(&self) -> String {
        let mut css = String::new();
        if let Some(fg) = self.fg {
            css.push_str(&format!("color:{};", fg.css()));
        }
        if let Some(bg) = self.bg {
            css.push_str(&format!("background:{};", bg.css()));
        }
        if self.bold {
            css.push_str("font-weight:bold;");
        }
        if self.dim {
            css.push_str("opacity:.7;");
        }
        if self.italic {
            css.push_str("font-style:italic;");
        }
        if self.underline {
            css.push_str("text-decoration:underline;");
        }
        css
    }
}

/// A run of text with one style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub text: String,
    pub style: Style,
}

/// Splits `input` into styled segments, dropping escape sequences.
pub fn parse(input: &str) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::new();
    let mut style = Style::default();
    let mut text = String::new();
    let mut chars = input.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            text.push(c);
            continue;
        }
        match chars.peek() {
            Some('[') => {
                chars.next();
                let mut params = String::new();
                let mut final_byte = None;
                for p in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&p) {
                        final_byte = Some(p);
                        break;
                    }
                    params.push(p);
                }
                if final_byte == Some('m') {
                    if !text.is_empty() {
                        out.push(Segment {
                            text: std::mem::take(&mut text),
                            style,
                        });
                    }
                    apply_sgr(&mut style, &params);
                }
            }
            Some(']') => {
                // OSC (titles, hyperlinks): up to BEL or ESC \.
                chars.next();
                while let Some(p) = chars.next() {
                    if p == '\u{7}' {
                        break;
                    }
                    if p == '\u{1b}' && chars.peek() == Some(&'\\') {
                        chars.next();
                        break;
                    }
                }
            }
            Some(_) => {
                chars.next();
            }
            None => {}
        }
    }
    if !text.is_empty() {
        out.push(Segment { text, style });
    }
    out
}

fn apply_sgr(style: &mut Style, params: &str) {
    let codes: Vec<u16> = if params.is_empty() {
        vec![0]
    } else {
        params.split(';').map(|p| p.parse().unwrap_or(0)).collect()
    };
    let mut i = 0;
    while i < codes.len() {
        match codes[i] {
            0 => *style = Style::default(),
            1 => style.bold = true,
            2 => style.dim = true,
            3 => style.italic = true,
            4 => style.underline = true,
            22 => {
                style.bold = false;
                style.dim = false;
            }
            23 => style.italic = false,
            24 => style.underline = false,
            n @ 30..=37 => style.fg = Some(Color::Index((n - 30) as u8)),
            n @ 90..=97 => style.fg = Some(Color::Index((n - 90 + 8) as u8)),
            39 => style.fg = None,
            n @ 40..=47 => style.bg = Some(Color::Index((n - 40) as u8)),
            n @ 100..=107 => style.bg = Some(Color::Index((n - 100 + 8) as u8)),
            49 => style.bg = None,
            n @ (38 | 48) => {
                let color = match codes.get(i + 1) {
                    Some(5) => {
                        let c = codes.get(i + 2).map(|v| Color::Index((*v).min(255) as u8));
                        i += 2;
                        c
                    }
                    Some(2) => {
                        let part = |k: usize| codes.get(i + k).map_or(0, |v| (*v).min(255) as u8);
                        let c = Some(Color::Rgb(part(2), part(3), part(4)));
                        i += 4;
                        c
                    }
                    _ => None,
                };
                if n == 38 {
                    style.fg = color;
                } else {
                    style.bg = color;
                }
            }
            _ => {}
        }
        i += 1;
    }
}

/// The text without any escape sequence.
pub fn strip(input: &str) -> String {
    protocol::line::strip_escapes(input)
}

/// Splits segments at the byte ranges (of the stripped text) to highlight; each piece
/// says whether it is inside a range.
pub fn mark(segments: &[Segment], ranges: &[(usize, usize)]) -> Vec<(Segment, bool)> {
    let mut out = Vec::new();
    let mut offset = 0;
    for segment in segments {
        let (start, end) = (offset, offset + segment.text.len());
        let mut cut = start;
        for &(a, b) in ranges {
            let (a, b) = (a.max(start), b.min(end));
            if a >= b {
                continue;
            }
            if a > cut {
                out.push((
                    Segment {
                        text: segment.text[cut - start..a - start].to_owned(),
                        style: segment.style,
                    },
                    false,
                ));
            }
            out.push((
                Segment {
                    text: segment.text[a - start..b - start].to_owned(),
                    style: segment.style,
                },
                true,
            ));
            cut = b;
        }
        if cut < end {
            out.push((
                Segment {
                    text: segment.text[cut - start..].to_owned(),
                    style: segment.style,
                },
                false,
            ));
        }
        offset = end;
    }
    out
}

/// Byte ranges where `needle` occurs in `hay`, ASCII letters ignoring case (the same
/// rule as the server's `q`).
pub fn find_plain(hay: &str, needle: &str) -> Vec<(usize, usize)> {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    let mut out = Vec::new();
    if n.is_empty() || n.len() > h.len() {
        return out;
    }
    let mut i = 0;
    while i + n.len() <= h.len() {
        if h[i..i + n.len()].eq_ignore_ascii_case(n)
            && hay.is_char_boundary(i)
            && hay.is_char_boundary(i + n.len())
        {
            out.push((i, i + n.len()));
            i += n.len();
        } else {
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_and_resets_become_segments() {
        let segs = parse("plain \u{1b}[31mred\u{1b}[0m \u{1b}[1;92mbold green\u{1b}[m end");
        let texts: Vec<_> = segs.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(texts, ["plain ", "red", " ", "bold green", " end"]);
        assert_eq!(segs[1].style.fg, Some(Color::Index(1)));
        assert!(segs[2].style.is_plain());
        assert_eq!(segs[3].style.fg, Some(Color::Index(10)));
        assert!(segs[3].style.bold);
    }

    #[test]
    fn extended_colours_and_other_sequences() {
        let segs = parse("\u{1b}[38;5;208morange\u{1b}[48;2;1;2;3mbg\u{1b}[K\u{1b}]0;title\u{7}!");
        assert_eq!(segs[0].style.fg, Some(Color::Index(208)));
        assert_eq!(segs[1].style.bg, Some(Color::Rgb(1, 2, 3)));
        assert_eq!(
            strip("\u{1b}[38;5;208morange\u{1b}[48;2;1;2;3mbg\u{1b}[K\u{1b}]0;title\u{7}!"),
            "orangebg!"
        );
        assert_eq!(Color::Index(16).css(), "rgb(0,0,0)");
        assert_eq!(Color::Index(231).css(), "rgb(255,255,255)");
        assert_eq!(Color::Index(232).css(), "rgb(8,8,8)");
        assert_eq!(strip("lone \u{1b}"), "lone ");
    }

    #[test]
    fn marks_split_across_segments() {
        let segs = parse("ab\u{1b}[31mcdef");
        let marked = mark(&segs, &find_plain("abcdef", "BCD"));
        let view: Vec<_> = marked.iter().map(|(s, m)| (s.text.as_str(), *m)).collect();
        assert_eq!(
            view,
            [("a", false), ("b", true), ("cd", true), ("ef", false)]
        );
        assert_eq!(find_plain("xAxa", "a"), [(1, 2), (3, 4)]);
        assert!(find_plain("abc", "").is_empty());
    }
}
