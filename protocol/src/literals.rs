//! The texts a regex cannot match without: storage narrows a `re` filter through its
//! text index with them, and evaluates the regex only on the records that hold them.
//!
//! Only what is certain is returned. Every string is contained in every match, up to
//! ASCII case, which the text indexes fold anyway. An alternation, an optional part or
//! a class of several letters ends a literal run rather than guess.

use regex_syntax::hir::{Class, Hir, HirKind};

/// Literals of at least this many characters narrow a trigram index.
pub const MIN_LITERAL_CHARS: usize = 3;
/// More literals than this cost index reads for little narrowing.
const MAX_LITERALS: usize = 4;

/// The runs of literal text every match of `pattern` contains, longest first, each
/// of at least [`MIN_LITERAL_CHARS`] characters. Empty when the pattern does not
/// parse or requires nothing that long.
pub fn required_literals(pattern: &str) -> Vec<String> {
    let Ok(hir) = regex_syntax::Parser::new().parse(pattern) else {
        return Vec::new();
    };
    let mut runs = Vec::new();
    let mut current = String::new();
    collect(&hir, &mut current, &mut runs);
    end_run(&mut current, &mut runs);
    runs.sort_by_key(|run| std::cmp::Reverse(run.chars().count()));
    runs.dedup();
    runs.truncate(MAX_LITERALS);
    runs
}

/// Appends `hir`'s required text to `current` while it is one fixed string, and ends
/// the run where it is not.
fn collect(hir: &Hir, current: &mut String, runs: &mut Vec<String>) {
    match hir.kind() {
        HirKind::Literal(literal) => match std::str::from_utf8(&literal.0) {
            Ok(text) => current.push_str(text),
            Err(_) => end_run(current, runs),
        },
        HirKind::Class(class) => match single_letter(class) {
            Some(ch) => current.push(ch),
            None => end_run(current, runs),
        },
        HirKind::Capture(capture) => collect(&capture.sub, current, runs),
        HirKind::Concat(parts) => {
            for part in parts {
                collect(part, current, runs);
            }
        }
        HirKind::Repetition(rep) => {
            end_run(current, runs);
            if rep.min >= 1 {
                // The body occurs at least once, but what is around it varies.
                collect(&rep.sub, current, runs);
                end_run(current, runs);
            }
        }
        // Anchors and word boundaries take no characters: the run goes on.
        HirKind::Look(_) | HirKind::Empty => {}
        HirKind::Alternation(_) => end_run(current, runs),
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

fn end_run(current: &mut String, runs: &mut Vec<String>) {
    if current.chars().count() >= MIN_LITERAL_CHARS {
        runs.push(std::mem::take(current));
    } else {
        current.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::required_literals;

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
}
