//! Training data: the character tokenizer, the datasets (Moby-Dick, synthetic
//! tasks, user files), their train/validation split and batch sampling.

pub mod corpus;
pub mod synthetic;
pub mod text_file;
pub mod tokenizer;

pub use text_file::{MAX_FILE_BYTES, MIN_TEXT_CHARS};
pub use tokenizer::Vocab;

use crate::config::DataConfig;
use crate::rng::LabRng;
use rand::Rng;
use std::fmt;
use std::path::PathBuf;

/// Fraction of the tokens, taken from the end of the text, that forms the
/// validation split. The split is contiguous, so no window of one split
/// overlaps the other.
pub const VAL_FRACTION: f64 = 0.1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    Train,
    Validation,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "training",
            Split::Validation => "validation",
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A tokenised text, split into a training and a validation part.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Label for messages and charts: `moby-dick`, a task name or the file path.
    pub name: String,
    pub vocab: Vocab,
    /// The first 90 % of the tokens.
    pub train: Vec<u32>,
    /// The last 10 % of the tokens (see [`VAL_FRACTION`]).
    pub val: Vec<u32>,
}

/// Token windows for one step, row-major `[batch, context]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    pub batch: usize,
    pub context: usize,
    pub inputs: Vec<u32>,
    /// `targets[b][t]` is the token after `inputs[b][t]` in the text, so each
    /// row is its input row shifted left by one token.
    pub targets: Vec<u32>,
}

impl Batch {
    /// Input tokens of sequence `row`. Panics if `row >= self.batch`.
    pub fn input_row(&self, row: usize) -> &[u32] {
        &self.inputs[row * self.context..(row + 1) * self.context]
    }

    /// Target tokens of sequence `row`. Panics if `row >= self.batch`.
    pub fn target_row(&self, row: usize) -> &[u32] {
        &self.targets[row * self.context..(row + 1) * self.context]
    }
}

/// Failure to load, validate or tokenise training data. Each message names
/// the file or corpus and the value at fault, and gives the fix.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(
        "Moby-Dick corpus not found: no non-empty file at {}; run scripts/fetch-corpus.sh to download it, \
         or set {} to the folder that contains {}",
        display_paths(.tried),
        corpus::DATA_DIR_ENV,
        corpus::MOBY_DICK_FILE
    )]
    CorpusMissing { tried: Vec<PathBuf> },

    #[error(
        "data file {path} not found; pass the path of a UTF-8 text file, moby-dick, \
         or a synthetic task ({})",
        task_names()
    )]
    FileNotFound { path: String },

    #[error("failed to read {path}: {source}; check that it is a readable file")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "cannot read {name} in the WebAssembly build because it has no file system; \
         read the bytes in the host page and call Dataset::from_bytes"
    )]
    NoFileSystem { name: String },

    #[error("{name} is {bytes} bytes, over the limit of {max} bytes; use a smaller file or an excerpt")]
    FileTooLarge { name: String, bytes: u64, max: u64 },

    #[error(
        "{name} is not valid UTF-8: invalid byte sequence at byte offset {offset}; \
         convert the file to UTF-8 (for example with iconv)"
    )]
    InvalidUtf8 { name: String, offset: usize },

    #[error("{name} is empty; use a text of at least {min} characters")]
    Empty { name: String, min: usize },

    #[error("{name} has {chars} characters, fewer than the minimum of {min}; use a longer text")]
    TooShort { name: String, chars: usize, min: usize },

    #[error(
        "{name} has {distinct} distinct characters, more than the vocabulary limit of {max}; \
         clean the file of rare symbols (emoji, stray Unicode) or use another text"
    )]
    VocabTooLarge { name: String, distinct: usize, max: usize },

    #[error("{name} has only {distinct} distinct character(s); a language model needs at least 2")]
    VocabTooSmall { name: String, distinct: usize },

    #[error(
        "invalid stored vocabulary: character {ch:?} at index {index} does not come after {previous:?}; \
         the characters must be distinct and in ascending order"
    )]
    InvalidVocab { index: usize, ch: char, previous: char },

    #[error(
        "character {ch:?} at position {position} is not in the vocabulary of {vocab_size} characters; \
         use only characters that occur in the training text"
    )]
    UnknownCharacter { ch: char, position: usize, vocab_size: usize },

    #[error("invalid context 0; use a context of at least 1 token")]
    ZeroContext,

    #[error(
        "context {context} is too long for the {split} split of {name}, which has {len} tokens \
         but needs context + 1; use a context of at most {} or a longer text",
        .len.saturating_sub(1)
    )]
    ContextTooLong { name: String, split: Split, len: usize, context: usize },
}

