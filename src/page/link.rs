//! The page's link: its whole state as a URL query, so that a link
//! reproduces a run, an instructor can lock controls, and a blog post can
//! embed the page.
//!
//! Decoding never fails. Each parameter that cannot be used becomes a
//! [`LinkProblem`] for the page's notice, and its field keeps the default.

use std::collections::HashMap;
use std::fmt;

use crate::config::{OptimizerKind, Placement};
use crate::data::synthetic::Task;
use crate::page::settings::{DataChoice, Settings};
use crate::plot::{AxisScale, Metric, PlotOptions};

/// Control ids of the settings, which are also their query parameter names.
pub const SETTING_IDS: [&str; 15] = [
    "placement", "layers", "width", "heads", "context", "batch", "dt", "lr", "warmup", "weight-decay", "optimizer", "steps",
    "eval-every", "seed", "data",
];

/// Control ids of the chart choices, which are also their query parameter names.
pub const VIEW_IDS: [&str; 4] = ["metric", "layer-scale", "x-scale", "loss-scale"];

/// Every control id a link can hide: [`SETTING_IDS`], then [`VIEW_IDS`].
pub const CONTROL_IDS: [&str; 19] = concat_ids(SETTING_IDS, VIEW_IDS);

/// Maximum query length, in bytes, that [`decode`] reads. The page's own
/// links are a few hundred bytes.
pub const MAX_QUERY_BYTES: usize = 8 * 1024;

/// Maximum characters of a parameter name or value that a [`LinkProblem`] keeps.
const SHOWN_CHARS: usize = 40;

const fn concat_ids(settings: [&'static str; 15], view: [&'static str; 4]) -> [&'static str; 19] {
    let mut ids = [""; 19];
    let mut i = 0;
    while i < settings.len() {
        ids[i] = settings[i];
        i += 1;
    }
    while i < ids.len() {
        ids[i] = view[i - settings.len()];
        i += 1;
    }
    ids
}

/// Chart choices of the page.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ViewChoices {
    /// Per-layer statistic of the metric chart.
    pub metric: Metric,
    /// Y axis of the per-layer charts.
    pub layer_scale: AxisScale,
    /// Y axis of the loss chart.
    pub loss_scale: AxisScale,
    /// X axis of every line chart.
    pub x_scale: AxisScale,
}

impl Default for ViewChoices {
    /// Returns the chart defaults of [`PlotOptions`]: max token norm on a log
    /// axis, linear loss and x axes.
    fn default() -> Self {
        let options = PlotOptions::default();
        ViewChoices { metric: options.metric, layer_scale: options.layer_scale, loss_scale: options.loss_scale, x_scale: options.x_scale }
    }
}

/// Compute backend that a link requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendRequest {
    /// The page chooses.
    #[default]
    Auto,
    Cpu,
    WebGpu,
}

impl BackendRequest {
    pub const ALL: [BackendRequest; 3] = [BackendRequest::Auto, BackendRequest::Cpu, BackendRequest::WebGpu];

    /// Returns the query value: `auto`, `cpu` or `webgpu`.
    pub fn name(self) -> &'static str {
        match self {
            BackendRequest::Auto => "auto",
            BackendRequest::Cpu => "cpu",
            BackendRequest::WebGpu => "webgpu",
        }
    }

    /// Parses a query value, returning `None` for anything but the three names.
    pub fn parse(text: &str) -> Option<BackendRequest> {
        BackendRequest::ALL.into_iter().find(|backend| backend.name() == text)
    }
}

/// The whole state of the page that a link carries.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LinkState {
    pub settings: Settings,
    pub view: ViewChoices,
    /// Id of a preset, one of the list passed to [`decode`].
    pub preset: Option<String>,
    /// Whether the page shows only the charts and the controls not hidden (`embed=1`).
    pub embed: bool,
    /// Control ids an instructor locks (`hide=lr,layers`), in [`CONTROL_IDS`]
    /// order and without duplicates.
    pub hidden: Vec<&'static str>,
    pub backend: BackendRequest,
    /// Whether training starts when the page loads (`run=1`).
    pub autorun: bool,
}

/// A query parameter that was not used, and why. Both texts are plain text,
/// cut to about 40 characters. `parameter` and `value` are both empty for a
/// problem with the whole query (too long).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkProblem {
    pub parameter: String,
    pub value: String,
    /// Expected value and the value used in its place.
    pub reason: String,
}

