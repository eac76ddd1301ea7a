//! Links to the page's state: the address bar kept current, and the
//! buttons that copy a link or an embedding snippet.

use super::{browser, Lab};
use crate::page::link::{encode, BackendRequest, LinkState, SETTING_IDS};
use leptos::prelude::*;
use leptos::task::spawn_local;

/// Writes a link's query. While a preset is chosen, the preset defines the
/// runs, so the settings stay out of the link.
fn query_of(state: &LinkState) -> String {
    let query = encode(state);
    if state.preset.is_none() {
        return query;
    }
    query
        .split('&')
        .filter(|pair| {
            let key = pair.split('=').next().unwrap_or_default();
            !SETTING_IDS.contains(&key)
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Keeps the address bar's query equal to the page's state, so a reload or
/// a copied address reproduces it.
pub fn keep_address_current(lab: Lab) {
    Effect::new(move |_| {
        lab.view.track();
        lab.preset.track();
        // A half-typed or invalid value stays out of the address, which
        // keeps the last valid state.
        if lab.settings.with(|s| s.check().is_ok()) {
            browser::replace_query(&query_of(&lab.link_state(None)));
        }
    });
}

/// Returns the link that reproduces the current run: the state and the
/// backend that trains it.
fn share_link(lab: Lab) -> String {
    let backend = lab.backend.get().map(|b| if b.kind() == "webgpu" { BackendRequest::WebGpu } else { BackendRequest::Cpu });
    lab.settings.track();
    lab.view.track();
    lab.preset.track();
    let state = LinkState { embed: false, ..lab.link_state(backend) };
    format!("{}?{}", browser::page_address(), query_of(&state))
}

/// Returns the link to the page without embedding, for the embedded page's
/// "open the full lab" link.
pub fn full_page_link(lab: Lab) -> String {
    let state = LinkState { embed: false, ..lab.link_state(None) };
    format!("{}?{}", browser::page_address(), query_of(&state))
}

/// Returns an iframe snippet that embeds the page with the current state.
fn embed_snippet(link: &str) -> String {
    let escaped = link.replace('&', "&amp;").replace('"', "&quot;");
    format!("<iframe src=\"{escaped}&amp;embed=1\" title=\"lnlab: transformer stability under LayerNorm\" width=\"100%\" height=\"760\" style=\"border:0\" loading=\"lazy\"></iframe>")
}

#[component]
pub fn Share(lab: Lab) -> impl IntoView {
    let copied = RwSignal::new(None::<String>);
    let copy = move |what: &'static str, text: String| {
        spawn_local(async move {
            copied.set(Some(match browser::copy_text(&text).await {
                Ok(()) => format!("Copied the {what}."),
                Err(error) => format!("Copying failed ({error}); select the text below and copy it."),
            }));
        });
    };
    let link = Memo::new(move |_| share_link(lab));
    // Embedded readers train on whatever their browser offers.
    let embed_link = Memo::new(move |_| {
        lab.settings.track();
        lab.view.track();
        lab.preset.track();
        let state = LinkState { embed: false, backend: BackendRequest::Auto, ..lab.link_state(None) };
        format!("{}?{}", browser::page_address(), query_of(&state))
    });
    view! {
        <section class="share panel" aria-label="Share">
            <h2>"Share"</h2>
            <p class="muted">"The link holds every setting, the seed, the preset and the chart choices, and names the backend that trained this run, so it reproduces the same numbers. Add hide=lr,layers to lock controls for homework."</p>
            <label for="share-link">
                <span>"Link"</span>
                <input id="share-link" type="text" readonly prop:value=move || link.get() />
            </label>
            <label for="embed-code">
                <span>"Embedding code"</span>
                <input id="embed-code" type="text" readonly prop:value=move || embed_snippet(&embed_link.get()) />
            </label>
            <div class="buttons">
                <button type="button" id="copy-link" on:click=move |_| copy("link", link.get_untracked())>"Copy link"</button>
                <button type="button" id="copy-embed" on:click=move |_| copy("embedding code", embed_snippet(&embed_link.get_untracked()))>"Copy embedding code"</button>
            </div>
            <Show when=move || copied.get().is_some()>
                <p class="muted" role="status">{move || copied.get().unwrap_or_default()}</p>
            </Show>
        </section>
    }
}