fn display_paths(paths: &[PathBuf]) -> String {
    let listed: Vec<String> = paths.iter().map(|path| path.display().to_string()).collect();
    listed.join(" or ")
}

fn task_names() -> String {
    let names: Vec<&str> = synthetic::Task::ALL.iter().map(|task| task.name()).collect();
    names.join(", ")
}

impl Dataset {
    /// Tokenises `text` character by character and splits it: the last
    /// [`VAL_FRACTION`] of the tokens (rounded down) is the validation split.
    ///
    /// Checks only what tokenisation needs: the text must be non-empty and have
    /// between 2 and `MAX_VOCAB` distinct characters. User files go through
    /// [`Dataset::from_bytes`], which also enforces [`MIN_TEXT_CHARS`].
    pub fn from_text(name: &str, text: &str) -> Result<Dataset, DataError> {
        if text.is_empty() {
            return Err(DataError::Empty { name: name.to_string(), min: MIN_TEXT_CHARS });
        }

        let vocab = Vocab::from_named_text(name, text)?;
        if vocab.len() < 2 {
            return Err(DataError::VocabTooSmall { name: name.to_string(), distinct: vocab.len() });
        }

        let mut train = vocab.encode(text)?;
        let val_len = (train.len() as f64 * VAL_FRACTION) as usize;
        let val = train.split_off(train.len() - val_len);
        Ok(Dataset { name: name.to_string(), vocab, train, val })
    }

    /// Loads the data that `config` names: the Moby-Dick corpus file, the
    /// synthetic task generated from `seed`, or a user file.
    ///
    /// The WebAssembly build has no file system, so there the corpus and file
    /// configurations fail with [`DataError::NoFileSystem`]. The caller then
    /// reads the bytes itself and calls [`Dataset::from_bytes`].
    pub fn load(config: &DataConfig, seed: u64) -> Result<Dataset, DataError> {
        match config {
            DataConfig::Synthetic { task } => {
                Dataset::from_text(task.name(), &synthetic::generate(*task, seed))
            }
            #[cfg(not(target_arch = "wasm32"))]
            DataConfig::MobyDick => corpus::load_moby_dick(),
            #[cfg(not(target_arch = "wasm32"))]
            DataConfig::File { path } => text_file::load_file(path),
            #[cfg(target_arch = "wasm32")]
            DataConfig::MobyDick => Err(DataError::NoFileSystem {
                name: format!("the Moby-Dick corpus (data/{})", corpus::MOBY_DICK_FILE),
            }),
            #[cfg(target_arch = "wasm32")]
            DataConfig::File { path } => Err(DataError::NoFileSystem { name: path.clone() }),
        }
    }

    /// Validates the raw bytes of a user file named `name` and builds the dataset.
    ///
    /// Rejects files over [`MAX_FILE_BYTES`], invalid UTF-8 (the error gives the
    /// byte offset of the first invalid sequence), empty files, texts shorter
    /// than [`MIN_TEXT_CHARS`] characters and vocabularies over `MAX_VOCAB`.
    /// A leading UTF-8 byte order mark is dropped. Line ends are kept as they
    /// are, so `\r\n` files have `\r` in their vocabulary.
    pub fn from_bytes(name: &str, bytes: &[u8]) -> Result<Dataset, DataError> {
        let text = text_file::decode_text(name, bytes)?;
        Dataset::from_text(name, text)
    }

    /// Returns the tokens of one split.
    pub fn split(&self, split: Split) -> &[u32] {
        match split {
            Split::Train => &self.train,
            Split::Validation => &self.val,
        }
    }

    /// Checks that both splits can fill a window of `context + 1` tokens, as
    /// [`Dataset::sample_batch`] requires. Fails with [`DataError::ZeroContext`]
    /// or [`DataError::ContextTooLong`], which names the split and its length.
    pub fn check_context(&self, context: usize) -> Result<(), DataError> {
        if context == 0 {
            return Err(DataError::ZeroContext);
        }
        for split in [Split::Train, Split::Validation] {
            let len = self.split(split).len();
            if len <= context {
                return Err(DataError::ContextTooLong { name: self.name.clone(), split, len, context });
            }
        }
        Ok(())
    }

