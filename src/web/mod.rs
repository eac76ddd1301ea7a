//! The lab page (Leptos, client-side rendering). Only this module touches
//! the DOM; it drives the same training loop as the command line.
//!
//! State lives in a few signals: the settings as typed, the latest run
//! record, and the status. The run itself (model, optimiser, GPU buffers)
//! is not reactive: the training loop owns it while it trains and parks it
//! in a local store while paused.

mod browser;
mod charts;
pub mod crash;
mod controls;
mod explain;
mod figure;
mod runs;
mod session;
mod share;
mod tables;
pub mod workers;

use crate::config::DataConfig;
use crate::data::Dataset;
use crate::page::link::{BackendRequest, LinkState, ViewChoices};
use crate::page::presets::Preset;
use crate::page::saved::SavedRun;
use crate::page::settings::{self as page_settings, DataChoice, Settings};
use crate::plot::{ChartKind, Theme};
use crate::metrics::NonFinite;
use crate::train::trainer::StepOutcome;
use crate::train::{RunStart, Snapshot};
use leptos::prelude::*;
use leptos::task::spawn_local;
use session::{detect_backend, now_ms, yield_to_browser, BackendChoice, Session};

/// State of a run, shown in `#status[data-state]` (see [`Lab::state_name`]).
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

/// Time the loop trains before it lets the browser render, in
/// milliseconds. Steps that wait for the workers let it render anyway.
const CHUNK_MS: f64 = 40.0;
/// Shortest time between chart redraws while training, in milliseconds.
const REDRAW_MS: f64 = 250.0;
/// Evaluations a run keeps in memory; older ones are thinned beyond this,
/// so a run of tens of thousands of steps stays bounded.
const MAX_EVALS_KEPT: usize = 400;
/// Finite states a run keeps for rewinding: the start and the latest three.
const MAX_SNAPSHOTS: usize = 4;

/// The run being trained, with the settings it was started from. The
/// training loop takes it out while it runs.
struct Slot {
    session: Option<Session>,
    started_with: Option<Settings>,
    /// Finite points of the run, oldest first: the start and the latest
    /// few evaluations. They serve rewinding after a divergence and moving
    /// to the CPU after a GPU failure.
    snapshots: Vec<Snapshot>,
}

/// Choices fixed by the link that opened the page: the embedding, locked
/// controls and requested backend.
#[derive(Clone, Debug, Default)]
struct Frame {
    embed: bool,
    hidden: Vec<&'static str>,
    backend: Option<BackendRequest>,
}

/// Signals and stores shared by the controls and the training loop. Every
/// field is a cheap, copyable handle.
#[derive(Clone, Copy)]
struct Lab {
    settings: RwSignal<Settings>,
    view: RwSignal<ViewChoices>,
    backend: RwSignal<Option<BackendChoice>>,
    /// Place where the CPU path computes its steps, once a CPU run has started.
    compute: RwSignal<Option<String>>,
    state: RwSignal<RunState>,
    steps_done: RwSignal<usize>,
    steps_per_second: RwSignal<f64>,
    /// Every run in the list, the one in training included.
    runs: RwSignal<Vec<SavedRun>>,
    /// The runs drawn on the charts with their legend labels, computed once
    /// per change for all four charts.
    shown: Memo<Vec<(String, crate::io::run_file::RunFile)>>,
    /// Id of the run the parked or training session belongs to.
    active: RwSignal<Option<u64>>,
    /// The preset whose runs are being trained or shown.
    preset: RwSignal<Option<Preset>>,
    /// Preset runs still to train after the current one: label and settings.
    queue: RwSignal<Vec<(String, Settings)>>,
    notice: RwSignal<Option<String>>,
    error: RwSignal<Option<String>>,
    /// The settings that fail their checks, by field name, with messages.
    field_errors: RwSignal<Vec<(String, String)>>,
    /// The divergence of the current run, for the rewind offer.
    diverged: RwSignal<Option<NonFinite>>,
    /// Whether training goes on while the tab is hidden.
    train_hidden: RwSignal<bool>,
    /// Set when hiding the tab paused training, so showing it resumes.
    paused_by_hiding: StoredValue<bool>,
    theme: RwSignal<Theme>,
    frame: StoredValue<Frame>,
    slot: StoredValue<Slot, LocalStorage>,
    /// The picked or dropped text file: its name and bytes.
    file: StoredValue<Option<(String, Vec<u8>)>, LocalStorage>,
    corpus: StoredValue<Option<Dataset>, LocalStorage>,
    /// Label for the next run that starts.
    next_label: StoredValue<Option<String>>,
    /// A model loaded from a checkpoint that the next run starts from: the
    /// file name, the model and its stored vocabulary.
    start_model: StoredValue<Option<(String, crate::model::Model<f32>, Option<String>)>, LocalStorage>,
    /// Bumped by Reset, so a loop still running from before stops.
    generation: StoredValue<u64>,
    /// Generation of the training loop that owns the session, if any. A
    /// loop still finishing its step after Pause shows as "pausing".
    looping: RwSignal<Option<u64>>,
    /// Whether the running loop takes one step (Step) rather than training
    /// on. Train pressed during that step clears it.
    stepping: StoredValue<bool>,
}

