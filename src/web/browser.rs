//! Small wrappers over browser APIs: downloads, the clipboard, local
//! storage, the page's address and the colour scheme.

use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// Offers `bytes` to the user as a file called `name`.
pub fn download(name: &str, mime: &str, bytes: &[u8]) -> Result<(), String> {
    let parts = js_sys::Array::of1(&js_sys::Uint8Array::from(bytes));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type(mime);
    let blob = web_sys::Blob::new_with_u8_array_sequence_and_options(&parts, &options).map_err(|_| format!("the browser could not build the file {name}"))?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(|_| format!("the browser could not offer the file {name}"))?;
    let result = click_link(name, &url);
    let _ = web_sys::Url::revoke_object_url(&url);
    result
}

/// Offers a `data:` or `blob:` address as a file called `name`.
pub fn click_link(name: &str, href: &str) -> Result<(), String> {
    let document = web_sys::window().and_then(|w| w.document()).ok_or("the page has no document")?;
    let anchor: web_sys::HtmlAnchorElement = document.create_element("a").map_err(|_| "cannot create a link")?.unchecked_into();
    anchor.set_href(href);
    anchor.set_download(name);
    anchor.click();
    Ok(())
}

/// Copies `text` to the clipboard. Browsers may reject the write (no
/// permission, no secure context), and the error then names the cause.
pub async fn copy_text(text: &str) -> Result<(), String> {
    let navigator = web_sys::window().ok_or("no window")?.navigator();
    let clipboard = js_sys::Reflect::get(&navigator, &"clipboard".into()).ok().filter(|c| !c.is_undefined()).ok_or("this browser offers no clipboard here")?;
    let write: js_sys::Function = js_sys::Reflect::get(&clipboard, &"writeText".into()).ok().and_then(|f| f.dyn_into().ok()).ok_or("this browser offers no clipboard here")?;
    let promise: js_sys::Promise = write.call1(&clipboard, &JsValue::from_str(text)).map_err(|_| "the clipboard refused the text")?.dyn_into().map_err(|_| "the clipboard refused the text")?;
    JsFuture::from(promise).await.map(|_| ()).map_err(|_| "the browser did not allow copying".to_string())
}

fn local_storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

/// Reads a local-storage entry; `None` when missing or when storage is off.
pub fn storage_get(key: &str) -> Option<String> {
    local_storage()?.get_item(key).ok().flatten()
}

/// Cause of a failed local-storage write.
pub enum StorageError {
    /// The browser's quota for this page is used up.
    Full,
    /// Storage is switched off or refused the write for another reason.
    Unavailable(String),
}

/// Writes a local-storage entry. A failed write leaves the old value.
pub fn storage_set(key: &str, value: &str) -> Result<(), StorageError> {
    let storage = local_storage().ok_or_else(|| StorageError::Unavailable("this browser keeps no local storage for the page".into()))?;
    storage.set_item(key, value).map_err(|error| {
        let name = js_sys::Reflect::get(&error, &"name".into()).ok().and_then(|n| n.as_string()).unwrap_or_default();
        if name == "QuotaExceededError" || name == "NS_ERROR_DOM_QUOTA_REACHED" {
            StorageError::Full
        } else {
            StorageError::Unavailable(name)
        }
    })
}

/// Returns the page's query string, without the leading `?`.
pub fn query() -> String {
    web_sys::window().and_then(|w| w.location().search().ok()).unwrap_or_default().trim_start_matches('?').to_string()
}

/// Returns the page's address without query or fragment.
pub fn page_address() -> String {
    let Some(location) = web_sys::window().map(|w| w.location()) else { return String::new() };
    let origin = location.origin().unwrap_or_default();
    let path = location.pathname().unwrap_or_default();
    format!("{origin}{path}")
}

/// Replaces the query in the address bar without reloading or adding a
/// history entry.
pub fn replace_query(query: &str) {
    let Some(window) = web_sys::window() else { return };
    let Ok(history) = window.history() else { return };
    let url = if query.is_empty() { window.location().pathname().unwrap_or_default() } else { format!("?{query}") };
    let _ = history.replace_state_with_url(&JsValue::NULL, "", Some(&url));
}

/// Returns whether the system prefers a dark colour scheme.
pub fn prefers_dark() -> bool {
    web_sys::window()
        .and_then(|w| w.match_media("(prefers-color-scheme: dark)").ok().flatten())
        .map(|m| m.matches())
        .unwrap_or(false)
}