impl fmt::Display for LinkProblem {
    /// Writes a sentence for the page's notice, such as
    /// `parameter "lr" = "abc": expected a number; using the default 0.003`.
    /// Quotes, backslashes and control characters in the texts are escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.parameter.is_empty() && self.value.is_empty() {
            return f.write_str(&self.reason);
        }
        write!(f, "parameter {:?} = {:?}: {}", self.parameter, self.value, self.reason)
    }
}

fn problem(parameter: &str, value: &str, reason: String) -> LinkProblem {
    LinkProblem { parameter: shorten(parameter), value: shorten(value), reason }
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(SHOWN_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// Decodes a URL query, with or without its leading `?`, into the page's
/// state, with one problem for each parameter that was unknown, invalid or
/// repeated. Such a parameter leaves its field at the default. Settings that
/// are valid alone but not together (heads must divide width) are reset to
/// their defaults. Only the first [`MAX_QUERY_BYTES`] bytes are read.
/// `presets` lists the preset ids the `preset` parameter may name.
pub fn decode(query: &str, presets: &[&str]) -> (LinkState, Vec<LinkProblem>) {
    let mut state = LinkState::default();
    let mut problems = Vec::new();
    let query = query.strip_prefix('?').unwrap_or(query);
    let query = cap_query(query, &mut problems);

    for (key, values) in group_by_key(query) {
        match values.as_slice() {
            [value] if key == "hide" => state.hidden = parse_hidden(value, &mut problems),
            [value] => {
                if let Err(reason) = set_parameter(&mut state, &key, value, presets) {
                    problems.push(problem(&key, value, reason));
                }
            }
            _ => problems.push(repeated_problem(&key, &values)),
        }
    }

    settle_combination(&mut state.settings, &mut problems);
    (state, problems)
}

/// Returns the training settings that a query names, in query order. A
/// link with a preset takes its settings from the preset, so the page
/// names these as not used.
pub fn settings_named(query: &str) -> Vec<String> {
    let query = query.strip_prefix('?').unwrap_or(query);
    group_by_key(query.as_bytes()).into_iter().map(|(key, _)| key).filter(|key| SETTING_IDS.contains(&key.as_str())).collect()
}

/// Encodes the state as a URL query without the leading `?`.
///
/// Every setting and chart choice is written, so that a link keeps its
/// meaning if the defaults change. Preset, embed, hide, backend and run are
/// written only when they differ from the default. `DataChoice::File` is
/// written as `data=file`, which [`decode`] rejects because the file stays on
/// the user's machine.
pub fn encode(state: &LinkState) -> String {
    let defaults = parameter_values(&LinkState::default());
    let mut pairs = Vec::new();
    for ((key, value), (_, default)) in parameter_values(state).into_iter().zip(defaults) {
        if !CONTROL_IDS.contains(&key) && value == default {
            continue;
        }
        // Each id of a hide list is escaped on its own, so that the commas between them stay readable.
        let encoded: Vec<String> = if key == "hide" { value.split(',').map(percent_encode).collect() } else { vec![percent_encode(&value)] };
        pairs.push(format!("{key}={}", encoded.join(",")));
    }
    pairs.join("&")
}

fn percent_encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Returns the part of `query` that [`decode`] reads: all of it, or past
/// [`MAX_QUERY_BYTES`], the parameters that end before the limit, with a problem.
fn cap_query<'a>(query: &'a str, problems: &mut Vec<LinkProblem>) -> &'a [u8] {
    let bytes = query.as_bytes();
    if bytes.len() <= MAX_QUERY_BYTES {
        return bytes;
    }
    // Cut at the last `&` before the limit, so that no parameter is read in part.
    let end = bytes[..MAX_QUERY_BYTES].iter().rposition(|&byte| byte == b'&').unwrap_or(0);
    let reason = format!(
        "the link's query is {} bytes long, over the limit of {MAX_QUERY_BYTES}, so everything after its first {end} bytes was ignored",
        bytes.len()
    );
    problems.push(LinkProblem { parameter: String::new(), value: String::new(), reason });
    &bytes[..end]
}

/// Splits a query into its parameters, percent-decoded, each with every
/// value given for it, in the order of first appearance.
fn group_by_key(query: &[u8]) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    let mut positions: HashMap<String, usize> = HashMap::new();
    for (key, value) in form_urlencoded::parse(query) {
        // A bare `=` carries nothing, like an empty `&&`.
        if key.is_empty() && value.is_empty() {
            continue;
        }
        match positions.get(key.as_ref()) {
            Some(&position) => groups[position].1.push(value.into_owned()),
            None => {
                positions.insert(key.to_string(), groups.len());
                groups.push((key.into_owned(), vec![value.into_owned()]));
            }
        }
    }
    groups
}