/// Clears [`Lab::looping`] when a training loop ends, by whatever return.
struct LoopGuard {
    lab: Lab,
    generation: u64,
}

impl Drop for LoopGuard {
    fn drop(&mut self) {
        if self.lab.looping.get_untracked() == Some(self.generation) {
            self.lab.looping.set(None);
        }
    }
}

impl Lab {
    fn new() -> Lab {
        let runs = RwSignal::new(Vec::new());
        Lab {
            shown: Memo::new(move |_| runs.with(|list| runs::shown_runs(list))),
            settings: RwSignal::new(Settings::default()),
            view: RwSignal::new(ViewChoices::default()),
            backend: RwSignal::new(None),
            compute: RwSignal::new(None),
            state: RwSignal::new(RunState::Idle),
            steps_done: RwSignal::new(0),
            steps_per_second: RwSignal::new(0.0),
            runs,
            active: RwSignal::new(None),
            preset: RwSignal::new(None),
            queue: RwSignal::new(Vec::new()),
            notice: RwSignal::new(None),
            error: RwSignal::new(None),
            field_errors: RwSignal::new(Vec::new()),
            diverged: RwSignal::new(None),
            train_hidden: RwSignal::new(false),
            paused_by_hiding: StoredValue::new(false),
            theme: RwSignal::new(if browser::prefers_dark() { Theme::Dark } else { Theme::Light }),
            frame: StoredValue::new(Frame::default()),
            slot: StoredValue::new_local(Slot { session: None, started_with: None, snapshots: Vec::new() }),
            file: StoredValue::new_local(None),
            corpus: StoredValue::new_local(None),
            next_label: StoredValue::new(None),
            start_model: StoredValue::new_local(None),
            generation: StoredValue::new(0),
            looping: RwSignal::new(None),
            stepping: StoredValue::new(false),
        }
    }

    /// Returns whether Pause was pressed while the loop still finishes the
    /// step in flight.
    fn pausing(self) -> bool {
        self.state.get() == RunState::Paused && self.looping.get() == Some(self.generation.get_value())
    }

