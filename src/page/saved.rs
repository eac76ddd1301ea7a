//! The runs the page keeps between visits: a versioned list of run files,
//! stored as one JSON value so that a failed write leaves the previous list
//! whole.

use crate::io::run_file::{RunFile, RunFileError};
use serde::{Deserialize, Serialize};

/// Name of the stored list's schema.
pub const SAVED_SCHEMA: &str = "lnlab-page-runs";
/// Version this page writes and reads.
pub const SAVED_VERSION: u32 = 1;
/// Maximum number of runs the page keeps. The run list rejects more.
pub const MAX_SAVED_RUNS: usize = 50;

/// One run in the page's list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedRun {
    /// Identifier, unique within the list.
    pub id: u64,
    /// Whether the run is drawn on the charts.
    pub shown: bool,
    /// Legend name the user or a preset gave, if any.
    pub label: Option<String>,
    pub run: RunFile,
}

#[derive(Serialize)]
struct ListOut<'a> {
    schema: &'static str,
    version: u32,
    runs: &'a [SavedRun],
}

#[derive(Deserialize)]
struct Header {
    schema: Option<String>,
    version: Option<u32>,
}

#[derive(Deserialize)]
struct ListIn {
    runs: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct EntryIn {
    id: u64,
    shown: bool,
    label: Option<String>,
    run: serde_json::Value,
}

/// A stored list that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SavedError {
    #[error("the saved runs are not valid JSON ({0})")]
    Json(#[from] serde_json::Error),
    #[error("the saved data has schema \"{0}\", not {SAVED_SCHEMA}")]
    WrongSchema(String),
    #[error("the saved runs were written by a newer lnlab (list version {0}; this page reads version {SAVED_VERSION}); open the page's newer version, or delete them")]
    Newer(u32),
}

/// The runs read back, with a sentence for each run that was left out.
#[derive(Debug, Default)]
pub struct Loaded {
    pub runs: Vec<SavedRun>,
    pub skipped: Vec<String>,
}

/// Serialises the list.
pub fn encode(runs: &[SavedRun]) -> String {
    serde_json::to_string(&ListOut { schema: SAVED_SCHEMA, version: SAVED_VERSION, runs }).expect("run lists serialise without failure")
}

/// Reads a stored list. A run that fails its own checks (an older run-file
/// version, a damaged record) is skipped and named in [`Loaded::skipped`]
/// while the others load.
pub fn decode(text: &str) -> Result<Loaded, SavedError> {
    let header: Header = serde_json::from_str(text)?;
    let schema = header.schema.unwrap_or_default();
    if schema != SAVED_SCHEMA {
        return Err(SavedError::WrongSchema(schema));
    }
    let version = header.version.unwrap_or(0);
    if version > SAVED_VERSION {
        return Err(SavedError::Newer(version));
    }
    let list: ListIn = serde_json::from_str(text)?;
    let mut loaded = Loaded::default();
    for (index, value) in list.runs.into_iter().enumerate() {
        match read_entry(value) {
            Ok(entry) if loaded.runs.iter().any(|r| r.id == entry.id) => {
                loaded.skipped.push(format!("saved run {} repeats the id {}", index + 1, entry.id));
            }
            Ok(entry) if loaded.runs.len() < MAX_SAVED_RUNS => loaded.runs.push(entry),
            Ok(_) => loaded.skipped.push(format!("saved run {} is past the limit of {MAX_SAVED_RUNS} runs", index + 1)),
            Err(reason) => loaded.skipped.push(format!("saved run {} could not be read: {reason}", index + 1)),
        }
    }
    Ok(loaded)
}

fn read_entry(value: serde_json::Value) -> Result<SavedRun, String> {
    let entry: EntryIn = serde_json::from_value(value).map_err(|e| e.to_string())?;
    // Go through the run-file reader so a stored run gets the same checks
    // as an imported file.
    let bytes = serde_json::to_vec(&entry.run).map_err(|e| e.to_string())?;
    let run = RunFile::from_json(&bytes).map_err(|e: RunFileError| e.to_string())?;
    Ok(SavedRun { id: entry.id, shown: entry.shown, label: entry.label, run })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DataConfig, ModelConfig, TrainConfig};
    use crate::data::synthetic::Task;
    use crate::data::Dataset;
    use crate::train::Trainer;

    fn small_run() -> RunFile {
        let data = DataConfig::Synthetic { task: Task::Copy };
        let dataset = Dataset::load(&data, 1).unwrap();
        let model = ModelConfig { layers: 1, width: 8, heads: 2, context: 8, ..ModelConfig::standard(dataset.vocab.len()) };
        let train = TrainConfig { batch: 2, steps: 2, eval_every: 1, eval_batches: 1, ..TrainConfig::default() };
        let mut trainer = Trainer::new(model, train, data, dataset, None).unwrap();
        while trainer.step < 2 {
            trainer.step().unwrap();
        }
        trainer.run
    }

    #[test]
    fn list_round_trips() {
        let run = small_run();
        let runs = vec![
            SavedRun { id: 1, shown: true, label: Some("Pre-LN".into()), run: run.clone() },
            SavedRun { id: 7, shown: false, label: None, run },
        ];
        let loaded = decode(&encode(&runs)).unwrap();
        assert!(loaded.skipped.is_empty(), "{:?}", loaded.skipped);
        // Compared as text: unmeasured values are NaN, which never equals itself.
        assert_eq!(encode(&loaded.runs), encode(&runs));
    }

    #[test]
    fn damaged_run_skipped_and_named() {
        let run = small_run();
        let mut text = encode(&[SavedRun { id: 1, shown: true, label: None, run: run.clone() }, SavedRun { id: 2, shown: true, label: None, run }]);
        // Break the second run's schema version only.
        let second = text.rfind("\"schema_version\":1").unwrap();
        text.replace_range(second..second + "\"schema_version\":1".len(), "\"schema_version\":9");
        let loaded = decode(&text).unwrap();
        assert_eq!(loaded.runs.len(), 1);
        assert_eq!(loaded.runs[0].id, 1);
        assert!(loaded.skipped[0].contains("saved run 2"), "{:?}", loaded.skipped);
        assert!(loaded.skipped[0].contains("version 9"), "{:?}", loaded.skipped);
    }

    #[test]
    fn newer_or_foreign_lists_rejected() {
        let newer = format!("{{\"schema\":\"{SAVED_SCHEMA}\",\"version\":2,\"runs\":[]}}");
        assert!(matches!(decode(&newer), Err(SavedError::Newer(2))));
        assert!(matches!(decode("{\"schema\":\"other\",\"runs\":[]}"), Err(SavedError::WrongSchema(_))));
        assert!(matches!(decode("not json"), Err(SavedError::Json(_))));
    }
}
