//! The page's settings: every control's value as typed, and their
//! conversion to the validated model, training and data configurations.

use crate::config::limits::{MAX_BATCH, MAX_CONTEXT, MAX_DT, MAX_HEADS, MAX_LAYERS, MAX_LR, MAX_STEPS, MAX_VOCAB, MAX_WIDTH};
use crate::config::{ConfigError, DataConfig, ModelConfig, OptimizerKind, Placement, Schedule, TrainConfig};
use crate::data::synthetic::Task;

/// Source of the page's training text.
#[derive(Clone, Debug, PartialEq)]
pub enum DataChoice {
    MobyDick,
    Task(Task),
    /// A text file the user picked or dropped; its bytes are kept by the page.
    File,
}

impl DataChoice {
    pub fn value(&self) -> &'static str {
        match self {
            DataChoice::MobyDick => "moby-dick",
            DataChoice::Task(task) => task.name(),
            DataChoice::File => "file",
        }
    }

    pub fn parse(value: &str) -> Option<DataChoice> {
        match value {
            "moby-dick" => Some(DataChoice::MobyDick),
            "file" => Some(DataChoice::File),
            other => Task::parse(other).map(DataChoice::Task),
        }
    }
}

/// Every control, as the user typed it. Numbers stay text until
/// [`Settings::configs`] validates them, so a half-typed value never
/// resets the field.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub placement: Placement,
    pub layers: String,
    pub width: String,
    pub heads: String,
    pub context: String,
    pub batch: String,
    pub dt: String,
    pub lr: String,
    pub warmup: String,
    pub weight_decay: String,
    pub optimizer: OptimizerKind,
    pub steps: String,
    pub eval_every: String,
    pub seed: String,
    pub data: DataChoice,
}

impl Default for Settings {
    /// A Pre-LN model deep enough to show growth with depth and small
    /// enough to train at interactive speed on a laptop CPU.
    fn default() -> Self {
        Settings {
            placement: Placement::Pre,
            layers: "8".into(),
            width: "32".into(),
            heads: "4".into(),
            context: "32".into(),
            batch: "8".into(),
            dt: "1".into(),
            lr: "0.003".into(),
            warmup: "20".into(),
            weight_decay: "0".into(),
            optimizer: OptimizerKind::Adamw,
            steps: "300".into(),
            eval_every: "10".into(),
            seed: "1".into(),
            data: DataChoice::MobyDick,
        }
    }
}

/// Returns the page label of a setting, by its field name (which is also
/// the control's id and the link's parameter name).
pub fn label(field: &str) -> &str {
    match field {
        "placement" => "LayerNorm placement",
        "layers" => "Layers L",
        "width" => "Width d",
        "heads" => "Heads",
        "context" => "Context T",
        "batch" => "Batch B",
        "dt" => "Residual step Δt",
        "lr" => "Learning rate",
        "warmup" => "Warm-up steps",
        "weight-decay" => "Weight decay",
        "optimizer" => "Optimiser",
        "steps" => "Steps",
        "eval-every" => "Measure every",
        "seed" => "Seed",
        "data" => "Data",
        other => other,
    }
}

/// Returns the values a number field accepts, in words, for messages about
/// text that is not a number at all.
fn allowed(field: &str) -> String {
    match field {
        "layers" => format!("an integer in [1, {MAX_LAYERS}]"),
        "width" => format!("an integer in [1, {MAX_WIDTH}]"),
        "heads" => format!("an integer in [1, {MAX_HEADS}] that divides the width"),
        "context" => format!("an integer in [1, {MAX_CONTEXT}]"),
        "batch" => format!("an integer in [2, {MAX_BATCH}]"),
        "steps" | "eval-every" => format!("an integer in [1, {MAX_STEPS}]"),
        "warmup" => format!("an integer in [0, {MAX_STEPS}]"),
        "dt" => format!("a number in (0, {MAX_DT}]"),
        "lr" => format!("a number in (0, {MAX_LR}]"),
        "weight-decay" => "a number in [0, 1]".into(),
        _ => "a number".into(),
    }
}

/// Describes an invalid setting for the page, by its label.
pub fn describe(error: &ConfigError) -> String {
    format!("{}: {} is not allowed; expected {}.", label(error.field), error.value, error.allowed)
}

