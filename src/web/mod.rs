//! The lab page (Leptos, client-side rendering). Only this module touches
//! the DOM; it drives the same training loop as the command line.
//!
//! State lives in a few signals: the settings as typed, the latest run
//! record, and the status. The run itself (model, optimiser, GPU buffers)
//! is not reactive: the training loop owns it while it trains and parks it
//! in a local store while paused.

mod charts;
mod explain;
mod session;

use crate::config::{OptimizerKind, Placement};
use crate::data::synthetic::Task;
use crate::data::Dataset;
use crate::io::run_file::RunFile;
use crate::plot::{AxisScale, Metric};
use crate::train::trainer::StepOutcome;
use crate::train::RunStart;
use charts::ChartKind;
use leptos::html;
use leptos::prelude::*;
use leptos::task::spawn_local;
use session::{detect_backend, now_ms, yield_to_browser, BackendChoice, Session};
use crate::page::settings::{DataChoice, Settings};
use wasm_bindgen::JsCast;

/// State of a run, shown in `#status[data-state]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RunState {
    Idle,
    Loading,
    Training,
    Paused,
    Finished,
    Diverged,
}

impl RunState {
    fn name(self) -> &'static str {
        match self {
            RunState::Idle => "idle",
            RunState::Loading => "loading",
            RunState::Training => "training",
            RunState::Paused => "paused",
            RunState::Finished => "finished",
            RunState::Diverged => "diverged",
        }
    }
}

/// Time the loop trains before it lets the browser render, in milliseconds.
const CHUNK_MS: f64 = 40.0;
/// Shortest time between chart redraws while training, in milliseconds.
const REDRAW_MS: f64 = 250.0;

/// The run being trained, with the settings it was started from. The
/// training loop takes it out while it runs.
struct Slot {
    session: Option<Session>,
    started_with: Option<Settings>,
}

/// Signals and stores shared by the controls and the training loop. Every
/// field is a cheap, copyable handle.
#[derive(Clone, Copy)]
struct Lab {
    settings: RwSignal<Settings>,
    backend: RwSignal<Option<BackendChoice>>,
    state: RwSignal<RunState>,
    steps_done: RwSignal<usize>,
    steps_per_second: RwSignal<f64>,
    run: RwSignal<Option<RunFile>>,
    notice: RwSignal<Option<String>>,
    error: RwSignal<Option<String>>,
    metric: RwSignal<Metric>,
    layer_scale: RwSignal<AxisScale>,
    loss_scale: RwSignal<AxisScale>,
    x_scale: RwSignal<AxisScale>,
    slot: StoredValue<Slot, LocalStorage>,
    /// The picked or dropped text file: its name and bytes.
    file: StoredValue<Option<(String, Vec<u8>)>, LocalStorage>,
    corpus: StoredValue<Option<Dataset>, LocalStorage>,
    /// Bumped by Reset, so a loop still running from before stops.
    generation: StoredValue<u64>,
}

impl Lab {
    fn new() -> Lab {
        Lab {
            settings: RwSignal::new(Settings::default()),
            backend: RwSignal::new(None),
            state: RwSignal::new(RunState::Idle),
            steps_done: RwSignal::new(0),
            steps_per_second: RwSignal::new(0.0),
            run: RwSignal::new(None),
            notice: RwSignal::new(None),
            error: RwSignal::new(None),
            metric: RwSignal::new(Metric::MaxTokenNorm),
            layer_scale: RwSignal::new(AxisScale::Log),
            loss_scale: RwSignal::new(AxisScale::Linear),
            x_scale: RwSignal::new(AxisScale::Linear),
            slot: StoredValue::new_local(Slot { session: None, started_with: None }),
            file: StoredValue::new_local(None),
            corpus: StoredValue::new_local(None),
            generation: StoredValue::new(0),
        }
    }