    /// Returns the run state as the status line names it.
    fn state_name(self) -> &'static str {
        if self.pausing() {
            "pausing"
        } else {
            self.state.get().name()
        }
    }

    /// Returns whether the link locks the control `id`.
    fn locked(self, id: &str) -> bool {
        self.frame.with_value(|frame| frame.hidden.contains(&id))
    }

    /// Loads the data the settings name.
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
                Dataset::load(&DataConfig::Synthetic { task: *task }, seed).map_err(|e| e.to_string())
            }
            DataChoice::File => match self.file.with_value(|f| f.clone()) {
                Some((name, bytes)) => Dataset::from_bytes(&name, &bytes).map_err(|e| e.to_string()),
                None => Err("Choose a text file first (the file picker, or drop a file on the page).".into()),
            },
        }
    }

    /// Builds a new run from the current settings on the detected backend
    /// and adds it to the run list.
    async fn new_session(self) -> Result<Session, String> {
        let settings = self.settings.get_untracked();
        let train = settings.train_config().map_err(|e| e.to_string())?;
        let dataset = self.dataset(&settings).await?;
        let model = settings.model_config(dataset.vocab.len()).map_err(|e| e.to_string())?;
        let file_name = self.file.with_value(|f| f.as_ref().map(|(name, _)| name.clone()));
        let data = settings.data_config(file_name.as_deref());
        let loaded = self.start_model.try_update_value(|m| m.take()).flatten();
        let start_from = match loaded {
            Some((name, start_model, vocab)) => {
                let data_vocab: String = dataset.vocab.chars().iter().collect();
                if vocab.is_some_and(|v| v != data_vocab) {
                    return Err(format!("The model in {name} was trained on a different character set than the chosen data; pick the data it was trained on."));
                }
                if start_model.config != model {
                    return Err(format!("The model in {name} does not match the settings (its vocabulary has {} characters, the data {}); pick the data it was trained on.", start_model.config.vocab, model.vocab));
                }
                Some(start_model)
            }
            None => None,
        };
        let start = RunStart::new(model, train, data, dataset, start_from).map_err(|e| e.to_string())?;
        let choice = self.backend.get_untracked().unwrap_or(BackendChoice::Cpu("WebGPU detection has not finished".into()));
        let (session, notice) = Session::start(start, &choice).await;
        self.compute.set(session.compute());
        if let Some(notice) = notice {
            self.notice.set(Some(notice));
        }
        self.slot.update_value(|slot| slot.started_with = Some(settings));
        let label = self.next_label.try_update_value(|l| l.take()).flatten();
        let id = runs::add(self, label, session.run().clone());
        self.active.set(Some(id));
        Ok(session)
    }

    /// Publishes the run's latest record and progress to the page.
    fn publish(self, session: &Session) {
        self.steps_done.set(session.steps_done());
        let compute = session.compute();
        if self.compute.get_untracked() != compute {
            self.compute.set(compute);
        }
        let Some(id) = self.active.get_untracked() else { return };
        self.runs.update(|list| {
            if let Some(entry) = list.iter_mut().find(|r| r.id == id) {
                entry.run = session.run().clone();
            }
        });
    }

    /// Trains (`single_step` false) until paused, finished or diverged, or
    /// takes one step. Yields to the browser between chunks unless the
    /// steps wait for the workers. A finished preset run starts the next
    /// one in the queue.
    async fn train(self, single_step: bool) {
        if let Err(error) = self.settings.with_untracked(|s| s.check()) {
            self.error.set(Some(page_settings::describe(&error)));
            return;
        }
        let generation = self.generation.get_value();
        if self.looping.get_untracked() == Some(generation) {
            // This run's loop is still waiting inside a step (CPU steps wait
            // for the workers): it carries on instead of a second loop
            // starting a new run.
            if !single_step {
                // A Step in flight trains on too.
                self.stepping.set_value(false);
                self.state.set(RunState::Training);
            }
            return;
        }
        self.looping.set(Some(generation));
        self.stepping.set_value(single_step);
        let _looping = LoopGuard { lab: self, generation };
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
        if self.slot.with_value(|slot| slot.snapshots.is_empty()) {
            self.keep_snapshot(&mut session).await;
            if self.generation.get_value() != generation {
                return;
            }
        }
        let stepping = move || self.stepping.get_value();
        self.error.set(None);
        self.diverged.set(None);
        self.state.set(RunState::Training);
        let mut last_redraw = 0.0;
        let mut rate_start = (now_ms(), session.steps_done());
        loop {
            let chunk_start = now_ms();
            let mut outcome = None;
            // Pause takes effect after the step in flight: a CPU step awaits
            // the workers, so the page may pause in the middle of a chunk.
            while now_ms() - chunk_start < CHUNK_MS && (stepping() || self.state.get_untracked() == RunState::Training) {
                let stepped = session.step().await;
                // Reset while the step was waiting: this run is gone.
                if self.generation.get_value() != generation {
                    return;
                }
                match stepped {
                    Ok(StepOutcome::Trained { evaluated, .. }) => {
                        if evaluated {
                            self.keep_snapshot(&mut session).await;
                        }
                        if stepping() || (evaluated && session.uses_gpu()) {
                            break;
                        }
                    }
                    Ok(other) => {
                        outcome = Some(other);
                        break;
                    }
                    Err(error) if session.uses_gpu() => match self.leave_gpu(&session, &error.to_string()) {
                        Some(moved) => {
                            session = moved;
                            rate_start = (now_ms(), session.steps_done());
                            break;
                        }
                        None => {
                            outcome = Some(StepOutcome::Finished);
                            break;
                        }
                    },
                    Err(error) => {
                        self.error.set(Some(format!("Training failed: {error}.")));
                        outcome = Some(StepOutcome::Finished);
                        break;
                    }
                }
            }
            if self.generation.get_value() != generation {
                return;
            }
            let stopping = outcome.is_some() || stepping() || self.state.get_untracked() != RunState::Training;
            let (rate_time, rate_steps) = rate_start;
            let elapsed = (now_ms() - rate_time) / 1000.0;
            if elapsed > 0.5 || (stopping && elapsed > 0.0 && session.steps_done() > rate_steps) {
                self.steps_per_second.set(session.steps_done().saturating_sub(rate_steps) as f64 / elapsed);
                rate_start = (now_ms(), session.steps_done());
            }
            if stopping || now_ms() - last_redraw > REDRAW_MS {
                session.thin(MAX_EVALS_KEPT);
                self.publish(&session);
                last_redraw = now_ms();
            }
            if let Some(outcome) = outcome {
                self.state.set(match outcome {
                    StepOutcome::Diverged(non_finite) => {
                        self.queue.set(Vec::new());
                        let rewind_step = self.rewind_step();
                        let offer = match rewind_step {
                            Some(step) => format!(" Rewind returns to the finite state after {step} updates with a tenth of the learning rate; or press Reset."),
                            None if non_finite.step == 0 => " The model was not finite before training; load another model or press Reset.".to_string(),
                            None => " Try a smaller learning rate, then Reset.".to_string(),
                        };
                        self.error.set(Some(format!("Training diverged: {}.{offer}", crate::page::divergence::describe(&non_finite))));
                        self.diverged.set(Some(non_finite));
                        RunState::Diverged
                    }
                    _ => RunState::Finished,
                });
                break;
            }
            if stepping() || self.state.get_untracked() != RunState::Training {
                if self.state.get_untracked() == RunState::Training {
                    self.state.set(RunState::Paused);
                }
                break;
            }
            // A step that waits for the workers has let the browser render
            // already. The next one starts at once, so the charts just
            // published draw while the workers compute.
            if !session.waits_for_workers() {
                yield_to_browser().await;
            }
        }
        self.slot.update_value(|slot| slot.session = Some(session));
        runs::save(self);
        if self.state.get_untracked() == RunState::Finished {
            self.start_next_queued();
        }
    }

    /// Saves the run's current point as its last finite state. A failed
    /// read-back, or parameters that are not all finite (a model loaded
    /// with a NaN), keep the previous snapshot.
    async fn keep_snapshot(self, session: &mut Session) {
        if let Ok(snapshot) = session.snapshot().await {
            if snapshot.state.params.iter().all(|p| p.is_finite()) {
                self.slot.update_value(|slot| {
                    slot.snapshots.push(snapshot);
                    // Keep the start and the latest ones.
                    if slot.snapshots.len() > MAX_SNAPSHOTS {
                        slot.snapshots.remove(1);
                    }
                });
            }
        }
    }

    /// Returns the step a rewind goes back to, if the run has one.
    fn rewind_step(self) -> Option<usize> {
        self.slot.with_value(|slot| slot.snapshots.last().map(|s| s.step))
    }

    /// Moves a run whose GPU failed to the CPU at its last snapshot and
    /// shows a notice. Returns `None`, and shows an error, when the run has
    /// no snapshot or the move fails.
    /// NOTE: the run stays on the CPU from then on; requesting a new GPU
    /// device after a loss is not tried.
    fn leave_gpu(self, session: &Session, reason: &str) -> Option<Session> {
        let snapshot = self.slot.with_value(|slot| slot.snapshots.last().cloned());
        let moved = snapshot.as_ref().map(|snapshot| session.move_to_cpu(snapshot));
        match moved {
            Some(Ok(moved)) => {
                let step = moved.steps_done();
                self.notice.set(Some(format!(
                    "The GPU stopped working ({reason}). The run continues on the CPU (WebAssembly) from step {step}, its last saved state."
                )));
                self.backend.set(Some(BackendChoice::Cpu(format!("The GPU failed during training: {reason}"))));
                Some(moved)
            }
            Some(Err(error)) => {
                self.error.set(Some(format!("The GPU stopped working ({reason}), and moving the run to the CPU failed: {error}.")));
                None
            }
            None => {
                self.error.set(Some(format!("The GPU stopped working ({reason}) before the run saved a state. Press Reset to start again on the CPU.")));
                None
            }
        }
    }

    /// Returns the run to its last finite state and divides the learning
    /// rate by ten, after a divergence. That state is then dropped (unless it
    /// is the start), so a run that diverges again before its next
    /// evaluation rewinds further back.
    fn rewind(self) {
        let target = self.slot.try_update_value(|slot| {
            if slot.snapshots.len() > 1 {
                slot.snapshots.pop()
            } else {
                slot.snapshots.first().cloned()
            }
        });
        let Some(snapshot) = target.flatten() else { return };

        let restored = self.slot.try_update_value(|slot| slot.session.as_mut().map(|session| session.restore(&snapshot))).flatten();
        match restored {
            Some(Ok(())) => {}
            Some(Err(error)) => {
                self.error.set(Some(format!("Rewinding failed: {error}.")));
                return;
            }
            None => return,
        }

        let old_rate = self.slot.with_value(|slot| slot.session.as_ref().map(|s| s.learning_rate())).unwrap_or(0.0);
        let new_rate = old_rate / 10.0;
        self.edit(|s| s.lr = format!("{new_rate}"));
        self.slot.with_value(|slot| {
            if let Some(session) = slot.session.as_ref() {
                self.publish(session);
            }
        });

        // The run now mixes learning rates, so its settings alone no longer
        // reproduce it; its name says so.
        if let Some(id) = self.active.get_untracked() {
            self.runs.update(|list| {
                if let Some(entry) = list.iter_mut().find(|r| r.id == id) {
                    let named = entry.label.clone().unwrap_or_else(|| entry.run.model.placement.label().to_string());
                    let base = named.split(", rewound at").next().unwrap_or_default().to_string();
                    entry.label = Some(format!("{base}, rewound at step {} to lr {new_rate}", snapshot.step));
                }
            });
        }
        self.diverged.set(None);
        self.error.set(None);
        self.state.set(RunState::Paused);
        self.notice.set(Some(format!(
            "Rewound to step {}, the last finite state, with the learning rate lowered from {old_rate} to {new_rate}. Press Train to continue.",
            snapshot.step
        )));
    }

    /// Starts the next preset run, if any is queued.
    fn start_next_queued(self) {
        let mut queue = self.queue.get_untracked();
        if queue.is_empty() {
            return;
        }
        let (label, settings) = queue.remove(0);
        self.queue.set(queue);
        self.drop_session();
        self.settings.set(settings);
        self.next_label.set_value(Some(label));
        spawn_local(self.train(false));
    }

    /// Ends the current session; its run stays in the list.
    fn drop_session(self) {
        self.generation.update_value(|g| *g += 1);
        self.slot.update_value(|slot| {
            slot.session = None;
            slot.started_with = None;
            slot.snapshots.clear();
        });
        self.diverged.set(None);
        self.active.set(None);
        self.steps_done.set(0);
        self.steps_per_second.set(0.0);
        self.state.set(RunState::Idle);
    }

    /// Ends the current run and clears any queued preset runs, so the next
    /// Train starts a new run from the settings.
    fn reset(self) {
        self.drop_session();
        self.queue.set(Vec::new());
        self.error.set(None);
    }

    /// Replaces the settings and queue with a preset's runs and hides the
    /// runs already shown, so the preset's runs are compared alone. With
    /// `reuse`, finished runs in the list that match a preset run (same
    /// label and settings) are shown instead of trained again, so reloading
    /// a preset link keeps its results.
    fn apply_preset(self, preset: Preset, reuse: bool) {
        self.reset();
        self.runs.update(|list| list.iter_mut().for_each(|r| r.shown = false));
        let mut queue: Vec<(String, Settings)> = Vec::new();
        for preset_run in &preset.runs {
            let trained = reuse.then(|| self.runs.with_untracked(|list| {
                list.iter().rposition(|r| {
                    let finished = r.run.evals.last().is_some_and(|e| e.step == r.run.train.steps);
                    finished && r.label.as_deref() == Some(preset_run.label) && preset_run.settings.describes(&r.run)
                })
            })).flatten();
            match trained {
                Some(index) => self.runs.update(|list| list[index].shown = true),
                None => queue.push((preset_run.label.to_string(), preset_run.settings.clone())),
            }
        }
        self.view.update(|v| v.metric = preset.metric);
        if queue.is_empty() {
            if let Some(last) = preset.runs.last() {
                self.settings.set(last.settings.clone());
            }
        } else {
            let (label, first) = queue.remove(0);
            self.settings.set(first);
            self.next_label.set_value(Some(label));
        }
        self.queue.set(queue);
        self.preset.set(Some(preset));
    }

    /// Applies an edited setting. Schedule settings reach the run in
    /// progress; model settings wait for Reset, and a notice explains that.
    /// Editing by hand leaves the preset.
    fn edit(self, change: impl FnOnce(&mut Settings)) {
        self.settings.update(change);
        if self.preset.get_untracked().is_some() {
            self.preset.set(None);
            self.queue.set(Vec::new());
            self.next_label.set_value(None);
        }
        // An error about the old value no longer applies.
        self.error.set(None);
        let settings = self.settings.get_untracked();
        self.field_errors.set(settings.errors().iter().map(|e| (e.field.to_string(), page_settings::describe(e))).collect());
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

    /// Returns the page's state as a link: settings, view, preset, and what the
    /// link that opened the page fixed. `backend` names the path that ran.
    fn link_state(self, backend: Option<BackendRequest>) -> LinkState {
        let frame = self.frame.get_value();
        LinkState {
            settings: self.settings.get_untracked(),
            view: self.view.get_untracked(),
            preset: self.preset.get_untracked().map(|p| p.id.to_string()),
            embed: frame.embed,
            hidden: frame.hidden,
            backend: backend.or(frame.backend).unwrap_or(BackendRequest::Auto),
            autorun: false,
        }
    }
}