fn parse_integer(field: &'static str, text: &str) -> Result<usize, ConfigError> {
    text.trim().parse::<usize>().map_err(|_| ConfigError::new(field, format!("\"{text}\""), allowed(field)))
}

fn parse_number(field: &'static str, text: &str) -> Result<f64, ConfigError> {
    match text.trim().parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(value),
        _ => Err(ConfigError::new(field, format!("\"{text}\""), allowed(field))),
    }
}

impl Settings {
    /// Validate every control and build the training configuration; the
    /// model configuration needs the vocabulary size of the data.
    pub fn train_config(&self) -> Result<TrainConfig, ConfigError> {
        let seed = self.seed.trim().parse::<u64>().map_err(|_| ConfigError::new("seed", format!("\"{}\"", self.seed), "a whole number from 0"))?;
        let config = TrainConfig {
            optimizer: self.optimizer,
            lr: parse_number("lr", &self.lr)?,
            schedule: Schedule::Constant,
            min_lr_ratio: 0.0,
            warmup: parse_integer("warmup", &self.warmup)?,
            weight_decay: parse_number("weight-decay", &self.weight_decay)?,
            decay_ln_gains: false,
            grad_clip: Some(1.0),
            batch: parse_integer("batch", &self.batch)?,
            steps: parse_integer("steps", &self.steps)?,
            eval_every: parse_integer("eval-every", &self.eval_every)?,
            eval_batches: 2,
            seed,
        };
        config.validate()?;
        Ok(config)
    }

    pub fn model_config(&self, vocab: usize) -> Result<ModelConfig, ConfigError> {
        let config = ModelConfig {
            placement: self.placement,
            layers: parse_integer("layers", &self.layers)?,
            width: parse_integer("width", &self.width)?,
            heads: parse_integer("heads", &self.heads)?,
            context: parse_integer("context", &self.context)?,
            vocab,
            dt: parse_number("dt", &self.dt)?,
            ..ModelConfig::standard(vocab)
        };
        config.validate()?;
        Ok(config)
    }

    pub fn data_config(&self, file_name: Option<&str>) -> DataConfig {
        match &self.data {
            DataChoice::MobyDick => DataConfig::MobyDick,
            DataChoice::Task(task) => DataConfig::Synthetic { task: *task },
            DataChoice::File => DataConfig::File { path: file_name.unwrap_or("file").to_string() },
        }
    }

    /// Checks every setting the way a run will, with the largest
    /// vocabulary, since the data is not loaded yet.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.train_config()?;
        self.model_config(MAX_VOCAB)?;
        Ok(())
    }

    /// Returns an error for each invalid text setting, in control order,
    /// each checked alone. When every one is valid alone, returns the error
    /// of the rule across settings (heads must divide width), if broken.
    pub fn errors(&self) -> Vec<ConfigError> {
        let mut copy = self.clone();
        let errors: Vec<ConfigError> = TEXT_IDS
            .iter()
            .filter_map(|id| {
                let value = copy.text_field_mut(id)?.clone();
                Settings::check_alone(id, &value).err()
            })
            .collect();
        if errors.is_empty() {
            self.check().err().into_iter().collect()
        } else {
            errors
        }
    }

    /// Checks one text setting with every other setting at a value that
    /// cannot conflict with it.
    pub fn check_alone(id: &str, value: &str) -> Result<(), ConfigError> {
        // One head divides every width.
        let mut probe = Settings { heads: "1".to_string(), ..Settings::default() };
        if let Some(field) = probe.text_field_mut(id) {
            *field = value.to_string();
        }
        let result = probe.check();
        if id == "heads" && result.is_err() {
            // Some valid width is a multiple of the heads exactly when a width equal to them is valid.
            probe.width = value.to_string();
            if probe.check().is_ok() {
                return Ok(());
            }
        }
        result
    }

    /// Returns the setting that the page keeps as typed text, by control id.
    pub fn text_field_mut(&mut self, id: &str) -> Option<&mut String> {
        let field = match id {
            "layers" => &mut self.layers,
            "width" => &mut self.width,
            "heads" => &mut self.heads,
            "context" => &mut self.context,
            "batch" => &mut self.batch,
            "dt" => &mut self.dt,
            "lr" => &mut self.lr,
            "warmup" => &mut self.warmup,
            "weight-decay" => &mut self.weight_decay,
            "steps" => &mut self.steps,
            "eval-every" => &mut self.eval_every,
            "seed" => &mut self.seed,
            _ => return None,
        };
        Some(field)
    }

    /// Returns whether `run` was trained with these settings on data that
    /// a link can name (not a user's file).
    pub fn describes(&self, run: &crate::io::run_file::RunFile) -> bool {
        let model = self.model_config(run.model.vocab);
        let train = self.train_config();
        matches!((model, train), (Ok(model), Ok(train)) if model == run.model && train == run.train && self.data_config(None) == run.data)
    }

    /// Whether switching from `self` to `other` needs a new model. Rates,
    /// schedule lengths and evaluation interval apply to a run in progress.
    pub fn needs_new_run(&self, other: &Settings) -> bool {
        let model_side = |s: &Settings| {
            (s.placement, s.layers.clone(), s.width.clone(), s.heads.clone(), s.context.clone(), s.batch.clone(), s.dt.clone(), s.optimizer, s.seed.clone(), s.data.clone())
        };
        model_side(self) != model_side(other)
    }
}