    /// Draws `batch` windows of `context + 1` tokens from `split`, each at a
    /// uniformly random offset, and returns their first `context` tokens as
    /// inputs and their last `context` tokens as targets.
    ///
    /// The draws use `u64` ranges, so one seed gives the same batches on
    /// 32-bit WebAssembly and 64-bit native builds.
    ///
    /// # Panics
    ///
    /// Panics if `context` is 0 or the split has `context` tokens or fewer.
    /// Call [`Dataset::check_context`] first on user-chosen values.
    pub fn sample_batch(&self, split: Split, batch: usize, context: usize, rng: &mut LabRng) -> Batch {
        let tokens = self.split(split);
        assert!(
            context > 0 && tokens.len() > context,
            "sample_batch: context {context} does not fit the {split} split of {} tokens; \
             call Dataset::check_context first",
            tokens.len()
        );

        let max_start = (tokens.len() - context - 1) as u64;
        let mut inputs = Vec::with_capacity(batch * context);
        let mut targets = Vec::with_capacity(batch * context);
        for _ in 0..batch {
            let start = rng.random_range(0..=max_start) as usize;
            let window = &tokens[start..start + context + 1];
            inputs.extend_from_slice(&window[..context]);
            targets.extend_from_slice(&window[1..]);
        }
        Batch { batch, context, inputs, targets }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synthetic::Task;

    /// About 3,000 characters of varied English text.
    fn sample_text() -> String {
        "Call me Ishmael. Some years ago, never mind how long precisely, having little money.\n"
            .repeat(36)
    }

    fn sample_dataset() -> Dataset {
        Dataset::from_text("sample", &sample_text()).unwrap()
    }

    /// Finds where `window` starts in `tokens`, if anywhere.
    fn find_window(tokens: &[u32], window: &[u32]) -> Option<usize> {
        tokens.windows(window.len()).position(|candidate| candidate == window)
    }

    #[test]
    fn split_sizes_follow_fraction() {
        let text = sample_text();
        let dataset = Dataset::from_text("sample", &text).unwrap();
        let total = text.chars().count();
        assert_eq!(dataset.train.len() + dataset.val.len(), total);
        assert_eq!(dataset.val.len(), total / 10);
    }

    #[test]
    fn splits_are_consecutive_parts() {
        let text = sample_text();
        let dataset = Dataset::from_text("sample", &text).unwrap();
        let mut joined = dataset.train.clone();
        joined.extend_from_slice(&dataset.val);
        assert_eq!(dataset.vocab.decode(&joined), text);
    }

    #[test]
    fn from_text_rejects_empty() {
        let error = Dataset::from_text("blank", "").unwrap_err();
        assert!(matches!(error, DataError::Empty { .. }), "{error:?}");
        assert!(error.to_string().starts_with("blank is empty"), "{error}");
    }

    #[test]
    fn from_text_rejects_single_character() {
        let error = Dataset::from_text("zeros", &"0".repeat(2000)).unwrap_err();
        assert!(matches!(error, DataError::VocabTooSmall { distinct: 1, .. }), "{error:?}");
        assert!(error.to_string().contains("zeros"), "{error}");
    }

    #[test]
    fn from_text_names_file_in_vocab_error() {
        let text: String = (0..700u32).filter_map(|i| char::from_u32(0x4E00 + i)).collect();
        let error = Dataset::from_text("hanzi.txt", &text.repeat(2)).unwrap_err();
        assert!(matches!(error, DataError::VocabTooLarge { distinct: 700, .. }), "{error:?}");
        assert!(error.to_string().starts_with("hanzi.txt has 700 distinct characters"), "{error}");
    }

    #[test]
    fn from_bytes_accepts_valid_file() {
        let text = sample_text();
        let dataset = Dataset::from_bytes("notes.txt", text.as_bytes()).unwrap();
        assert_eq!(dataset.name, "notes.txt");
        assert_eq!(dataset.vocab, Vocab::from_text(&text).unwrap());
    }

    #[test]
    fn load_synthetic_task() {
        for task in Task::ALL {
            let config = DataConfig::Synthetic { task };
            let dataset = Dataset::load(&config, 9).unwrap();
            assert_eq!(dataset.name, task.name());
            assert!(dataset.val.len() >= synthetic::TARGET_CHARS / 10, "{task}");
            assert_eq!(dataset, Dataset::load(&config, 9).unwrap(), "{task}");
            assert_ne!(dataset.train, Dataset::load(&config, 10).unwrap().train, "{task}");
        }
    }

    #[test]
    fn load_synthetic_vocab() {
        let copy = Dataset::load(&DataConfig::Synthetic { task: Task::Copy }, 1).unwrap();
        assert_eq!(copy.vocab.chars().iter().collect::<String>(), "\n0123456789=");
        let add = Dataset::load(&DataConfig::Synthetic { task: Task::Add }, 1).unwrap();
        assert_eq!(add.vocab.chars().iter().collect::<String>(), "\n+0123456789=");
    }

    #[test]
    fn batch_targets_shift_inputs() {
        let dataset = sample_dataset();
        let mut rng = crate::rng::seeded(3);
        let batch = dataset.sample_batch(Split::Train, 8, 16, &mut rng);
        assert_eq!(batch.batch, 8);
        assert_eq!(batch.context, 16);
        assert_eq!(batch.inputs.len(), 8 * 16);
        assert_eq!(batch.targets.len(), 8 * 16);
        for row in 0..batch.batch {
            let inputs = batch.input_row(row);
            let targets = batch.target_row(row);
            assert_eq!(&inputs[1..], &targets[..15], "row {row}");
        }
    }

    #[test]
    fn batch_windows_inside_split() {
        let dataset = sample_dataset();
        let mut rng = crate::rng::seeded(4);
        for split in [Split::Train, Split::Validation] {
            let tokens = dataset.split(split);
            for _ in 0..50 {
                let batch = dataset.sample_batch(split, 4, 32, &mut rng);
                for row in 0..batch.batch {
                    let mut window = batch.input_row(row).to_vec();
                    window.push(*batch.target_row(row).last().unwrap());
                    assert!(find_window(tokens, &window).is_some(), "{split} row {row}");
                }
            }
        }
    }

    #[test]
    fn batch_reaches_both_ends() {
        // With the context one short of the split, only offsets 0 and 1 exist.
        let dataset = sample_dataset();
        let context = dataset.val.len() - 2;
        let mut rng = crate::rng::seeded(5);
        let batch = dataset.sample_batch(Split::Validation, 64, context, &mut rng);
        let first = &dataset.val[..context];
        let second = &dataset.val[1..context + 1];
        let rows: Vec<&[u32]> = (0..batch.batch).map(|row| batch.input_row(row)).collect();
        assert!(rows.contains(&first));
        assert!(rows.contains(&second));
        assert!(rows.iter().all(|row| *row == first || *row == second));
    }

    #[test]
    fn full_length_context_fits() {
        let dataset = sample_dataset();
        let context = dataset.val.len() - 1;
        dataset.check_context(context).unwrap();
        let mut rng = crate::rng::seeded(6);
        let batch = dataset.sample_batch(Split::Validation, 2, context, &mut rng);
        assert_eq!(batch.input_row(0), &dataset.val[..context]);
        assert_eq!(batch.target_row(1), &dataset.val[1..]);
    }

    #[test]
    fn batches_reproducible_from_seed() {
        let dataset = sample_dataset();
        let draw = |seed: u64| {
            let mut rng = crate::rng::seeded(seed);
            (0..5).map(|_| dataset.sample_batch(Split::Train, 4, 24, &mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(draw(12), draw(12));
        assert_ne!(draw(12), draw(13));
    }

    #[test]
    fn check_context_rejects_long_context() {
        let dataset = sample_dataset();
        let val_len = dataset.val.len();
        let error = dataset.check_context(val_len).unwrap_err();
        assert!(
            matches!(
                error,
                DataError::ContextTooLong { split: Split::Validation, len, context, .. }
                    if len == val_len && context == val_len
            ),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains("validation split of sample"), "{message}");
        assert!(message.contains(&format!("has {val_len} tokens")), "{message}");
        assert!(message.contains(&format!("at most {}", val_len - 1)), "{message}");
    }

    #[test]
    fn check_context_names_train_split() {
        let dataset = sample_dataset();
        let error = dataset.check_context(usize::MAX).unwrap_err();
        assert!(matches!(error, DataError::ContextTooLong { split: Split::Train, .. }), "{error:?}");
        assert!(error.to_string().contains("training split"), "{error}");
    }

    #[test]
    fn check_context_rejects_zero() {
        let error = sample_dataset().check_context(0).unwrap_err();
        assert!(matches!(error, DataError::ZeroContext), "{error:?}");
    }

    #[test]
    fn check_context_accepts_typical() {
        sample_dataset().check_context(64).unwrap();
    }

    #[test]
    #[should_panic(expected = "call Dataset::check_context first")]
    fn sample_batch_panics_on_long_context() {
        let dataset = sample_dataset();
        let mut rng = crate::rng::seeded(1);
        dataset.sample_batch(Split::Validation, 1, dataset.val.len(), &mut rng);
    }
}
