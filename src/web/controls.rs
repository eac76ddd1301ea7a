//! The settings form, the chart options and the preset picker.

use super::{session, Lab};
use crate::config::{OptimizerKind, Placement};
use crate::data::synthetic::Task;
use crate::data::Dataset;
use crate::page::presets;
use crate::page::settings::{DataChoice, Settings};
use crate::plot::{AxisScale, Metric};
use leptos::prelude::*;
use leptos::task::spawn_local;

fn input_value(event: &leptos::ev::Event) -> String {
    event_target_value(event)
}

/// Renders a labelled text input bound to one field of the settings. A
/// control the link locks is disabled, and left out when embedded.
fn number_field(lab: Lab, id: &'static str, label: &'static str, hint: &'static str, get: fn(&Settings) -> String, set: fn(&mut Settings, String)) -> impl IntoView {
    let locked = lab.locked(id);
    let message = move || lab.field_errors.with(|errors| errors.iter().find(|(field, _)| field == id).map(|(_, text)| text.clone()));
    let error_id = format!("{id}-error");
    view! {
        <label for=id title=hint class:locked=locked>
            <span>{label}</span>
            <input
                id=id
                type="text"
                inputmode="decimal"
                disabled=locked
                aria-invalid=move || message().is_some().to_string()
                aria-describedby=error_id.clone()
                prop:value=move || lab.settings.with(get)
                on:change=move |ev| {
                    let value = input_value(&ev);
                    lab.edit(|s| set(s, value));
                }
            />
            <span class="field-error" id=error_id role="alert">{message}</span>
        </label>
    }
}

#[component]
pub fn Controls(lab: Lab) -> impl IntoView {
    let placements = [(Placement::Post, "Post-LN"), (Placement::Pre, "Pre-LN"), (Placement::Peri, "Peri-LN"), (Placement::None, "No LN")];
    let mut data_options = vec![("moby-dick", "Moby-Dick (text)".to_string())];
    data_options.extend(Task::ALL.iter().map(|t| (t.name(), format!("{} (synthetic)", t.name()))));
    data_options.push(("file", "My text file".to_string()));
    let on_file = move |ev: leptos::ev::Event| {
        let input: web_sys::HtmlInputElement = event_target(&ev);
        if let Some(file) = input.files().and_then(|files| files.get(0)) {
            load_file(lab, file);
        }
    };
    view! {
        <section class="controls" aria-label="Settings">
            <label for="placement" class:locked=lab.locked("placement")>
                <span>"LayerNorm placement"</span>
                <select id="placement" disabled=lab.locked("placement") on:change=move |ev| {
                    let value = input_value(&ev);
                    if let Ok(p) = Placement::parse(&value) { lab.edit(|s| s.placement = p); }
                }>
                    {placements.into_iter().map(|(p, name)| view! {
                        <option value=p.name() selected=move || lab.settings.with(|s| s.placement == p)>{name}</option>
                    }).collect_view()}
                </select>
            </label>
            {number_field(lab, "layers", "Layers L", "Number of blocks, 1 to 64", |s| s.layers.clone(), |s, v| s.layers = v)}
            {number_field(lab, "width", "Width d", "Features per token, 1 to 1024", |s| s.width.clone(), |s, v| s.width = v)}
            {number_field(lab, "heads", "Heads", "Attention heads; must divide the width", |s| s.heads.clone(), |s, v| s.heads = v)}
            {number_field(lab, "context", "Context T", "Characters per sequence, 1 to 1024", |s| s.context.clone(), |s, v| s.context = v)}
            {number_field(lab, "batch", "Batch B", "Sequences per step, 2 to 512", |s| s.batch.clone(), |s, v| s.batch = v)}
            {number_field(lab, "dt", "Residual step Δt", "Scale of every residual update, in (0, 10]", |s| s.dt.clone(), |s, v| s.dt = v)}
            {number_field(lab, "lr", "Learning rate", "Peak learning rate, in (0, 10]", |s| s.lr.clone(), |s, v| s.lr = v)}
            {number_field(lab, "warmup", "Warm-up steps", "Steps of linear warm-up", |s| s.warmup.clone(), |s, v| s.warmup = v)}
            {number_field(lab, "weight-decay", "Weight decay", "Decoupled decay on matrices and embeddings, in [0, 1]", |s| s.weight_decay.clone(), |s, v| s.weight_decay = v)}
            <label for="optimizer" class:locked=lab.locked("optimizer")>
                <span>"Optimiser"</span>
                <select id="optimizer" disabled=lab.locked("optimizer") on:change=move |ev| {
                    let value = input_value(&ev);
                    lab.edit(|s| s.optimizer = if value == "sgd" { OptimizerKind::Sgd } else { OptimizerKind::Adamw });
                }>
                    <option value="adamw" selected=move || lab.settings.with(|s| s.optimizer == OptimizerKind::Adamw)>"AdamW"</option>
                    <option value="sgd" selected=move || lab.settings.with(|s| s.optimizer == OptimizerKind::Sgd)>"SGD"</option>
                </select>
            </label>
            {number_field(lab, "steps", "Steps", "Optimiser steps in the run", |s| s.steps.clone(), |s, v| s.steps = v)}
            {number_field(lab, "eval-every", "Measure every", "Steps between measurements", |s| s.eval_every.clone(), |s, v| s.eval_every = v)}
            {number_field(lab, "seed", "Seed", "Same seed, same run", |s| s.seed.clone(), |s, v| s.seed = v)}
            <label for="data" class:locked=lab.locked("data")>
                <span>"Data"</span>
                <select id="data" disabled=lab.locked("data") on:change=move |ev| {
                    let value = input_value(&ev);
                    if let Some(choice) = DataChoice::parse(&value) { lab.edit(|s| s.data = choice); }
                }>
                    {data_options.into_iter().map(|(value, name)| view! {
                        <option value=value selected=move || lab.settings.with(|s| s.data.value() == value)>{name}</option>
                    }).collect_view()}
                </select>
            </label>
            <label for="data-file" class="file" class:locked=lab.locked("data")>
                <span>"Text file"</span>
                <input id="data-file" type="file" accept=".txt,text/plain" disabled=lab.locked("data") on:change=on_file />
            </label>
        </section>
    }
}