    /// Load the data the settings name.
    async fn dataset(self, settings: &Settings) -> Result<Dataset, String> {
        match &settings.data {
            DataChoice::MobyDick => {
                if let Some(dataset) = self.corpus.with_value(|c| c.clone()) {
                    return Ok(dataset);
                }
                let dataset = session::fetch_corpus().await?;
                self.corpus.set_value(Some(dataset.clone()));
                Ok(dataset)
            }
            DataChoice::Task(task) => {
                let seed = settings.seed.trim().parse::<u64>().unwrap_or(1);
                Dataset::load(&crate::config::DataConfig::Synthetic { task: *task }, seed).map_err(|e| e.to_string())
            }
            DataChoice::File => match self.file.with_value(|f| f.clone()) {
                Some((name, bytes)) => Dataset::from_bytes(&name, &bytes).map_err(|e| e.to_string()),
                None => Err("choose a text file first (the file picker, or drop a file on the page)".into()),
            },
        }
    }

    /// Build a new run from the current settings on the detected backend.
    async fn new_session(self) -> Result<Session, String> {
        let settings = self.settings.get_untracked();
        let train = settings.train_config().map_err(|e| e.to_string())?;
        let dataset = self.dataset(&settings).await?;
        let model = settings.model_config(dataset.vocab.len()).map_err(|e| e.to_string())?;
        let file_name = self.file.with_value(|f| f.as_ref().map(|(name, _)| name.clone()));
        let data = settings.data_config(file_name.as_deref());
        let start = RunStart::new(model, train, data, dataset, None).map_err(|e| e.to_string())?;
        let choice = self.backend.get_untracked().unwrap_or(BackendChoice::Cpu("WebGPU detection has not finished".into()));
        let (session, notice) = Session::start(start, &choice).await;
        if let Some(notice) = notice {
            self.notice.set(Some(notice));
        }
        self.slot.update_value(|slot| slot.started_with = Some(settings));
        Ok(session)
    }

    /// Publish the run's latest record and progress to the page.
    fn publish(self, session: &Session) {
        self.steps_done.set(session.steps_done());
        self.run.set(Some(session.run().clone()));
    }

    /// Train (`single_step` false) until paused, finished or diverged, or
    /// take one step. Yields to the browser between chunks.
    async fn train(self, single_step: bool) {
        let generation = self.generation.get_value();
        let parked = self.slot.try_update_value(|slot| slot.session.take()).flatten();
        let mut session = match parked {
            Some(session) => session,
            None => {
                self.state.set(RunState::Loading);
                match self.new_session().await {
                    Ok(session) => session,
                    Err(error) => {
                        self.error.set(Some(error));
                        self.state.set(RunState::Idle);
                        return;
                    }
                }
            }
        };
        if self.generation.get_value() != generation {
            return;
        }
        self.error.set(None);
        self.state.set(RunState::Training);
        let mut last_redraw = 0.0;
        let mut rate_start = (now_ms(), session.steps_done());
        loop {
            let chunk_start = now_ms();
            let mut outcome = None;
            while now_ms() - chunk_start < CHUNK_MS {
                match session.step().await {
                    Ok(StepOutcome::Trained { evaluated, .. }) => {
                        if single_step || (evaluated && session.uses_gpu()) {
                            break;
                        }
                    }
                    Ok(other) => {
                        outcome = Some(other);
                        break;
                    }
                    Err(error) => {
                        self.error.set(Some(error.to_string()));
                        outcome = Some(StepOutcome::Finished);
                        break;
                    }
                }
            }
            if self.generation.get_value() != generation {
                return;
            }
            let stopping = outcome.is_some() || single_step || self.state.get_untracked() != RunState::Training;
            let (rate_time, rate_steps) = rate_start;
            let elapsed = (now_ms() - rate_time) / 1000.0;
            if elapsed > 0.5 || (stopping && elapsed > 0.0 && session.steps_done() > rate_steps) {
                self.steps_per_second.set((session.steps_done() - rate_steps) as f64 / elapsed);
                rate_start = (now_ms(), session.steps_done());
            }
            if stopping || now_ms() - last_redraw > REDRAW_MS {
                self.publish(&session);
                last_redraw = now_ms();
            }
            if let Some(outcome) = outcome {
                self.state.set(match outcome {
                    StepOutcome::Diverged(ref non_finite) => {
                        self.error.set(Some(format!("Training stopped: {non_finite}. Try a smaller learning rate, then Reset.")));
                        RunState::Diverged
                    }
                    _ => RunState::Finished,
                });
                break;
            }
            if single_step || self.state.get_untracked() != RunState::Training {
                if self.state.get_untracked() == RunState::Training {
                    self.state.set(RunState::Paused);
                }
                break;
            }
            yield_to_browser().await;
        }
        self.slot.update_value(|slot| slot.session = Some(session));
    }