/// Control ids of the settings kept as typed text, in the controls' order.
const TEXT_IDS: [&str; 12] = ["layers", "width", "heads", "context", "batch", "dt", "lr", "warmup", "weight-decay", "steps", "eval-every", "seed"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_every_invalid_field() {
        let settings = Settings { lr: "20".into(), steps: "-3".into(), ..Settings::default() };
        let fields: Vec<&str> = settings.errors().iter().map(|e| e.field).collect();
        assert_eq!(fields, ["lr", "steps"]);
    }

    #[test]
    fn errors_name_heads_that_do_not_divide_width() {
        let settings = Settings { width: "32".into(), heads: "3".into(), ..Settings::default() };
        let errors = settings.errors();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "heads");
        assert!(Settings::default().errors().is_empty());
    }

    #[test]
    fn defaults_validate() {
        let settings = Settings::default();
        settings.train_config().unwrap();
        settings.model_config(65).unwrap();
    }

    #[test]
    fn half_typed_number_names_field() {
        let settings = Settings { lr: "0.0.1".into(), ..Settings::default() };
        let error = settings.train_config().unwrap_err();
        assert_eq!(error.field, "lr");
        assert!(error.to_string().contains("\"0.0.1\""), "{error}");
    }

    #[test]
    fn describes_own_run_only() {
        let settings = Settings { data: DataChoice::Task(Task::Copy), layers: "1".into(), width: "8".into(), heads: "2".into(), context: "8".into(), batch: "2".into(), steps: "1".into(), ..Settings::default() };
        let dataset = crate::data::Dataset::load(&settings.data_config(None), 1).unwrap();
        let model = settings.model_config(dataset.vocab.len()).unwrap();
        let trainer = crate::train::Trainer::new(model, settings.train_config().unwrap(), settings.data_config(None), dataset, None).unwrap();
        assert!(settings.describes(&trainer.run));
        let other_rate = Settings { lr: "0.01".into(), ..settings.clone() };
        assert!(!other_rate.describes(&trainer.run));
        let other_data = Settings { data: DataChoice::MobyDick, ..settings };
        assert!(!other_data.describes(&trainer.run));
    }

    #[test]
    fn negative_count_names_label_and_range() {
        let settings = Settings { steps: "-3".into(), ..Settings::default() };
        let error = settings.check().unwrap_err();
        assert_eq!(error.field, "steps");
        let message = describe(&error);
        assert!(message.starts_with("Steps: \"-3\""), "{message}");
        assert!(message.contains("in [1, 10000000]"), "{message}");
    }

    #[test]
    fn out_of_range_rate_uses_label() {
        let settings = Settings { lr: "20".into(), ..Settings::default() };
        let message = describe(&settings.check().unwrap_err());
        assert!(message.starts_with("Learning rate: 20"), "{message}");
        assert!(message.contains("(0, 10]"), "{message}");
    }

    #[test]
    fn learning_rate_change_keeps_run() {
        let before = Settings::default();
        let after = Settings { lr: "0.01".into(), steps: "500".into(), ..before.clone() };
        assert!(!before.needs_new_run(&after));
        let deeper = Settings { layers: "12".into(), ..before.clone() };
        assert!(before.needs_new_run(&deeper));
    }
}
