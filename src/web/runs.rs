//! The run list: every run trained or imported on this page, kept in local
//! storage between visits, with its exports.

use super::{browser, figure, session, Lab, RunState};
use crate::io::checkpoint;
use crate::io::run_file::RunFile;
use crate::page::saved::{self, SavedRun, MAX_SAVED_RUNS};
use crate::plot::{difference_labels, MAX_OVERLAID_RUNS as MAX_SHOWN};
use leptos::prelude::*;
use leptos::task::spawn_local;

/// Local-storage key of the run list.
const STORAGE_KEY: &str = "lnlab.runs";
/// Key that keeps a stored list this page could not read, so a newer
/// page can still read it.
const UNREADABLE_KEY: &str = "lnlab.runs.unreadable";

/// Returns the runs drawn on the charts, with their legend labels: the
/// shown runs that have at least one measurement, at most [`MAX_SHOWN`].
pub fn shown_runs(list: &[SavedRun]) -> Vec<(String, RunFile)> {
    let shown: Vec<&SavedRun> = list.iter().filter(|r| r.shown && !r.run.evals.is_empty()).take(MAX_SHOWN).collect();
    let automatic = difference_labels(&shown.iter().map(|r| &r.run).collect::<Vec<_>>());
    shown.iter().zip(automatic).map(|(r, auto)| (r.label.clone().unwrap_or(auto), r.run.clone())).collect()
}

/// Adds a run to the list, shown, hiding the oldest shown runs past
/// [`MAX_SHOWN`]; returns its id.
pub fn add(lab: Lab, label: Option<String>, run: RunFile) -> u64 {
    let mut id = 0;
    lab.runs.update(|list| {
        id = list.iter().map(|r| r.id).max().unwrap_or(0) + 1;
        list.push(SavedRun { id, shown: true, label, run });
        let shown = list.iter().filter(|r| r.shown).count();
        for entry in list.iter_mut().filter(|r| r.shown).take(shown.saturating_sub(MAX_SHOWN)) {
            entry.shown = false;
        }
    });
    id
}

/// Writes the run list to local storage. When storage is full, the list
/// saved before stays as it was and the page shows an error.
pub fn save(lab: Lab) {
    let text = lab.runs.with_untracked(|list| saved::encode(list));
    match browser::storage_set(STORAGE_KEY, &text) {
        Ok(()) => {}
        Err(browser::StorageError::Full) => lab.error.set(Some(format!(
            "Browser storage is full, so the latest changes to the run list ({} KB) were not saved; the list saved before is kept. Delete runs you no longer need, or export them, and they will be saved again.",
            text.len() / 1024
        ))),
        Err(browser::StorageError::Unavailable(reason)) => {
            lab.notice.set(Some(format!("Runs are not kept between visits because this browser refused local storage ({reason}). Export runs you want to keep.")));
        }
    }
}

/// Reads the saved runs into the list; returns a message for the notice
/// when some or all could not be read.
pub fn load(lab: Lab) -> Option<String> {
    let text = browser::storage_get(STORAGE_KEY)?;
    match saved::decode(&text) {
        Ok(loaded) => {
            lab.runs.set(loaded.runs);
            (!loaded.skipped.is_empty()).then(|| format!("Some saved runs were left out: {}.", loaded.skipped.join("; ")))
        }
        Err(error) => {
            // Keep the unreadable list, since the next save replaces the key.
            let _ = browser::storage_set(UNREADABLE_KEY, &text);
            Some(format!("The saved runs could not be read: {error}. They were moved aside in local storage under {UNREADABLE_KEY}."))
        }
    }
}