#[component]
fn Buttons(lab: Lab) -> impl IntoView {
    let busy = move || matches!(lab.state.get(), RunState::Training | RunState::Loading);
    // A finished run trains on when Steps is raised past the steps done.
    let done = move || match lab.state.get() {
        RunState::Diverged => true,
        RunState::Finished => lab.settings.with(|s| s.steps.trim().parse::<usize>().map_or(true, |steps| steps <= lab.steps_done.get())),
        _ => false,
    };
    view! {
        <div class="buttons">
            <button id="train" disabled=move || busy() || done() on:click=move |_| spawn_local(lab.train(false))>"Train"</button>
            <button id="pause" disabled=move || lab.state.get() != RunState::Training on:click=move |_| lab.state.set(RunState::Paused)>"Pause"</button>
            <button id="step" disabled=move || busy() || done() || lab.pausing() on:click=move |_| spawn_local(lab.train(true))>"Step"</button>
            <button id="reset" on:click=move |_| lab.reset()>"Reset"</button>
        </div>
        <Show when=move || done() && lab.state.get() == RunState::Finished>
            <p class="muted hint">"This run is done. Raise Steps to train it further, or press Reset, then Train, to start a new run with the current settings; the finished run stays in the run list."</p>
        </Show>
        <Show when=move || lab.diverged.with(|d| d.is_some()) && lab.rewind_step().is_some()>
            <div class="buttons">
                <button id="rewind" type="button" on:click=move |_| lab.rewind()>
                    {move || format!("Rewind to step {} with a tenth of the learning rate", lab.rewind_step().unwrap_or(0))}
                </button>
            </div>
        </Show>
        <label class="inline" for="train-hidden">
            <input id="train-hidden" type="checkbox" prop:checked=move || lab.train_hidden.get() on:change=move |ev| lab.train_hidden.set(event_target_checked(&ev)) />
            <span>"Keep training while this tab is hidden"</span>
        </label>
    }
}

