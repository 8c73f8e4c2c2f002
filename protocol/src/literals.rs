//! The texts a regex cannot match without: storage narrows a `re` filter through its
//! text index with them, and evaluates the regex only on the records that hold them.
//!
//! Only what is certain is returned. Every string is contained in every match, up to
//! ASCII case, which the text indexes fold anyway. An alternation, an optional part or
//! a class of several letters ends a literal run rather than guess.

use regex_syntax::hir::{Class, Hir, HirKind};

/// Literals of at least this many characters narrow a trigram index.
pub const MIN_LITERAL_CHARS: usize = 3;
/// Literals of at least this many characters narrow a database's scan (`LIKE`): one
/// character passes nearly every row, for the cost of testing each.
pub const PREFILTER_CHARS: usize = 2;
/// More literals than this cost index reads for little narrowing.
const MAX_LITERALS: usize = 4;

/// The runs of literal text every match of `pattern` contains, longest first, each
/// of at least [`MIN_LITERAL_CHARS`] characters. Empty when the pattern does not
/// parse or requires nothing that long.
pub fn required_literals(pattern: &str) -> Vec<String> {
    required_literals_of(pattern, MIN_LITERAL_CHARS)
}

/// [`required_literals`] down to runs of `min_chars` characters. Shorter than a
/// trigram, a run cannot narrow the text index, but a database can still skip the
/// rows without it before they are read out and the regex runs on them.
pub fn required_literals_of(pattern: &str, min_chars: usize) -> Vec<String> {
    let Ok(hir) = regex_syntax::Parser::new().parse(pattern) else {
        return Vec::new();
    };
    let mut runs = Runs {
        done: Vec::new(),
        min_chars: min_chars.max(1),
    };
    let mut current = String::new();
    collect(&hir, &mut current, &mut runs);
    runs.end(&mut current);
    let mut runs = runs.done;
    runs.sort_by_key(|run| std::cmp::Reverse(run.chars().count()));
    runs.dedup();
    runs.truncate(MAX_LITERALS);
    runs
}

/// The runs found so far, and how long one must be to count.
struct Runs {
    done: Vec<String>,
    min_chars: usize,
}

impl Runs {
    /// Ends the run in `current`: kept when it is long enough.
    fn end(&mut self, current: &mut String) {
        if current.chars().count() >= self.min_chars {
            self.done.push(std::mem::take(current));
        } else {
            current.clear();
        }
    }
}

/// Appends `hir`'s required text to `current` while it is one fixed string, and ends
/// the run where it is not.
fn collect(hir: &Hir, current: &mut String, runs: &mut Runs) {
    match hir.kind() {
        HirKind::Literal(literal) => match std::str::from_utf8(&literal.0) {
            Ok(text) => current.push_str(text),
            Err(_) => runs.end(current),
        },
        HirKind::Class(class) => match single_letter(class) {
            Some(ch) => current.push(ch),
            None => runs.end(current),
        },
        HirKind::Capture(capture) => collect(&capture.sub, current, runs),
        HirKind::Concat(parts) => {
            for part in parts {
                collect(part, current, runs);
            }
        }
        HirKind::Repetition(rep) => {
            runs.end(current);
            if rep.min >= 1 {
                // The body occurs at least once, but what is around it varies.
                collect(&rep.sub, current, runs);
                runs.end(current);
            }
        }
        // Anchors and word boundaries take no characters: the run goes on.
        HirKind::Look(_) | HirKind::Empty => {}
        HirKind::Alternation(_) => runs.end(current),
    }
}

/// The one character a case-folding index sees in a class: `[aA]` (what `(?i)a`
/// becomes). Classes with anything else, such as `(?i)k`'s Kelvin sign, are not one.
fn single_letter(class: &Class) -> Option<char> {
    let Class::Unicode(class) = class else {
        return None;
    };
    let mut members = class
        .ranges()
        .iter()
        .flat_map(|range| range.start()..=range.end());
    let first = members.next()?;
    let lower = first.to_ascii_lowercase();
    let mut count = 1;
    for ch in members {
        count += 1;
        if count > 2 || !ch.is_ascii_alphabetic() || ch.to_ascii_lowercase() != lower {
            return None;
        }
    }
    (first.is_ascii_alphabetic() && count == 2).then_some(lower)
}

#[cfg(test)]
mod tests {
    use super::{required_literals, required_literals_of};

    #[test]
    fn literals_every_match_needs() {
        assert_eq!(
            required_literals(r"timeout after \d+ ms"),
            vec!["timeout after ".to_owned(), " ms".to_owned()]
        );
        assert_eq!(
            required_literals(r"^conn(ection)? reset by \w+ peer$"),
            vec![
                " reset by ".to_owned(),
                " peer".to_owned(),
                "conn".to_owned()
            ]
        );
        // A required repetition's body counts; an optional one's does not.
        assert_eq!(required_literals("(abc)+x(def)*"), vec!["abc".to_owned()]);
        assert_eq!(required_literals("(?i)Timeout"), vec!["timeout".to_owned()]);
        // (?i)k and (?i)s take in non-ASCII letters: the run stops there.
        assert_eq!(
            required_literals("(?i)Deadlock"),
            vec!["deadloc".to_owned()]
        );
        assert!(required_literals("(?i)sum").is_empty());
        assert!(required_literals("error|warn").is_empty());
        assert!(required_literals(r"\d{3}-\d{4}").is_empty());
        assert!(required_literals("ab.cd").is_empty());
        assert!(required_literals("(unclosed").is_empty());
        assert_eq!(
            required_literals("héllo wörld"),
            vec!["héllo wörld".to_owned()]
        );
    }

    #[test]
    fn shorter_runs_when_asked_for() {
        assert!(required_literals("99$").is_empty());
        assert_eq!(required_literals_of("99$", 2), vec!["99".to_owned()]);
        assert_eq!(
            required_literals_of(r"#1[0-6] of \d+", 2),
            vec![" of ".to_owned(), "#1".to_owned()]
        );
        assert!(required_literals_of("b$", 2).is_empty());
        assert_eq!(required_literals_of("b$", 1), vec!["b".to_owned()]);
        // Nothing shorter than one character, whatever is asked.
        assert!(required_literals_of(r"\d+", 0).is_empty());
    }
}