fn repeated_problem(key: &str, values: &[String]) -> LinkProblem {
    let reason = match default_text(key) {
        Some(_) => format!("given {} times, so none is used; {}", values.len(), fallback(key)),
        None => format!("unknown parameter, given {} times; it was ignored", values.len()),
    };
    problem(key, &values.join(", "), reason)
}

/// Sets one parameter other than `hide`, or returns the problem's reason.
fn set_parameter(state: &mut LinkState, key: &str, value: &str, presets: &[&str]) -> Result<(), String> {
    let settings = &mut state.settings;
    let view = &mut state.view;
    // Names match in any case, as a hand-typed link may capitalise them.
    let name = value.to_ascii_lowercase();
    let value = match key {
        "placement" | "optimizer" | "data" | "metric" | "layer-scale" | "loss-scale" | "x-scale" | "preset" | "embed" | "run" | "backend" => name.as_str(),
        _ => value,
    };
    match key {
        "placement" => settings.placement = Placement::parse(value).map_err(|error| rejected(key, &error.allowed))?,
        "optimizer" => settings.optimizer = parse_optimizer(value).ok_or_else(|| rejected(key, "adamw or sgd"))?,
        "data" => settings.data = parse_data(value)?,
        "metric" => view.metric = Metric::parse(value).ok_or_else(|| rejected(key, &metric_names()))?,
        "layer-scale" => view.layer_scale = parse_scale(key, value)?,
        "loss-scale" => view.loss_scale = parse_scale(key, value)?,
        "x-scale" => view.x_scale = parse_scale(key, value)?,
        "preset" => state.preset = Some(parse_preset(value, presets)?),
        "embed" => state.embed = parse_flag(key, value)?,
        "run" => state.autorun = parse_flag(key, value)?,
        "backend" => state.backend = BackendRequest::parse(value).ok_or_else(|| rejected(key, "auto, cpu or webgpu"))?,
        _ => {
            if settings.text_field_mut(key).is_none() {
                return Err("unknown parameter; it was ignored".to_string());
            }
            Settings::check_alone(key, value).map_err(|error| rejected(key, &error.allowed))?;
            if let Some(field) = settings.text_field_mut(key) {
                *field = value.to_string();
            }
        }
    }
    Ok(())
}

/// Returns the reason for an invalid value of a known parameter.
fn rejected(key: &str, expected: &str) -> String {
    format!("expected {expected}; {}", fallback(key))
}

/// Returns what is used in place of a parameter that was not used.
fn fallback(key: &str) -> String {
    match key {
        "preset" => "using no preset".to_string(),
        "hide" => "hiding no control".to_string(),
        _ => format!("using the default {}", default_text(key).unwrap_or_default()),
    }
}

/// Returns the query value of `key` in the default state, or `None` for an unknown key.
fn default_text(key: &str) -> Option<String> {
    parameter_values(&LinkState::default()).into_iter().find(|(name, _)| *name == key).map(|(_, value)| value)
}

/// Returns every parameter of `state` with its query value, in the order
/// that [`encode`] writes them: [`CONTROL_IDS`], then the page's options.
fn parameter_values(state: &LinkState) -> Vec<(&'static str, String)> {
    let settings = &state.settings;
    let view = &state.view;
    let flag = |on: bool| if on { "1" } else { "0" }.to_string();
    vec![
        ("placement", settings.placement.name().to_string()),
        ("layers", settings.layers.clone()),
        ("width", settings.width.clone()),
        ("heads", settings.heads.clone()),
        ("context", settings.context.clone()),
        ("batch", settings.batch.clone()),
        ("dt", settings.dt.clone()),
        ("lr", settings.lr.clone()),
        ("warmup", settings.warmup.clone()),
        ("weight-decay", settings.weight_decay.clone()),
        ("optimizer", optimizer_name(settings.optimizer).to_string()),
        ("steps", settings.steps.clone()),
        ("eval-every", settings.eval_every.clone()),
        ("seed", settings.seed.clone()),
        ("data", settings.data.value().to_string()),
        ("metric", view.metric.name().to_string()),
        ("layer-scale", scale_name(view.layer_scale).to_string()),
        ("x-scale", scale_name(view.x_scale).to_string()),
        ("loss-scale", scale_name(view.loss_scale).to_string()),
        ("preset", state.preset.clone().unwrap_or_default()),
        ("embed", flag(state.embed)),
        ("hide", state.hidden.join(",")),
        ("backend", state.backend.name().to_string()),
        ("run", flag(state.autorun)),
    ]
}