#[component]
fn Status(lab: Lab) -> impl IntoView {
    let backend_kind = move || lab.backend.get().map(|b| b.kind()).unwrap_or("detecting");
    let backend_label = move || {
        let label = lab.backend.get().map(|b| b.label()).unwrap_or_else(|| "Detecting WebGPU…".into());
        match lab.compute.get() {
            Some(place) if label.starts_with("CPU") => format!("{label} {place}"),
            _ => label,
        }
    };
    let total = move || {
        let steps = lab.settings.with(|s| s.steps.clone());
        if steps.trim().parse::<usize>().is_ok() { steps } else { "?".into() }
    };
    let queued = move || {
        let left = lab.queue.with(|q| q.len());
        if left == 0 {
            None
        } else if lab.state.get() == RunState::Idle {
            // Nothing has trained yet, so the loaded run counts too.
            Some(format!(" · Train runs this preset's {} runs one after another", left + 1))
        } else {
            Some(format!(" · {left} more preset run{} queued", if left == 1 { "" } else { "s" }))
        }
    };
    view! {
        <p class="status">
            <span id="backend" data-backend=backend_kind>{backend_label}</span>
            " · "
            <span id="status" data-state=move || lab.state_name() data-step=move || lab.steps_done.get().to_string() data-queued=move || lab.queue.with(|q| q.len()).to_string()>
                {move || format!("{}: step {} of {}", lab.state_name(), lab.steps_done.get(), total())}
            </span>
            " · "
            <span id="rate">{move || format!("{:.1} steps/s", lab.steps_per_second.get())}</span>
            {queued}
            {move || (lab.state.get() == RunState::Paused && lab.paused_by_hiding.get_value()).then_some(" · paused while the tab is hidden")}
        </p>
        <Show when=move || lab.notice.get().is_some()>
            <p id="notice" class="notice" role="status">{move || lab.notice.get().unwrap_or_default()}</p>
        </Show>
        <Show when=move || lab.error.get().is_some()>
            <p id="error" class="error" role="alert">{move || lab.error.get().unwrap_or_default()}</p>
        </Show>
    }
}

