//! The window events the view listens to (keys, resizes, `#L…` changes), and the
//! viewport's own size (the page around it changes it too: a task's header
//! arriving), removed again when the view goes.

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::KeyboardEvent;
use yew::html::Scope;

use super::{LogPanel, Msg};

pub struct WindowListeners {
    keys: Closure<dyn FnMut(KeyboardEvent)>,
    resize: Closure<dyn FnMut()>,
    hash: Closure<dyn FnMut()>,
}

impl WindowListeners {
    /// Listens on the window for the view's `link`; `None` without a window.
    pub fn add(link: &Scope<LogPanel>) -> Option<WindowListeners> {
        let window = web_sys::window()?;
        let keys = {
            let link = link.clone();
            Closure::<dyn FnMut(KeyboardEvent)>::new(move |e: KeyboardEvent| {
                link.send_message(Msg::GlobalKey(e))
            })
        };
        let resize = {
            let link = link.clone();
            Closure::<dyn FnMut()>::new(move || link.send_message(Msg::Scrolled))
        };
        let hash = {
            let link = link.clone();
            Closure::<dyn FnMut()>::new(move || link.send_message(Msg::HashChanged))
        };
        let _ = window.add_event_listener_with_callback("keydown", keys.as_ref().unchecked_ref());
        let _ = window.add_event_listener_with_callback("resize", resize.as_ref().unchecked_ref());
        let _ =
            window.add_event_listener_with_callback("hashchange", hash.as_ref().unchecked_ref());
        Some(WindowListeners { keys, resize, hash })
    }
}

/// Tells the view when its viewport changes size, whatever changed it.
pub struct ViewportObserver {
    observer: web_sys::ResizeObserver,
    _changed: Closure<dyn FnMut()>,
}

impl ViewportObserver {
    pub fn watch(link: &Scope<LogPanel>, viewport: &web_sys::Element) -> Option<ViewportObserver> {
        let changed = {
            let link = link.clone();
            Closure::<dyn FnMut()>::new(move || link.send_message(Msg::Scrolled))
        };
        let observer = web_sys::ResizeObserver::new(changed.as_ref().unchecked_ref()).ok()?;
        observer.observe(viewport);
        Some(ViewportObserver {
            observer,
            _changed: changed,
        })
    }
}

impl Drop for ViewportObserver {
    fn drop(&mut self) {
        self.observer.disconnect();
    }
}

impl Drop for WindowListeners {
    fn drop(&mut self) {
        if let Some(window) = web_sys::window() {
            let _ = window
                .remove_event_listener_with_callback("keydown", self.keys.as_ref().unchecked_ref());
            let _ = window.remove_event_listener_with_callback(
                "resize",
                self.resize.as_ref().unchecked_ref(),
            );
            let _ = window.remove_event_listener_with_callback(
                "hashchange",
                self.hash.as_ref().unchecked_ref(),
            );
        }
    }
}