/// Reads a run file (from `lnlab train` or exported here) into the list.
pub fn import(lab: Lab, file: web_sys::File) {
    spawn_local(async move {
        let result = match session::read_file(file).await {
            Ok((name, bytes)) => RunFile::from_json(&bytes).map(|run| (name, run)).map_err(|e| e.to_string()),
            Err(error) => Err(error),
        };
        match result {
            Ok((name, run)) if lab.runs.with_untracked(|l| l.len()) < MAX_SAVED_RUNS => {
                let steps = run.evals.last().map(|e| e.step).unwrap_or(0);
                add(lab, None, run);
                save(lab);
                lab.notice.set(Some(format!("Imported {name}: a run of {steps} steps, now in the run list and on the charts.")));
            }
            Ok(_) => lab.error.set(Some(format!("The run list is full ({MAX_SAVED_RUNS} runs); delete a run before importing another."))),
            Err(error) => {
                lab.notice.set(None);
                lab.error.set(Some(format!("Import failed: {error}.")));
            }
        }
    });
}

/// Returns a one-line summary of a run for the list.
fn summary(run: &RunFile) -> String {
    let model = &run.model;
    let steps = run.evals.last().map(|e| e.step).unwrap_or(0);
    let loss = run.evals.last().map(|e| format!(", validation loss {:.3}", e.val_loss)).unwrap_or_default();
    format!("{} layers, width {}, Δt {}, lr {}, {steps} of {} steps{loss}", model.layers, model.width, model.dt, run.train.lr, run.train.steps)
}

/// File name for a run's exports.
fn file_stem(entry: &SavedRun) -> String {
    let model = &entry.run.model;
    format!("lnlab-run{}-{}-L{}", entry.id, model.placement.name(), model.layers)
}

fn export(lab: Lab, id: u64, kind: &'static str) {
    let Some(entry) = lab.runs.with_untracked(|list| list.iter().find(|r| r.id == id).cloned()) else { return };
    let result = match kind {
        "json" => browser::download(&format!("{}.json", file_stem(&entry)), "application/json", entry.run.to_json().as_bytes()),
        _ => browser::download(&format!("{}.csv", file_stem(&entry)), "text/csv", crate::io::csv::run_csv(&entry.run).as_bytes()),
    };
    if let Err(error) = result {
        lab.error.set(Some(format!("Export failed: {error}.")));
    }
}

/// Saves the HTML report of the runs on the charts.
fn export_report(lab: Lab) {
    let runs = lab.shown.get_untracked();
    if runs.is_empty() {
        lab.error.set(Some("Show at least one measured run on the charts to make a report.".into()));
        return;
    }
    let options = figure::plot_options(lab);
    let result = crate::plot::html_report(&figure::chart_runs(&runs), &crate::plot::PlotOptions { theme: crate::plot::Theme::Light, ..options }, "lnlab report")
        .map_err(|e| e.to_string())
        .and_then(|html| browser::download("lnlab-report.html", "text/html", html.as_bytes()));
    if let Err(error) = result {
        lab.error.set(Some(format!("The report could not be made: {error}.")));
    }
}

/// Reads a safetensors checkpoint and makes it the start of the next run,
/// with the model settings taken from it. A file that fails any check is
/// rejected whole and changes nothing.
pub fn import_model(lab: Lab, file: web_sys::File) {
    spawn_local(async move {
        let name = file.name();
        let heads = lab.settings.with_untracked(|s| s.heads.trim().parse::<usize>().ok());
        let loaded = match session::read_file(file).await {
            Ok((_, bytes)) => checkpoint::load(&bytes, heads).map_err(|e| format!("{name} could not be loaded: {e}.")),
            Err(error) => Err(error),
        };
        let checkpoint = match loaded {
            Ok(checkpoint) => checkpoint,
            Err(error) => {
                lab.error.set(Some(error));
                return;
            }
        };
        let config = checkpoint.model.config.clone();
        lab.reset();
        lab.edit(|s| {
            s.placement = config.placement;
            s.layers = config.layers.to_string();
            s.width = config.width.to_string();
            s.heads = config.heads.to_string();
            s.context = config.context.to_string();
            s.dt = config.dt.to_string();
        });
        lab.start_model.set_value(Some((name.clone(), checkpoint.model, checkpoint.vocab)));
        lab.notice.set(Some(format!(
            "Loaded the model in {name}: {}, {} layers, width {}. The next run starts from its weights; pick the data it was trained on and press Train.",
            config.placement.label(), config.layers, config.width
        )));
    });
}