/// Resets settings that are valid alone but break a rule across fields to
/// their defaults, with a problem for each rule broken.
fn settle_combination(settings: &mut Settings, problems: &mut Vec<LinkProblem>) {
    while let Err(error) = settings.check() {
        // The one rule across settings in `ModelConfig::validate`: width must be a multiple of heads.
        let involved: Vec<&'static str> = if error.field == "heads" { vec!["width", "heads"] } else { vec![error.field] };
        let value = settings.text_field_mut(error.field).cloned().unwrap_or_default();

        let mut reset = Vec::new();
        for id in involved {
            let default = default_text(id).unwrap_or_default();
            if let Some(field) = settings.text_field_mut(id).filter(|field| **field != default) {
                *field = default.clone();
                reset.push(format!("{id} {default}"));
            }
        }

        if reset.is_empty() {
            // A rule this function does not know: only the defaults are sure to pass.
            *settings = Settings::default();
            problems.push(problem(error.field, &value, format!("expected {}; using the default for every setting", error.allowed)));
            return;
        }
        problems.push(problem(error.field, &value, format!("expected {}; using the defaults {}", error.allowed, reset.join(" and "))));
    }
}

/// Parses a `hide` list, with a problem for each unknown id.
fn parse_hidden(value: &str, problems: &mut Vec<LinkProblem>) -> Vec<&'static str> {
    let lowered = value.to_ascii_lowercase();
    let requested: Vec<&str> = lowered.split(',').map(str::trim).filter(|id| !id.is_empty()).collect();
    for id in requested.iter().filter(|id| !CONTROL_IDS.contains(id)) {
        let reason = format!("unknown control id, so it stays visible; the ids are {}", CONTROL_IDS.join(", "));
        problems.push(problem("hide", id, reason));
    }
    CONTROL_IDS.into_iter().filter(|id| requested.contains(id)).collect()
}

fn parse_data(value: &str) -> Result<DataChoice, String> {
    match DataChoice::parse(value) {
        Some(DataChoice::File) => Err("a file stays on the user's machine and cannot travel in a link; using moby-dick".to_string()),
        Some(choice) => Ok(choice),
        None => {
            let tasks: Vec<&str> = Task::ALL.iter().map(|task| task.name()).collect();
            Err(rejected("data", &format!("moby-dick or a synthetic task ({})", tasks.join(", "))))
        }
    }
}

fn parse_preset(value: &str, presets: &[&str]) -> Result<String, String> {
    if presets.contains(&value) {
        return Ok(value.to_string());
    }
    let expected = if presets.is_empty() { "no preset, as this page has none".to_string() } else { format!("one of {}", presets.join(", ")) };
    Err(rejected("preset", &expected))
}

fn parse_flag(key: &str, value: &str) -> Result<bool, String> {
    match value {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err(rejected(key, "1, 0, true or false")),
    }
}

fn parse_optimizer(value: &str) -> Option<OptimizerKind> {
    [OptimizerKind::Adamw, OptimizerKind::Sgd].into_iter().find(|kind| optimizer_name(*kind) == value)
}

fn optimizer_name(kind: OptimizerKind) -> &'static str {
    match kind {
        OptimizerKind::Adamw => "adamw",
        OptimizerKind::Sgd => "sgd",
    }
}

fn parse_scale(key: &str, value: &str) -> Result<AxisScale, String> {
    [AxisScale::Linear, AxisScale::Log].into_iter().find(|scale| scale_name(*scale) == value).ok_or_else(|| rejected(key, "linear or log"))
}

fn scale_name(scale: AxisScale) -> &'static str {
    match scale {
        AxisScale::Linear => "linear",
        AxisScale::Log => "log",
    }
}