    fn reset(self) {
        self.generation.update_value(|g| *g += 1);
        self.slot.update_value(|slot| {
            slot.session = None;
            slot.started_with = None;
        });
        self.run.set(None);
        self.steps_done.set(0);
        self.steps_per_second.set(0.0);
        self.error.set(None);
        self.state.set(RunState::Idle);
    }

    /// Apply an edited setting. Schedule settings reach the run in
    /// progress; model settings wait for Reset, and a notice explains that.
    fn edit(self, change: impl FnOnce(&mut Settings)) {
        self.settings.update(change);
        // An error about the old value no longer applies.
        self.error.set(None);
        let settings = self.settings.get_untracked();
        let started_with = self.slot.with_value(|slot| slot.started_with.clone());
        let Some(started_with) = started_with else { return };
        if started_with.needs_new_run(&settings) {
            self.notice.set(Some("Model settings changed: press Reset to start a new run with them. The current run keeps its model.".into()));
        } else if let Ok(train) = settings.train_config() {
            self.slot.update_value(|slot| {
                if let Some(session) = slot.session.as_mut() {
                    session.update_schedule(&train);
                }
            });
        }
    }
}

fn input_value(event: &leptos::ev::Event) -> String {
    event_target_value(event)
}

/// Render a labelled text input bound to one field of the settings.
fn number_field(lab: Lab, id: &'static str, label: &'static str, hint: &'static str, get: fn(&Settings) -> String, set: fn(&mut Settings, String)) -> impl IntoView {
    view! {
        <label for=id title=hint>
            <span>{label}</span>
            <input
                id=id
                type="text"
                inputmode="decimal"
                prop:value=move || lab.settings.with(get)
                on:change=move |ev| {
                    let value = input_value(&ev);
                    lab.edit(|s| set(s, value));
                }
            />
        </label>
    }
}