/// Returns the size of the page's WebAssembly memory, in bytes.
fn wasm_memory_bytes() -> f64 {
    use wasm_bindgen::JsCast;
    wasm_bindgen::memory()
        .dyn_into::<js_sys::WebAssembly::Memory>()
        .map(|memory| memory.buffer().unchecked_into::<js_sys::ArrayBuffer>().byte_length() as f64)
        .unwrap_or(0.0)
}

/// Diagnostics line: WebAssembly memory, open GPU devices, runs and the
/// evaluations kept in memory, updated as training publishes.
#[component]
fn Diagnostics(lab: Lab) -> impl IntoView {
    let figures = move || {
        lab.steps_done.track();
        lab.state.track();
        let runs = lab.runs.with(|l| l.len());
        let evals: usize = lab.runs.with(|l| l.iter().map(|r| r.run.evals.len()).sum());
        (wasm_memory_bytes(), crate::gpu::live_devices(), runs, evals)
    };
    view! {
        <details class="diagnostics">
            <summary>"Diagnostics"</summary>
            {move || {
                let (bytes, devices, runs, evals) = figures();
                view! {
                    <p id="diagnostics" data-wasm-bytes=bytes.to_string() data-gpu-devices=devices.to_string() data-runs=runs.to_string() data-evals=evals.to_string()>
                        {format!("WebAssembly memory {:.1} MB · GPU devices open {devices} · runs {runs} · evaluations in memory {evals}", bytes / 1e6)}
                    </p>
                }
            }}
        </details>
    }
}