/// Saves the model of the parked run as a safetensors checkpoint.
fn export_checkpoint(lab: Lab) {
    if matches!(lab.state.get_untracked(), RunState::Training | RunState::Loading) {
        lab.error.set(Some("Pause the run before saving its model.".into()));
        return;
    }
    if lab.pausing() {
        lab.error.set(Some("The run is pausing: save its model when the step in flight has ended.".into()));
        return;
    }
    let Some(mut session) = lab.slot.try_update_value(|slot| slot.session.take()).flatten() else {
        lab.error.set(Some("No model to save: the model is kept only for the run in progress. Train or Step first.".into()));
        return;
    };
    // Train and Step wait while the model is read back, since the session
    // is out of its slot until then.
    let previous = lab.state.get_untracked();
    lab.state.set(RunState::Loading);
    spawn_local(async move {
        let result = session.model().await;
        lab.state.set(previous);
        let name = lab.active.get_untracked().map(|id| format!("lnlab-run{id}.safetensors")).unwrap_or_else(|| "lnlab-model.safetensors".into());
        let vocab = session.run().vocab.clone();
        lab.slot.update_value(|slot| slot.session = Some(session));
        let outcome = result
            .map_err(|e| e.to_string())
            .and_then(|model| browser::download(&name, "application/octet-stream", &checkpoint::save(&model, Some(&vocab))));
        if let Err(error) = outcome {
            lab.error.set(Some(format!("Saving the model failed: {error}.")));
        }
    });
}

/// Returns the name the run list shows for a run.
fn run_name(entry: &SavedRun) -> String {
    entry.label.clone().unwrap_or_else(|| format!("{} run {}", entry.run.model.placement.label(), entry.id))
}

/// Puts a deleted run back at its place in the list. It takes a new id if
/// a later run took its own, and stays off the charts if they are full.
fn restore(lab: Lab, index: usize, mut entry: SavedRun) {
    lab.runs.update(|list| {
        if list.iter().any(|r| r.id == entry.id) {
            entry.id = list.iter().map(|r| r.id).max().unwrap_or(0) + 1;
        }
        if entry.shown && list.iter().filter(|r| r.shown).count() >= MAX_SHOWN {
            entry.shown = false;
        }
        list.insert(index.min(list.len()), entry);
    });
    save(lab);
}