#[component]
fn Controls(lab: Lab) -> impl IntoView {
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
            <label for="placement">
                <span>"LayerNorm placement"</span>
                <select id="placement" on:change=move |ev| {
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
            <label for="optimizer">
                <span>"Optimiser"</span>
                <select id="optimizer" on:change=move |ev| {
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
            <label for="data">
                <span>"Data"</span>
                <select id="data" on:change=move |ev| {
                    let value = input_value(&ev);
                    if let Some(choice) = DataChoice::parse(&value) { lab.edit(|s| s.data = choice); }
                }>
                    {data_options.into_iter().map(|(value, name)| view! {
                        <option value=value selected=move || lab.settings.with(|s| s.data.value() == value)>{name}</option>
                    }).collect_view()}
                </select>
            </label>
            <label for="data-file" class="file">
                <span>"Text file"</span>
                <input id="data-file" type="file" accept=".txt,text/plain" on:change=on_file />
            </label>
        </section>
    }
}

/// Read a picked or dropped file and select it as the data.
fn load_file(lab: Lab, file: web_sys::File) {
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

#[component]
fn Buttons(lab: Lab) -> impl IntoView {
    let busy = move || matches!(lab.state.get(), RunState::Training | RunState::Loading);
    let done = move || matches!(lab.state.get(), RunState::Finished | RunState::Diverged);
    view! {
        <div class="buttons">
            <button id="train" disabled=move || busy() || done() on:click=move |_| spawn_local(lab.train(false))>"Train"</button>
            <button id="pause" disabled=move || lab.state.get() != RunState::Training on:click=move |_| lab.state.set(RunState::Paused)>"Pause"</button>
            <button id="step" disabled=move || busy() || done() on:click=move |_| spawn_local(lab.train(true))>"Step"</button>
            <button id="reset" on:click=move |_| lab.reset()>"Reset"</button>
        </div>
    }
}

#[component]
fn Status(lab: Lab) -> impl IntoView {
    let backend_kind = move || lab.backend.get().map(|b| b.kind()).unwrap_or("detecting");
    let backend_label = move || lab.backend.get().map(|b| b.label()).unwrap_or_else(|| "Detecting WebGPU…".into());
    let total = move || lab.settings.with(|s| s.steps.clone());
    view! {
        <p class="status">
            <span id="backend" data-backend=backend_kind>{backend_label}</span>
            " · "
            <span id="status" data-state=move || lab.state.get().name() data-step=move || lab.steps_done.get().to_string()>
                {move || format!("{}: step {} of {}", lab.state.get().name(), lab.steps_done.get(), total())}
            </span>
            " · "
            <span id="rate">{move || format!("{:.1} steps/s", lab.steps_per_second.get())}</span>
        </p>
        <Show when=move || lab.notice.get().is_some()>
            <p id="notice" class="notice" role="status">{move || lab.notice.get().unwrap_or_default()}</p>
        </Show>
        <Show when=move || lab.error.get().is_some()>
            <p id="error" class="error" role="alert">{move || lab.error.get().unwrap_or_default()}</p>
        </Show>
    }
}

#[component]
fn Chart(lab: Lab, kind: ChartKind, id: &'static str, label: &'static str) -> impl IntoView {
    let canvas = NodeRef::<html::Canvas>::new();
    let message = RwSignal::new(None::<String>);
    Effect::new(move |_| {
        let run = lab.run.get();
        let metric = lab.metric.get();
        let scales = charts::Scales { layer: lab.layer_scale.get(), loss: lab.loss_scale.get(), x: lab.x_scale.get() };
        let Some(element) = canvas.get() else { return };
        let element: web_sys::HtmlCanvasElement = element.unchecked_into();
        match run {
            Some(run) if !run.evals.is_empty() => message.set(charts::draw(&element, kind, &run, metric, scales).err()),
            _ => {
                // Setting the width clears the canvas, so no chart of a
                // reset run stays on screen.
                element.set_width(element.width());
                message.set(Some("Press Train to see this chart.".into()));
            }
        }
    });
    view! {
        <figure class="chart">
            <canvas id=id node_ref=canvas role="img" aria-label=label></canvas>
            <figcaption>{label} {move || message.get().map(|m| format!(" — {m}"))}</figcaption>
        </figure>
    }
}

/// Full-precision text for data attributes, so a page test compares the
/// same numbers the charts use.
fn number_text(value: f64) -> String {
    if value.is_finite() { format!("{value:e}") } else { "NaN".into() }
}

#[component]
fn LayerTable(lab: Lab) -> impl IntoView {
    let rows = move || lab.run.with(|run| run.as_ref().and_then(|r| r.evals.last()).map(|e| e.layers.clone()).unwrap_or_default());
    view! {
        <table id="layer-table">
            <caption>"Latest measurement by layer, with certified bounds"</caption>
            <thead><tr>
                <th scope="col">"layer"</th><th scope="col">"max token norm"</th><th scope="col">"bound"</th>
                <th scope="col">"mean |x|"</th><th scope="col">"bound"</th><th scope="col">"entry var"</th><th scope="col">"data var"</th>
                <th scope="col">"bound (both)"</th><th scope="col">"gradient rms"</th>
            </tr></thead>
            <tbody>
                {move || rows().into_iter().map(|m| view! {
                    <tr
                        data-layer=m.layer.to_string()
                        data-mean-abs=number_text(m.mean_abs)
                        data-entry-var=number_text(m.entry_var)
                        data-data-var=number_text(m.data_var)
                        data-max-token-norm=number_text(m.max_token_norm)
                        data-bound-mean-abs=number_text(m.bound_mean_abs)
                        data-bound-entry-var=number_text(m.bound_entry_var)
                        data-bound-max-token-norm=number_text(m.bound_max_token_norm)
                        data-grad-rms=number_text(m.grad_rms)
                    >
                        <th scope="row">{m.layer}</th>
                        <td>{format!("{:.4}", m.max_token_norm)}</td><td>{format!("{:.4}", m.bound_max_token_norm)}</td>
                        <td>{format!("{:.4}", m.mean_abs)}</td><td>{format!("{:.4}", m.bound_mean_abs)}</td>
                        <td>{format!("{:.4}", m.entry_var)}</td><td>{format!("{:.4}", m.data_var)}</td>
                        <td>{format!("{:.4}", m.bound_entry_var)}</td><td>{format!("{:.3e}", m.grad_rms)}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
}

#[component]
fn LossTable(lab: Lab) -> impl IntoView {
    let rows = move || lab.run.with(|run| run.as_ref().map(|r| r.evals.iter().map(|e| (e.step, e.train_loss, e.val_loss)).collect::<Vec<_>>()).unwrap_or_default());
    view! {
        <table id="loss-table">
            <caption>"Loss at each measurement (nats per character)"</caption>
            <thead><tr><th scope="col">"step"</th><th scope="col">"train loss"</th><th scope="col">"validation loss"</th></tr></thead>
            <tbody>
                {move || rows().into_iter().map(|(step, train, val)| view! {
                    <tr data-step=step.to_string() data-train-loss=number_text(train) data-val-loss=number_text(val)>
                        <th scope="row">{step}</th><td>{format!("{train:.4}")}</td><td>{format!("{val:.4}")}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
}

#[component]
fn ViewOptions(lab: Lab) -> impl IntoView {
    let scale_of = |value: &str| if value == "linear" { AxisScale::Linear } else { AxisScale::Log };
    view! {
        <div class="view-options">
            <label for="metric">
                <span>"Hidden-state metric"</span>
                <select id="metric" on:change=move |ev| { if let Some(m) = Metric::parse(&input_value(&ev)) { lab.metric.set(m); } }>
                    {Metric::ALL.iter().map(|m| {
                        let m = *m;
                        view! { <option value=m.name() selected=move || lab.metric.get() == m>{m.label()}</option> }
                    }).collect_view()}
                </select>
            </label>
            <label for="layer-scale">
                <span>"Layer charts axis"</span>
                <select id="layer-scale" on:change=move |ev| lab.layer_scale.set(scale_of(&input_value(&ev)))>
                    <option value="log" selected=true>"log"</option>
                    <option value="linear">"linear"</option>
                </select>
            </label>
            <label for="x-scale">
                <span>"Layer and step axes"</span>
                <select id="x-scale" on:change=move |ev| lab.x_scale.set(scale_of(&input_value(&ev)))>
                    <option value="linear" selected=true>"linear"</option>
                    <option value="log">"log (leaves out layer 0 and step 0)"</option>
                </select>
            </label>
            <label for="loss-scale">
                <span>"Loss axis"</span>
                <select id="loss-scale" on:change=move |ev| lab.loss_scale.set(scale_of(&input_value(&ev)))>
                    <option value="linear" selected=true>"linear"</option>
                    <option value="log">"log"</option>
                </select>
            </label>
        </div>
    }
}

#[component]
pub fn App() -> impl IntoView {
    let lab = Lab::new();
    spawn_local(async move {
        let choice = detect_backend().await;
        if let BackendChoice::Cpu(reason) = &choice {
            lab.notice.set(Some(reason.clone()));
        }
        lab.backend.set(Some(choice));
    });
    // A file dropped anywhere on the page becomes the data.
    let on_drop = move |ev: leptos::ev::DragEvent| {
        ev.prevent_default();
        if let Some(file) = ev.data_transfer().and_then(|t| t.files()).and_then(|files| files.get(0)) {
            load_file(lab, file);
        }
    };
    view! {
        <main on:dragover=move |ev: leptos::ev::DragEvent| ev.prevent_default() on:drop=on_drop>
            <header>
                <h1>"lnlab"</h1>
                <p class="tagline">"Where LayerNorm goes decides how hidden states grow with depth. Train a small transformer here and watch each layer against its certified bound."</p>
            </header>
            <Status lab=lab />
            <div class="lab-grid">
                <aside class="panel">
                    <Controls lab=lab />
                    <Buttons lab=lab />
                    <ViewOptions lab=lab />
                </aside>
                <section class="charts" aria-label="Charts">
                    <Chart lab=lab kind=ChartKind::Metric id="metric-chart" label="Hidden-state metric by layer, with its certified bound" />
                    <Chart lab=lab kind=ChartKind::Gradient id="gradient-chart" label="Residual-gradient RMS by layer" />
                    <Chart lab=lab kind=ChartKind::Loss id="loss-chart" label="Training and validation loss by step" />
                    <Chart lab=lab kind=ChartKind::LayerStep id="layer-step-chart" label="Metric by layer and step" />
                    <div class="table-scroll"><LayerTable lab=lab /></div>
                    <div class="table-scroll"><LossTable lab=lab /></div>
                </section>
            </div>
            <explain::Explanations />
        </main>
    }
}
