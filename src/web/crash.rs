//! The crash panel. After a Rust panic, an uncaught JavaScript error or an
//! unhandled promise rejection, a panel at the top of the page shows the
//! error. Its buttons copy the details for a bug report and reload the page.
//!
//! The panel is built with plain DOM calls, not Leptos: a panic can leave
//! the reactive runtime with state borrowed, so rendering through it after a
//! panic is not safe. Every text goes in through `textContent`, so an error
//! message never becomes markup.

use std::cell::Cell;
use std::panic::PanicHookInfo;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Document, Element};

/// Id of the panel's root element.
const PANEL_ID: &str = "crash";
/// Id of the `<pre>` that contains the copyable details.
const DETAILS_ID: &str = "crash-details";
/// Id of the line that reports whether copying worked.
const COPY_STATUS_ID: &str = "crash-copy-status";

thread_local! {
    /// Whether the panel is on the page. Only the first error is shown,
    /// because a panic ends in a WebAssembly trap that the browser reports
    /// again as an uncaught `RuntimeError`, and that repeat adds nothing.
    static PANEL_SHOWN: Cell<bool> = const { Cell::new(false) };
}

/// An error to show: what raised it, its message and where it happened.
struct Report {
    kind: &'static str,
    message: String,
    location: Option<String>,
}

/// Installs the panic hook and the `error` and `unhandledrejection`
/// listeners. Call once, before the page is mounted. Panics are still
/// logged to the console as before, with their stack trace.
pub fn install() {
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        show(&Report { kind: "Rust panic", message: panic_message(info), location: panic_location(info) });
    }));
    listen_for_uncaught_errors();
}

/// Panics on purpose, so that browser tests can check the crash panel
/// (tests/e2e/safety.test.mjs). Trunk 0.21's loader puts the wasm-bindgen
/// exports on `window.wasmBindings`, so a test calls
/// `window.wasmBindings.lnlabForcePanic()`. Not used by the page itself.
#[wasm_bindgen(js_name = lnlabForcePanic)]
pub fn force_panic() {
    panic!("lnlabForcePanic was called: this test hook panics on purpose");
}

fn panic_message(info: &PanicHookInfo) -> String {
    let payload = info.payload();
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a text message".to_string()
    }
}

fn panic_location(info: &PanicHookInfo) -> Option<String> {
    info.location().map(|location| format!("{}:{}:{}", location.file(), location.line(), location.column()))
}

/// Listens for uncaught errors and promise rejections on the window for the
/// rest of the page's life. Errors before the wasm starts are reported by
/// the loading line in index.html instead.
fn listen_for_uncaught_errors() {
    let Some(window) = web_sys::window() else { return };

    let on_error = Closure::<dyn Fn(web_sys::ErrorEvent)>::new(|event: web_sys::ErrorEvent| {
        let message = event.message();
        let file = event.filename();
        let location = (!file.is_empty()).then(|| format!("{file}:{}:{}", event.lineno(), event.colno()));
        show(&Report { kind: "uncaught JavaScript error", message, location });
    });
    let _ = window.add_event_listener_with_callback("error", on_error.as_ref().unchecked_ref());
    on_error.forget();

    let on_rejection = Closure::<dyn Fn(web_sys::PromiseRejectionEvent)>::new(|event: web_sys::PromiseRejectionEvent| {
        show(&Report { kind: "unhandled promise rejection", message: describe_js_value(&event.reason()), location: None });
    });
    let _ = window.add_event_listener_with_callback("unhandledrejection", on_rejection.as_ref().unchecked_ref());
    on_rejection.forget();
}

/// Returns readable text for a thrown or rejected JavaScript value.
fn describe_js_value(value: &JsValue) -> String {
    if let Some(error) = value.dyn_ref::<js_sys::Error>() {
        let name = String::from(error.name());
        let message = String::from(error.message());
        return if name.is_empty() { message } else { format!("{name}: {message}") };
    }
    if let Some(text) = value.as_string() {
        return text;
    }
    format!("{value:?}")
}

/// Builds the bug-report text: the error, the page address and the browser.
fn details_text(report: &Report) -> String {
    let window = web_sys::window();
    let address = window.as_ref().and_then(|w| w.location().href().ok()).unwrap_or_default();
    let user_agent = window.as_ref().and_then(|w| w.navigator().user_agent().ok()).unwrap_or_default();
    let location = report.location.as_deref().unwrap_or("unknown");
    format!(
        "lnlab internal error\nkind: {}\nmessage: {}\nlocation: {location}\npage: {address}\nuser agent: {user_agent}\n",
        report.kind, report.message
    )
}

/// Shows the panel for `report`, unless a panel is already shown. A failed
/// DOM call only logs one console line, because this runs while the page is
/// already broken and the console already has the error.
fn show(report: &Report) {
    if PANEL_SHOWN.with(|shown| shown.replace(true)) {
        return;
    }
    let Some(document) = web_sys::window().and_then(|w| w.document()) else { return };
    if build_panel(&document, report).is_none() {
        web_sys::console::error_1(&"lnlab: could not show the crash panel".into());
    }
}