#[component]
pub fn RunList(lab: Lab) -> impl IntoView {
    // The last deleted run and its place in the list, until Undo.
    let deleted: RwSignal<Option<(usize, SavedRun)>> = RwSignal::new(None);
    let shown_count = move || lab.runs.with(|l| l.iter().filter(|r| r.shown).count());
    let toggle = move |id: u64, checkbox: web_sys::HtmlInputElement| {
        let show = checkbox.checked();
        if show && shown_count() >= MAX_SHOWN {
            lab.error.set(Some(format!("The charts show at most {MAX_SHOWN} runs; hide one first.")));
            checkbox.set_checked(false);
            return;
        }
        lab.runs.update(|list| {
            if let Some(entry) = list.iter_mut().find(|r| r.id == id) {
                entry.shown = show;
            }
        });
        save(lab);
    };
    let delete = move |id: u64| {
        if lab.active.get_untracked() == Some(id) {
            lab.reset();
        }
        let mut removed = None;
        lab.runs.update(|list| {
            if let Some(index) = list.iter().position(|r| r.id == id) {
                removed = Some((index, list.remove(index)));
            }
        });
        deleted.set(removed);
        save(lab);
    };
    let undo = move |_| {
        if let Some((index, entry)) = deleted.get_untracked() {
            deleted.set(None);
            restore(lab, index, entry);
        }
    };
    let on_import = move |ev: leptos::ev::Event| {
        let input: web_sys::HtmlInputElement = event_target(&ev);
        if let Some(file) = input.files().and_then(|files| files.get(0)) {
            import(lab, file);
        }
        input.set_value("");
    };
    let on_import_model = move |ev: leptos::ev::Event| {
        let input: web_sys::HtmlInputElement = event_target(&ev);
        if let Some(file) = input.files().and_then(|files| files.get(0)) {
            import_model(lab, file);
        }
        input.set_value("");
    };
    let has_model = move || lab.active.get().is_some() && !matches!(lab.state.get(), RunState::Training | RunState::Loading) && !lab.pausing();
    view! {
        <section class="runs panel" aria-label="Runs">
            <h2>"Runs"</h2>
            <p class="muted">{format!("Every run you train or import is kept in this browser. Tick up to {MAX_SHOWN} to compare them on the charts.")}</p>
            <div class="table-scroll">
                <table id="run-list">
                    <thead><tr><th scope="col">"show"</th><th scope="col">"run"</th><th scope="col">"settings and result"</th><th scope="col">"export"</th><th scope="col">"delete"</th></tr></thead>
                    <tbody>
                        <For each=move || lab.runs.get() key=|r| (r.id, r.shown, r.run.evals.len(), r.label.clone()) let:entry>
                            {
                                let id = entry.id;
                                let name = run_name(&entry);
                                // Screen readers name the run each button acts on.
                                let (json_label, csv_label, delete_label) = (format!("Export {name} as JSON"), format!("Export {name} as CSV"), format!("Delete {name}"));
                                let checkbox_id = format!("show-run-{id}");
                                view! {
                                    <tr data-run-id=id.to_string() data-shown=entry.shown.to_string() data-steps=entry.run.evals.last().map(|e| e.step).unwrap_or(0).to_string()>
                                        <td><input type="checkbox" id=checkbox_id.clone() checked=entry.shown on:change=move |ev| toggle(id, event_target(&ev)) /></td>
                                        <th scope="row"><label for=checkbox_id>{name}</label></th>
                                        <td>{summary(&entry.run)}</td>
                                        <td class="actions">
                                            <button type="button" class="small" data-export="json" aria-label=json_label on:click=move |_| export(lab, id, "json")>"JSON"</button>
                                            <button type="button" class="small" data-export="csv" aria-label=csv_label on:click=move |_| export(lab, id, "csv")>"CSV"</button>
                                        </td>
                                        <td><button type="button" class="small" data-delete=id.to_string() aria-label=delete_label on:click=move |_| delete(id)>"Delete"</button></td>
                                    </tr>
                                }
                            }
                        </For>
                    </tbody>
                </table>
            </div>
            <Show when=move || deleted.with(|d| d.is_some())>
                <p class="muted" id="deleted-run" role="status">
                    {move || deleted.with(|d| d.as_ref().map(|(_, entry)| format!("Deleted \u{201c}{}\u{201d}. ", run_name(entry))).unwrap_or_default())}
                    <button type="button" class="small" id="undo-delete" on:click=undo>"Undo"</button>
                </p>
            </Show>
            <div class="buttons">
                <button type="button" id="export-report" on:click=move |_| export_report(lab)>"Report of shown runs (HTML)"</button>
                <button type="button" id="export-checkpoint" disabled=move || !has_model() on:click=move |_| export_checkpoint(lab)>"Model of current run (safetensors)"</button>
                <label for="import-run" class="file-button">
                    <span>"Import a run file (JSON)"</span>
                    <input id="import-run" type="file" accept=".json,application/json" on:change=on_import />
                </label>
                <label for="import-model" class="file-button">
                    <span>"Start from a model (safetensors)"</span>
                    <input id="import-model" type="file" accept=".safetensors" on:change=on_import_model />
                </label>
            </div>
        </section>
    }
}