/// Reads the link, applies it, loads the saved runs and detects the
/// backend. Starts training when the link has `run=1`.
fn start_up(lab: Lab) {
    let (link, problems) = crate::page::link::decode(&browser::query(), &crate::page::presets::IDS);
    lab.frame.set_value(Frame { embed: link.embed, hidden: link.hidden.clone(), backend: (link.backend != BackendRequest::Auto).then_some(link.backend) });
    lab.settings.set(link.settings.clone());
    lab.view.set(link.view);
    let mut notices: Vec<String> = Vec::new();
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        notices.push(format!("Some link parameters were not used: {}", list.join("; ")));
    }
    if let Some(message) = runs::load(lab) {
        notices.push(message);
    }
    if let Some(preset) = link.preset.as_deref().and_then(crate::page::presets::find) {
        let ignored = crate::page::link::settings_named(&browser::query());
        if !ignored.is_empty() {
            notices.push(format!(
                "The preset \"{}\" sets the training settings, so the link's {} {} not used; choose \"None: my own settings\" under Preset comparison to set them yourself.",
                preset.title,
                ignored.join(", "),
                if ignored.len() == 1 { "was" } else { "were" }
            ));
        }
        lab.apply_preset(preset, true);
        // The preset picks the metric unless the link names another one.
        let metric = if link.view.metric == ViewChoices::default().metric { lab.view.get_untracked().metric } else { link.view.metric };
        lab.view.set(ViewChoices { metric, ..link.view });
    }
    let request = link.backend;
    let autorun = link.autorun;
    spawn_local(async move {
        let choice = detect_backend(request).await;
        if let BackendChoice::Cpu(reason) = &choice {
            notices.push(reason.clone());
        }
        if !notices.is_empty() {
            lab.notice.set(Some(notices.join(" ")));
        }
        lab.backend.set(Some(choice));
        if autorun {
            lab.train(false).await;
        }
    });
}