fn build_panel(document: &Document, report: &Report) -> Option<()> {
    let body = document.body()?;
    let panel = element(document, "section", Some("crash"), None)?;
    panel.set_id(PANEL_ID);
    panel.set_attribute("role", "alert").ok()?;
    panel.set_attribute("aria-labelledby", "crash-title").ok()?;

    let heading = element(document, "h2", None, Some("The lab hit an internal error"))?;
    heading.set_id("crash-title");
    panel.append_child(&heading).ok()?;
    let message = element(document, "p", Some("crash-message"), Some(&report.message))?;
    panel.append_child(&message).ok()?;
    if let Some(location) = &report.location {
        let where_line = element(document, "p", Some("crash-location muted"), Some(&format!("at {location}")))?;
        panel.append_child(&where_line).ok()?;
    }
    let advice = element(
        document,
        "p",
        None,
        Some("Saved runs are kept in this browser and come back after a reload. A run that was still training may be lost, or lose its latest steps."),
    )?;
    panel.append_child(&advice).ok()?;

    let buttons = element(document, "div", Some("buttons"), None)?;
    let copy = element(document, "button", None, Some("Copy details"))?;
    copy.set_id("crash-copy");
    copy.set_attribute("type", "button").ok()?;
    let reload = element(document, "button", Some("primary"), Some("Reload the page"))?;
    reload.set_id("crash-reload");
    reload.set_attribute("type", "button").ok()?;
    buttons.append_child(&copy).ok()?;
    buttons.append_child(&reload).ok()?;
    panel.append_child(&buttons).ok()?;

    let copy_status = element(document, "p", Some("crash-copy-status"), None)?;
    copy_status.set_id(COPY_STATUS_ID);
    copy_status.set_attribute("role", "status").ok()?;
    panel.append_child(&copy_status).ok()?;

    let details = details_text(report);
    let pre = element(document, "pre", Some("crash-details"), Some(&details))?;
    pre.set_id(DETAILS_ID);
    panel.append_child(&pre).ok()?;

    on_click(&copy, move || copy_details(&details));
    on_click(&reload, || {
        if let Some(window) = web_sys::window() {
            let _ = window.location().reload();
        }
    });

    body.prepend_with_node_1(&panel).ok()?;
    Some(())
}

/// Creates an element with an optional class list and text content.
fn element(document: &Document, tag: &str, class: Option<&str>, text: Option<&str>) -> Option<Element> {
    let element = document.create_element(tag).ok()?;
    if let Some(class) = class {
        element.set_class_name(class);
    }
    if let Some(text) = text {
        element.set_text_content(Some(text));
    }
    Some(element)
}

/// Runs `action` on every click of `target`, for the rest of the page's life.
fn on_click(target: &Element, action: impl Fn() + 'static) {
    let closure = Closure::<dyn Fn()>::new(action);
    let _ = target.add_event_listener_with_callback("click", closure.as_ref().unchecked_ref());
    closure.forget();
}

/// Copies `details` to the clipboard. When the browser offers no clipboard
/// or rejects the write, selects the details text instead, so Ctrl+C copies
/// it. Uses promise callbacks rather than the async executor, which the
/// panic may have interrupted.
fn copy_details(details: &str) {
    let Some(window) = web_sys::window() else { return };
    let clipboard = js_sys::Reflect::get(&window.navigator(), &"clipboard".into()).ok().filter(|c| !c.is_undefined());
    let write = clipboard.as_ref().and_then(|c| js_sys::Reflect::get(c, &"writeText".into()).ok()).and_then(|f| f.dyn_into::<js_sys::Function>().ok());
    let (Some(clipboard), Some(write)) = (clipboard, write) else {
        select_details("This browser offers no clipboard here");
        return;
    };
    let Some(promise) = write.call1(&clipboard, &JsValue::from_str(details)).ok().and_then(|p| p.dyn_into::<js_sys::Promise>().ok()) else {
        select_details("The browser rejected the copy");
        return;
    };
    // Each click leaks these two small closures: only one of them runs, so
    // neither can free the other.
    let on_copied = Closure::<dyn FnMut(JsValue)>::new(|_: JsValue| set_copy_status("copied", "Copied the details to the clipboard."));
    let on_rejected = Closure::<dyn FnMut(JsValue)>::new(|_: JsValue| select_details("The browser did not allow copying"));
    let _ = promise.then2(&on_copied, &on_rejected);
    on_copied.forget();
    on_rejected.forget();
}

/// Selects the details text and shows `reason`, so the user can copy it by hand.
fn select_details(reason: &str) {
    let document = web_sys::window().and_then(|w| w.document());
    let pre = document.as_ref().and_then(|d| d.get_element_by_id(DETAILS_ID));
    let selection = web_sys::window().and_then(|w| w.get_selection().ok().flatten());
    if let (Some(pre), Some(selection)) = (pre, selection) {
        let _ = selection.select_all_children(&pre);
    }
    set_copy_status("selected", &format!("{reason}, so the details below are selected: press Ctrl+C (⌘C on a Mac) to copy them."));
}

/// Writes the copy result into the status line, as text and as `data-copy`.
fn set_copy_status(state: &str, text: &str) {
    let Some(status) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.get_element_by_id(COPY_STATUS_ID)) else { return };
    status.set_text_content(Some(text));
    let _ = status.set_attribute("data-copy", state);
}