fn metric_names() -> String {
    let names: Vec<&str> = Metric::ALL.iter().map(|metric| metric.name()).collect();
    format!("one of {}", names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PRESETS: [&str; 3] = ["post-vs-pre", "deep-post", "warmup"];

    fn decode_clean(query: &str) -> LinkState {
        let (state, problems) = decode(query, &PRESETS);
        assert!(problems.is_empty(), "{query}: {problems:?}");
        state
    }

    /// Decodes `query`, which must produce exactly one problem, and returns both.
    fn decode_one_problem(query: &str) -> (LinkState, LinkProblem) {
        let (state, mut problems) = decode(query, &PRESETS);
        assert_eq!(problems.len(), 1, "{query}: {problems:?}");
        (state, problems.remove(0))
    }

    fn custom_state() -> LinkState {
        LinkState {
            settings: Settings {
                placement: Placement::Peri,
                layers: "24".into(),
                width: "48".into(),
                heads: "6".into(),
                context: "16".into(),
                batch: "4".into(),
                dt: "0.5".into(),
                lr: "1e-3".into(),
                warmup: "0".into(),
                weight_decay: "0.1".into(),
                optimizer: OptimizerKind::Sgd,
                steps: "1000".into(),
                eval_every: "25".into(),
                seed: "18446744073709551615".into(),
                data: DataChoice::Task(Task::Reverse),
            },
            view: ViewChoices { metric: Metric::DataVar, layer_scale: AxisScale::Linear, loss_scale: AxisScale::Log, x_scale: AxisScale::Log },
            preset: Some("deep-post".into()),
            embed: true,
            hidden: vec!["layers", "lr", "metric"],
            backend: BackendRequest::WebGpu,
            autorun: true,
        }
    }

    #[test]
    fn control_ids_match_parameter_order() {
        let keys: Vec<&str> = parameter_values(&LinkState::default()).into_iter().map(|(key, _)| key).collect();
        assert_eq!(keys[..CONTROL_IDS.len()], CONTROL_IDS);
        assert_eq!(keys[CONTROL_IDS.len()..], ["preset", "embed", "hide", "backend", "run"]);
    }

    #[test]
    fn view_defaults() {
        let view = ViewChoices::default();
        assert_eq!(view.metric, Metric::MaxTokenNorm);
        assert_eq!(view.layer_scale, AxisScale::Log);
        assert_eq!(view.loss_scale, AxisScale::Linear);
        assert_eq!(view.x_scale, AxisScale::Linear);
    }

    #[test]
    fn empty_query_gives_defaults() {
        assert_eq!(decode_clean(""), LinkState::default());
        assert_eq!(decode_clean("?"), LinkState::default());
    }

    #[test]
    fn defaults_round_trip() {
        let query = encode(&LinkState::default());
        assert_eq!(
            query,
            "placement=pre&layers=8&width=32&heads=4&context=32&batch=8&dt=1&lr=0.003&warmup=20&weight-decay=0\
             &optimizer=adamw&steps=300&eval-every=10&seed=1&data=moby-dick\
             &metric=max_token_norm&layer-scale=log&x-scale=linear&loss-scale=linear"
        );
        assert_eq!(decode_clean(&query), LinkState::default());
    }

    #[test]
    fn custom_state_round_trip() {
        let state = custom_state();
        let query = encode(&state);
        assert!(query.contains("&preset=deep-post&embed=1&hide=layers,lr,metric&backend=webgpu&run=1"), "{query}");
        assert_eq!(decode_clean(&query), state);
        assert_eq!(decode_clean(&format!("?{query}")), state);
    }

    #[test]
    fn text_values_are_percent_encoded() {
        let state = LinkState { settings: Settings { lr: " 0.01".into(), seed: "7 ".into(), ..Settings::default() }, ..LinkState::default() };
        let query = encode(&state);
        assert!(query.contains("lr=+0.01&"), "{query}");
        assert_eq!(decode_clean(&query), state);
    }

    #[test]
    fn decode_accepts_escapes_and_plus() {
        let state = decode_clean("lr=%30.0%31&placement=Peri-LN&seed=+5&hide=lr%2C+layers");
        assert_eq!(state.settings.lr, "0.01");
        assert_eq!(state.settings.placement, Placement::Peri);
        assert_eq!(state.settings.seed, " 5");
        assert_eq!(state.hidden, ["layers", "lr"]);
    }

    #[test]
    fn partial_query_keeps_other_defaults() {
        let state = decode_clean("layers=12&data=add&metric=rms&run=true");
        let expected = LinkState {
            settings: Settings { layers: "12".into(), data: DataChoice::Task(Task::Add), ..Settings::default() },
            view: ViewChoices { metric: Metric::Rms, ..ViewChoices::default() },
            autorun: true,
            ..LinkState::default()
        };
        assert_eq!(state, expected);
    }

    #[test]
    fn invalid_number_falls_back() {
        let (state, problem) = decode_one_problem("lr=abc&layers=12");
        assert_eq!(state.settings.lr, "0.003");
        assert_eq!(state.settings.layers, "12");
        assert_eq!(problem.parameter, "lr");
        assert_eq!(problem.value, "abc");
        assert_eq!(problem.to_string(), "parameter \"lr\" = \"abc\": expected a number in (0, 10]; using the default 0.003");
    }

    #[test]
    fn out_of_range_names_limit() {
        let cases = [
            ("layers=65", "layers", "an integer in [1, 64]"),
            ("layers=0", "layers", "an integer in [1, 64]"),
            ("width=2048", "width", "an integer in [1, 1024]"),
            ("heads=65", "heads", "an integer in [1, 64]"),
            ("batch=1", "batch", "an integer in [2, 512]"),
            ("dt=0", "dt", "a number in (0, 10]"),
            ("lr=11", "lr", "a number in (0, 10]"),
            ("lr=NaN", "lr", "a number in (0, 10]"),
            ("weight-decay=2", "weight-decay", "a number in [0, 1]"),
            ("steps=0", "steps", "an integer in [1, 10000000]"),
            ("eval-every=-1", "eval-every", "an integer in [1, 10000000]"),
            ("seed=-1", "seed", "a whole number from 0"),
        ];
        for (query, parameter, expected) in cases {
            let (state, problem) = decode_one_problem(query);
            assert_eq!(state, LinkState::default(), "{query}");
            assert_eq!(problem.parameter, parameter, "{query}");
            assert!(problem.reason.starts_with(&format!("expected {expected}; using the default ")), "{query}: {}", problem.reason);
        }
    }

    #[test]
    fn invalid_choices_fall_back() {
        let cases = [
            ("placement=middle", "placement", "post, pre, peri, none"),
            ("optimizer=adam", "optimizer", "adamw or sgd"),
            ("data=shakespeare", "data", "copy, reverse, sort, add"),
            ("metric=max", "metric", "max_token_norm"),
            ("layer-scale=ln", "layer-scale", "linear or log"),
            ("x-scale=", "x-scale", "linear or log"),
            ("loss-scale=logarithmic", "loss-scale", "linear or log"),
            ("embed=yes", "embed", "1, 0, true or false"),
            ("run=2", "run", "1, 0, true or false"),
            ("backend=gpu", "backend", "auto, cpu or webgpu"),
            ("preset=none", "preset", "post-vs-pre, deep-post, warmup"),
        ];
        for (query, parameter, expected) in cases {
            let (state, problem) = decode_one_problem(query);
            assert_eq!(state, LinkState::default(), "{query}");
            assert_eq!(problem.parameter, parameter, "{query}");
            assert!(problem.reason.contains(expected), "{query}: {}", problem.reason);
        }
    }

    #[test]
    fn names_match_in_any_case() {
        let (state, problems) = decode("placement=PRE&optimizer=Sgd&layer-scale=LOG&backend=CPU&run=TRUE&hide=LR", &["warmup"]);
        assert_eq!(problems, []);
        assert_eq!(state.settings.placement, Placement::Pre);
        assert_eq!(state.settings.optimizer, OptimizerKind::Sgd);
        assert_eq!(state.view.layer_scale, AxisScale::Log);
        assert_eq!(state.backend, BackendRequest::Cpu);
        assert!(state.autorun);
        assert_eq!(state.hidden, ["lr"]);
    }

    #[test]
    fn settings_named_in_query_order() {
        assert_eq!(settings_named("?preset=pre-vs-peri&lr=0.1&metric=loss&layers=4&hide=lr"), ["lr", "layers"]);
        assert_eq!(settings_named("preset=pre-vs-peri&run=1"), Vec::<String>::new());
        assert_eq!(settings_named("steps=5&steps=6"), ["steps"]);
    }

    #[test]
    fn preset_without_list_rejected() {
        let (state, problems) = decode("preset=warmup", &[]);
        assert_eq!(state.preset, None);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].reason.contains("using no preset"), "{}", problems[0].reason);
    }

    #[test]
    fn file_data_uses_moby_dick() {
        let (state, problem) = decode_one_problem("data=file&layers=4");
        assert_eq!(state.settings.data, DataChoice::MobyDick);
        assert_eq!(state.settings.layers, "4");
        assert_eq!(problem.parameter, "data");
        assert!(problem.reason.contains("cannot travel in a link"), "{}", problem.reason);
    }

    #[test]
    fn unknown_parameter_reported() {
        let (state, problem) = decode_one_problem("layers=4&colour=red");
        assert_eq!(state.settings.layers, "4");
        assert_eq!(problem.parameter, "colour");
        assert_eq!(problem.value, "red");
        assert!(problem.reason.starts_with("unknown parameter"), "{}", problem.reason);
    }

    #[test]
    fn empty_key_reported() {
        let (_, problem) = decode_one_problem("=5");
        assert_eq!(problem.parameter, "");
        assert_eq!(problem.value, "5");
        assert_eq!(decode_clean("&&=&"), LinkState::default());
    }

    #[test]
    fn repeated_parameter_uses_default() {
        let (state, problem) = decode_one_problem("lr=0.01&layers=4&lr=0.02");
        assert_eq!(state.settings.lr, "0.003");
        assert_eq!(state.settings.layers, "4");
        assert_eq!(problem.parameter, "lr");
        assert_eq!(problem.value, "0.01, 0.02");
        assert_eq!(problem.reason, "given 2 times, so none is used; using the default 0.003");

        let (_, problem) = decode_one_problem("x=1&x=2&x=3");
        assert_eq!(problem.reason, "unknown parameter, given 3 times; it was ignored");
    }

    #[test]
    fn heads_not_dividing_width_resets_both() {
        let (state, problem) = decode_one_problem("width=48&heads=5&layers=2");
        assert_eq!(state.settings.width, "32");
        assert_eq!(state.settings.heads, "4");
        assert_eq!(state.settings.layers, "2");
        assert_eq!(problem.parameter, "heads");
        assert_eq!(problem.value, "5");
        assert_eq!(problem.reason, "expected a divisor of width 48; using the defaults width 32 and heads 4");
    }

    #[test]
    fn width_against_default_heads_resets_width() {
        let (state, problem) = decode_one_problem("width=30");
        assert_eq!(state.settings.width, "32");
        assert_eq!(problem.reason, "expected a divisor of width 30; using the defaults width 32");
    }

    #[test]
    fn heads_valid_with_matching_width() {
        let state = decode_clean("width=35&heads=5");
        assert_eq!((state.settings.width.as_str(), state.settings.heads.as_str()), ("35", "5"));
        let state = decode_clean("width=64&heads=64");
        assert_eq!(state.settings.heads, "64");
    }

    #[test]
    fn hide_list_sorted_and_deduplicated() {
        let state = decode_clean("hide=metric,lr,layers,lr,,placement");
        assert_eq!(state.hidden, ["placement", "layers", "lr", "metric"]);
        assert_eq!(decode_clean("hide=").hidden, Vec::<&str>::new());
    }

    #[test]
    fn hide_unknown_id_reported() {
        let (state, problem) = decode_one_problem("hide=lr,colour");
        assert_eq!(state.hidden, ["lr"]);
        assert_eq!(problem.parameter, "hide");
        assert_eq!(problem.value, "colour");
        assert!(problem.reason.contains("placement, layers"), "{}", problem.reason);
    }

    #[test]
    fn invalid_utf8_escapes_decoded_lossily() {
        let (state, problem) = decode_one_problem("lr=%FF%");
        assert_eq!(state.settings.lr, "0.003");
        assert_eq!(problem.value, "\u{FFFD}%");
        let (_, problem) = decode_one_problem("%FF=1");
        assert_eq!(problem.parameter, "\u{FFFD}");
    }

    #[test]
    fn long_values_shortened() {
        let value = "9".repeat(500);
        let (_, problem) = decode_one_problem(&format!("layers={value}"));
        assert_eq!(problem.value.chars().count(), SHOWN_CHARS + 1);
        assert!(problem.value.ends_with('…'));
        let name = "é".repeat(100);
        let (_, problem) = decode_one_problem(&format!("{name}=1"));
        assert_eq!(problem.parameter.chars().count(), SHOWN_CHARS + 1);
    }

    #[test]
    fn display_escapes_control_characters() {
        let (_, problem) = decode_one_problem("lr=%0A%22%3Cb%3E");
        assert_eq!(problem.value, "\n\"<b>");
        assert!(problem.to_string().starts_with(r#"parameter "lr" = "\n\"<b>": "#), "{problem}");
    }

    #[test]
    fn overlong_query_cut_at_parameter() {
        let filler = format!("pad={}", "x".repeat(MAX_QUERY_BYTES));
        let query = format!("layers=3&{filler}&lr=0.5");
        let (state, problems) = decode(&query, &PRESETS);
        assert_eq!(state.settings.layers, "3");
        assert_eq!(state.settings.lr, "0.003");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].parameter, "");
        assert!(problems[0].to_string().starts_with(&format!("the link's query is {} bytes long", query.len())), "{}", problems[0]);

        let (state, problems) = decode(&"a".repeat(1 << 20), &PRESETS);
        assert_eq!(state, LinkState::default());
        assert_eq!(problems.len(), 1, "{problems:?}");
    }

    fn valid_settings() -> impl Strategy<Value = Settings> {
        let model = (
            prop::sample::select(Placement::ALL.to_vec()),
            1usize..=64,
            (1usize..=32, 1usize..=32),
            1usize..=1024,
            1u32..=1000,
        );
        let training = (
            2usize..=512,
            prop::sample::select(vec!["0.003", "1e-4", "10", " 0.5", "2.5E-2"]),
            0usize..=10_000_000,
            0u32..=100,
            prop::bool::ANY,
            1usize..=10_000_000,
            1usize..=10_000_000,
            any::<u64>(),
        );
        let data = prop::sample::select(
            std::iter::once(DataChoice::MobyDick).chain(Task::ALL.map(DataChoice::Task)).collect::<Vec<_>>(),
        );
        (model, training, data).prop_map(
            |((placement, layers, (heads, multiple), context, dt), (batch, lr, warmup, decay, sgd, steps, eval_every, seed), data)| Settings {
                placement,
                layers: layers.to_string(),
                width: (heads * multiple).to_string(),
                heads: heads.to_string(),
                context: context.to_string(),
                batch: batch.to_string(),
                dt: (f64::from(dt) / 100.0).to_string(),
                lr: lr.to_string(),
                warmup: warmup.to_string(),
                weight_decay: (f64::from(decay) / 100.0).to_string(),
                optimizer: if sgd { OptimizerKind::Sgd } else { OptimizerKind::Adamw },
                steps: steps.to_string(),
                eval_every: eval_every.to_string(),
                seed: seed.to_string(),
                data,
            },
        )
    }

    fn valid_states() -> impl Strategy<Value = LinkState> {
        let scale = || prop::sample::select(vec![AxisScale::Linear, AxisScale::Log]);
        let view = (prop::sample::select(Metric::ALL.to_vec()), scale(), scale(), scale())
            .prop_map(|(metric, layer_scale, loss_scale, x_scale)| ViewChoices { metric, layer_scale, loss_scale, x_scale });
        let preset = prop::option::of(prop::sample::select(PRESETS.to_vec()));
        let hidden = prop::collection::vec(prop::bool::ANY, CONTROL_IDS.len())
            .prop_map(|mask| CONTROL_IDS.into_iter().zip(mask).filter(|(_, hide)| *hide).map(|(id, _)| id).collect());
        let backend = prop::sample::select(BackendRequest::ALL.to_vec());
        (valid_settings(), view, preset, prop::bool::ANY, hidden, backend, prop::bool::ANY).prop_map(
            |(settings, view, preset, embed, hidden, backend, autorun)| LinkState {
                settings,
                view,
                preset: preset.map(str::to_string),
                embed,
                hidden,
                backend,
                autorun,
            },
        )
    }

    /// Query parameters from known keys, with values from valid, invalid and odd texts.
    fn known_key_queries() -> impl Strategy<Value = String> {
        let keys: Vec<&str> = parameter_values(&LinkState::default()).into_iter().map(|(key, _)| key).chain(["", "x"]).collect();
        let value = prop_oneof![
            prop::sample::select(vec!["0", "1", "5", "64", "0.5", "1e9", "-1", "NaN", "inf", "pre", "sgd", "add", "file", "log", "true", "webgpu", "warmup", "lr,x,lr"])
                .prop_map(str::to_string),
            "[0-9%+,&=.a-z\\-]{0,12}",
        ];
        prop::collection::vec((prop::sample::select(keys), value), 0..40)
            .prop_map(|pairs| pairs.iter().map(|(key, value)| format!("{key}={value}")).collect::<Vec<_>>().join("&"))
    }

    fn assert_decoded_state_valid(query: &str) {
        let (state, problems) = decode(query, &PRESETS);
        state.settings.check().unwrap();
        assert_ne!(state.settings.data, DataChoice::File);
        for problem in problems {
            assert!(problem.value.chars().count() <= SHOWN_CHARS + 1);
            assert!(problem.parameter.chars().count() <= SHOWN_CHARS + 1);
        }
    }

    proptest! {
        #[test]
        fn decode_any_string(query in any::<String>()) {
            assert_decoded_state_valid(&query);
        }

        #[test]
        fn decode_query_like_string(query in "[?&=%+,a-z0-9FE\\-]{0,300}") {
            assert_decoded_state_valid(&query);
        }

        #[test]
        fn decode_known_keys(query in known_key_queries()) {
            assert_decoded_state_valid(&query);
        }

        #[test]
        fn valid_state_round_trip(state in valid_states()) {
            let (decoded, problems) = decode(&encode(&state), &PRESETS);
            prop_assert!(problems.is_empty(), "{:?}", problems);
            prop_assert_eq!(decoded, state);
        }
    }
}
