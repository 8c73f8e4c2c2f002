//! The task page's keyboard shortcuts (listed for people in
//! [`crate::components::shortcuts::SHORTCUTS`]).

use wasm_bindgen::JsCast;
use web_sys::{HtmlElement, HtmlInputElement, KeyboardEvent};
use yew::prelude::*;

use super::{LogPanel, Msg};

/// What a key asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAction {
    FocusSearch,
    JumpToEnd,
    ToggleHelp,
    CloseDetail,
    NextError(bool),
    NextTimeMode,
    ToggleMeta,
    ToggleWrap,
    MoveSelection(i64),
    /// Unfold (true) or fold every group.
    FoldAll(bool),
    /// Fold or unfold the selected group (or the one around the selected line).
    ToggleGroup,
}

/// Where a key was pressed, as far as shortcuts care.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyContext {
    /// In a text field: only Esc is a shortcut there.
    pub typing: bool,
    /// The log grid has focus: the arrows move the selection instead of scrolling.
    pub in_grid: bool,
    pub help_open: bool,
    pub line_selected: bool,
}

/// The shortcut for `key` (as `KeyboardEvent.key` names it), if any. Keys with
/// Ctrl, Alt or Meta are the browser's.
pub fn key_action(key: &str, at: KeyContext) -> Option<KeyAction> {
    if at.typing && key != "Escape" {
        return None;
    }
    Some(match key {
        "/" => KeyAction::FocusSearch,
        "End" => KeyAction::JumpToEnd,
        "?" => KeyAction::ToggleHelp,
        "Escape" if at.help_open => KeyAction::ToggleHelp,
        "Escape" if at.line_selected => KeyAction::CloseDetail,
        "e" => KeyAction::NextError(true),
        "E" => KeyAction::NextError(false),
        "t" => KeyAction::NextTimeMode,
        "m" => KeyAction::ToggleMeta,
        "w" => KeyAction::ToggleWrap,
        "[" => KeyAction::FoldAll(false),
        "]" => KeyAction::FoldAll(true),
        "o" if at.line_selected => KeyAction::ToggleGroup,
        "j" => KeyAction::MoveSelection(1),
        "k" => KeyAction::MoveSelection(-1),
        "ArrowDown" if at.in_grid => KeyAction::MoveSelection(1),
        "ArrowUp" if at.in_grid => KeyAction::MoveSelection(-1),
        _ => return None,
    })
}

impl LogPanel {
    pub(super) fn on_key(&mut self, ctx: &Context<Self>, e: KeyboardEvent) -> bool {
        if e.ctrl_key() || e.meta_key() || e.alt_key() {
            return false;
        }
        let target = e.target();
        let typing = target
            .clone()
            .and_then(|t| t.dyn_into::<HtmlElement>().ok())
            .is_some_and(|el| matches!(el.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT"));
        let in_grid = self.viewport.cast::<HtmlElement>().is_some_and(|grid| {
            target
                .and_then(|t| t.dyn_into::<web_sys::Node>().ok())
                .is_some_and(|node| grid.contains(Some(&node)))
        });
        let at = KeyContext {
            typing,
            in_grid,
            help_open: self.show_help,
            line_selected: self.selected.is_some(),
        };
        let Some(action) = key_action(&e.key(), at) else {
            return false;
        };
        e.prevent_default();
        let msg = match action {
            KeyAction::FocusSearch => {
                if let Some(input) = self.search_input.cast::<HtmlInputElement>() {
                    let _ = input.focus();
                    input.select();
                }
                return false;
            }
            KeyAction::JumpToEnd => Msg::JumpToEnd,
            KeyAction::ToggleHelp => Msg::ToggleHelp,
            KeyAction::CloseDetail => Msg::CloseDetail,
            KeyAction::NextError(forward) => Msg::NextError(forward),
            KeyAction::NextTimeMode => Msg::SetTimeMode(self.prefs.time.next()),
            KeyAction::ToggleMeta => Msg::ToggleMeta,
            KeyAction::ToggleWrap => Msg::ToggleWrap,
            KeyAction::MoveSelection(delta) => Msg::MoveSelection(delta),
            KeyAction::FoldAll(open) => Msg::FoldAll(open),
            KeyAction::ToggleGroup => {
                match self.selected.and_then(|seq| self.model.group_at(seq)) {
                    Some(g) => Msg::ToggleGroup(g),
                    None => return false,
                }
            }
        };
        ctx.link().send_message(msg);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::components::shortcuts::SHORTCUTS;

    #[test]
    fn keys_are_shortcuts_only_outside_text_fields() {
        let anywhere = KeyContext::default();
        assert_eq!(key_action("e", anywhere), Some(KeyAction::NextError(true)));
        assert_eq!(key_action("E", anywhere), Some(KeyAction::NextError(false)));
        assert_eq!(key_action("x", anywhere), None);
        let typing = KeyContext {
            typing: true,
            line_selected: true,
            ..anywhere
        };
        assert_eq!(key_action("e", typing), None);
        assert_eq!(key_action("/", typing), None);
        assert_eq!(key_action("Escape", typing), Some(KeyAction::CloseDetail));
        // Esc closes the list of shortcuts before the detail pane.
        let both = KeyContext {
            help_open: true,
            line_selected: true,
            ..anywhere
        };
        assert_eq!(key_action("Escape", both), Some(KeyAction::ToggleHelp));
        assert_eq!(key_action("Escape", anywhere), None);
        // The arrows are the grid's only while it has focus.
        assert_eq!(key_action("ArrowDown", anywhere), None);
        let grid = KeyContext {
            in_grid: true,
            ..anywhere
        };
        assert_eq!(
            key_action("ArrowUp", grid),
            Some(KeyAction::MoveSelection(-1))
        );
    }

    #[test]
    fn every_shortcut_is_listed() {
        let listed = |key: &str| {
            SHORTCUTS
                .iter()
                .any(|(keys, _)| keys.split(" / ").any(|k| k.split(" or ").any(|k| k == key)))
        };
        for (key, listed_as) in [
            ("?", "?"),
            ("/", "/"),
            ("e", "e"),
            ("E", "Shift+E"),
            ("t", "t"),
            ("m", "m"),
            ("w", "w"),
            ("[", "["),
            ("]", "]"),
            ("o", "o"),
            ("j", "j"),
            ("k", "k"),
            ("ArrowDown", "↓"),
            ("ArrowUp", "↑"),
            ("End", "End"),
            ("Escape", "Esc"),
        ] {
            let at = KeyContext {
                in_grid: true,
                line_selected: true,
                ..KeyContext::default()
            };
            assert!(key_action(key, at).is_some(), "{key} does something");
            assert!(listed(listed_as), "{listed_as} is in the list");
        }
    }
}