/// Pauses training while the tab is hidden, unless the user chose to keep
/// training, and resumes it when the tab shows again.
fn pause_when_hidden(lab: Lab) {
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::JsCast;
    let Some(document) = web_sys::window().and_then(|w| w.document()) else { return };
    let watched = document.clone();
    let on_change = Closure::<dyn FnMut()>::new(move || {
        if watched.hidden() {
            // A single step ends by itself.
            if lab.state.get_untracked() == RunState::Training && !lab.train_hidden.get_untracked() && !lab.stepping.get_value() {
                lab.paused_by_hiding.set_value(true);
                lab.state.set(RunState::Paused);
            }
        } else if lab.paused_by_hiding.get_value() {
            lab.paused_by_hiding.set_value(false);
            if lab.state.get_untracked() == RunState::Paused {
                spawn_local(lab.train(false));
            }
        }
    });
    let _ = document.add_event_listener_with_callback("visibilitychange", on_change.as_ref().unchecked_ref());
    // The page lives as long as the document, so the listener does too.
    on_change.forget();
}

#[component]
pub fn App() -> impl IntoView {
    let lab = Lab::new();
    start_up(lab);
    pause_when_hidden(lab);
    share::keep_address_current(lab);
    // A file dropped anywhere on the page becomes the data, or, for a
    // run file, joins the run list.
    let on_drop = move |ev: leptos::ev::DragEvent| {
        ev.prevent_default();
        if let Some(file) = ev.data_transfer().and_then(|t| t.files()).and_then(|files| files.get(0)) {
            let name = file.name().to_ascii_lowercase();
            if name.ends_with(".json") {
                runs::import(lab, file);
            } else if name.ends_with(".safetensors") {
                runs::import_model(lab, file);
            } else if !lab.locked("data") {
                controls::load_file(lab, file);
            }
        }
    };
    let embed = lab.frame.with_value(|f| f.embed);
    view! {
        <main class:embed=embed on:dragover=move |ev: leptos::ev::DragEvent| ev.prevent_default() on:drop=on_drop>
            <Show when=move || !embed>
                <header>
                    <h1>"lnlab"</h1>
                    <p class="tagline">"Where LayerNorm goes decides how hidden states grow with depth. Train a small transformer here and watch each layer against its certified bound."</p>
                </header>
            </Show>
            <Status lab=lab />
            <controls::PresetPicker lab=lab />
            <div class="lab-grid">
                <aside class="panel">
                    <controls::Controls lab=lab />
                    <Buttons lab=lab />
                    <controls::ViewOptions lab=lab />
                </aside>
                <section class="charts" aria-label="Charts">
                    <figure::Figure lab=lab kind=ChartKind::Metric id="metric-chart" label="Hidden-state metric by layer, with its certified bound" />
                    <figure::Figure lab=lab kind=ChartKind::Gradient id="gradient-chart" label="Residual-gradient RMS by layer" />
                    <figure::Figure lab=lab kind=ChartKind::Loss id="loss-chart" label="Training and validation loss by step" />
                    <figure::Figure lab=lab kind=ChartKind::LayerStep id="layer-step-chart" label="Metric by layer and step (first shown run)" />
                    <div class="table-scroll"><tables::LayerTable lab=lab /></div>
                    <div class="table-scroll"><tables::LossTable lab=lab /></div>
                </section>
            </div>
            <Show when=move || !embed>
                <runs::RunList lab=lab />
                <share::Share lab=lab />
                <explain::Explanations />
                <Diagnostics lab=lab />
            </Show>
            <Show when=move || embed>
                <p class="muted embed-link"><a href=share::full_page_link(lab) target="_blank" rel="noopener">"Open the full lab"</a></p>
            </Show>
        </main>
    }
}