/// Reads a picked or dropped file and selects it as the data.
pub fn load_file(lab: Lab, file: web_sys::File) {
    spawn_local(async move {
        match session::read_file(file).await {
            Ok((name, bytes)) => match Dataset::from_bytes(&name, &bytes) {
                Ok(dataset) => {
                    lab.notice.set(Some(format!("Loaded {name}: {} characters, vocabulary {}.", dataset.train.len() + dataset.val.len(), dataset.vocab.len())));
                    lab.file.set_value(Some((name, bytes)));
                    lab.edit(|s| s.data = DataChoice::File);
                }
                Err(error) => lab.error.set(Some(error.to_string())),
            },
            Err(error) => lab.error.set(Some(error)),
        }
    });
}

/// Renders one axis-scale picker bound to a field of the view choices.
fn scale_picker(
    lab: Lab, id: &'static str, label: &'static str, choices: [(AxisScale, &'static str); 2],
    get: fn(&crate::page::link::ViewChoices) -> AxisScale, set: fn(&mut crate::page::link::ViewChoices, AxisScale),
) -> impl IntoView {
    let locked = lab.locked(id);
    view! {
        <label for=id class:locked=locked>
            <span>{label}</span>
            <select id=id disabled=locked on:change=move |ev| {
                let scale = if input_value(&ev) == "log" { AxisScale::Log } else { AxisScale::Linear };
                lab.view.update(|v| set(v, scale));
            }>
                {choices.into_iter().map(|(scale, text)| view! {
                    <option value=if scale == AxisScale::Log { "log" } else { "linear" } selected=move || lab.view.with(|v| get(v) == scale)>{text}</option>
                }).collect_view()}
            </select>
        </label>
    }
}

#[component]
pub fn ViewOptions(lab: Lab) -> impl IntoView {
    view! {
        <div class="view-options">
            <label for="metric" class:locked=lab.locked("metric")>
                <span>"Hidden-state metric"</span>
                <select id="metric" disabled=lab.locked("metric") on:change=move |ev| { if let Some(m) = Metric::parse(&input_value(&ev)) { lab.view.update(|v| v.metric = m); } }>
                    {Metric::ALL.iter().map(|m| {
                        let m = *m;
                        view! { <option value=m.name() selected=move || lab.view.with(|v| v.metric == m)>{m.label()}</option> }
                    }).collect_view()}
                </select>
            </label>
            {scale_picker(lab, "layer-scale", "Layer charts axis", [(AxisScale::Log, "log"), (AxisScale::Linear, "linear")], |v| v.layer_scale, |v, s| v.layer_scale = s)}
            {scale_picker(lab, "x-scale", "Layer and step axes", [(AxisScale::Linear, "linear"), (AxisScale::Log, "log (leaves out layer 0 and step 0)")], |v| v.x_scale, |v, s| v.x_scale = s)}
            {scale_picker(lab, "loss-scale", "Loss axis", [(AxisScale::Linear, "linear"), (AxisScale::Log, "log")], |v| v.loss_scale, |v, s| v.loss_scale = s)}
        </div>
    }
}

/// Renders the preset picker and the text of the chosen preset.
#[component]
pub fn PresetPicker(lab: Lab) -> impl IntoView {
    let all = presets::all();
    let options = all.iter().map(|p| (p.id, p.title)).collect::<Vec<_>>();
    let locked = lab.locked("preset");
    view! {
        <section class="presets panel" aria-label="Presets">
            <label for="preset" class:locked=locked>
                <span>"Preset comparison"</span>
                <select id="preset" disabled=locked on:change=move |ev| {
                    let id = input_value(&ev);
                    match presets::find(&id) {
                        Some(preset) => lab.apply_preset(preset, false),
                        None => {
                            lab.preset.set(None);
                            lab.reset();
                        }
                    }
                }>
                    <option value="" selected=move || lab.preset.with(|p| p.is_none())>"None: my own settings"</option>
                    {options.into_iter().map(|(id, title)| view! {
                        <option value=id selected=move || lab.preset.with(|p| p.as_ref().map(|p| p.id) == Some(id))>{title}</option>
                    }).collect_view()}
                </select>
            </label>
            <Show when=move || lab.preset.with(|p| p.is_some())>
                <p id="preset-story" class="story">{move || lab.preset.with(|p| p.as_ref().map(|p| p.story.to_string()).unwrap_or_default())}</p>
                <p class="muted">"Press Train to train the preset's runs one after another; each joins the run list and the charts."</p>
            </Show>
        </section>
    }
}
