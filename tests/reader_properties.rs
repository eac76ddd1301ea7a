//! Property tests of the readers of untrusted input: run files, safetensors
//! checkpoints, the page's saved-run list and user text files.
//!
//! Each reader gets arbitrary bytes and mutations of a valid file. It must
//! never panic, must reject with a message that names the file part at
//! fault, and must return only self-consistent values when it accepts. Sizes
//! that a header merely claims (a header length, a tensor shape, a model
//! width) must be rejected before anything of that size is allocated, which
//! the modest case counts and the absence of an out-of-memory abort check.

use lnlab::config::{DataConfig, ModelConfig, Placement, TrainConfig};
use lnlab::data::synthetic::Task;
use lnlab::data::{Dataset, Vocab, MIN_TEXT_CHARS, VAL_FRACTION};
use lnlab::io::checkpoint::{self, Checkpoint, CheckpointError, MAX_HEADER_BYTES};
use lnlab::io::run_file::{RunFile, RunFileError};
use lnlab::model::Layout;
use lnlab::page::saved::{self, SavedError, SavedRun, MAX_SAVED_RUNS};
use lnlab::train::Trainer;
use proptest::prelude::*;
use safetensors::tensor::{Dtype, TensorView};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::OnceLock;

const TEXT_NAME: &str = "notes.txt";

/// Valid inputs of every reader, built once from a two-step training run.
struct ValidFiles {
    run_json: String,
    checkpoint: Vec<u8>,
    saved_list: String,
    text: String,
}

fn valid_files() -> &'static ValidFiles {
    static FILES: OnceLock<ValidFiles> = OnceLock::new();
    FILES.get_or_init(build_valid_files)
}

fn build_valid_files() -> ValidFiles {
    let data = DataConfig::Synthetic { task: Task::Copy };
    let dataset = Dataset::load(&data, 1).unwrap();
    let vocab: String = dataset.vocab.chars().iter().collect();
    let model = ModelConfig {
        placement: Placement::Peri,
        layers: 2,
        width: 8,
        heads: 2,
        context: 8,
        ..ModelConfig::standard(dataset.vocab.len())
    };
    let train = TrainConfig { batch: 2, steps: 2, eval_every: 1, eval_batches: 1, ..TrainConfig::default() };
    let mut trainer = Trainer::new(model, train, data, dataset, None).unwrap();
    while trainer.step < 2 {
        trainer.step().unwrap();
    }

    let run = trainer.run.clone();
    let saved_runs = [
        SavedRun { id: 1, shown: true, label: Some("Peri-LN".into()), run: run.clone() },
        SavedRun { id: 2, shown: false, label: None, run: run.clone() },
    ];
    ValidFiles {
        run_json: run.to_json(),
        checkpoint: checkpoint::save(trainer.model(), Some(&vocab)),
        saved_list: saved::encode(&saved_runs),
        text: sample_text(),
    }
}

/// About 1,500 characters with one-, two-, three- and four-byte UTF-8
/// characters, so that cuts and flips can split a character.
fn sample_text() -> String {
    "Call me Ishmael — the whale 🐋 swam; café.\n".repeat(36)
}

// ---------------------------------------------------------------------------
// Mutations
// ---------------------------------------------------------------------------

/// One edit of a byte string. Positions are taken modulo the length.
#[derive(Clone, Debug)]
enum ByteEdit {
    Truncate(usize),
    Flip { at: usize, mask: u8 },
    Insert { at: usize, bytes: Vec<u8> },
    Delete { at: usize, len: usize },
}

fn byte_edit() -> impl Strategy<Value = ByteEdit> {
    prop_oneof![
        any::<usize>().prop_map(ByteEdit::Truncate),
        (any::<usize>(), 1..=255u8).prop_map(|(at, mask)| ByteEdit::Flip { at, mask }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(at, bytes)| ByteEdit::Insert { at, bytes }),
        (any::<usize>(), 1..64usize).prop_map(|(at, len)| ByteEdit::Delete { at, len }),
    ]
}

fn apply_byte_edits(original: &[u8], edits: &[ByteEdit]) -> Vec<u8> {
    let mut bytes = original.to_vec();
    for edit in edits {
        let len = bytes.len();
        match edit {
            ByteEdit::Truncate(at) => bytes.truncate(at % (len + 1)),
            ByteEdit::Flip { at, mask } if len > 0 => bytes[at % len] ^= mask,
            ByteEdit::Flip { .. } => {}
            ByteEdit::Insert { at, bytes: inserted } => {
                let at = at % (len + 1);
                bytes.splice(at..at, inserted.iter().copied());
            }
            ByteEdit::Delete { at, len: count } => {
                let at = at % (len + 1);
                let end = (at + count).min(len);
                bytes.drain(at..end);
            }
        }
    }
    bytes
}

/// Replacements for a JSON number: huge, negative, fractional, out of the
/// f64 range, and the non-numbers a careless writer might emit.
const NUMBER_REPLACEMENTS: [&str; 18] = [
    "0",
    "-1",
    "-9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "4294967296",
    "9007199254740993",
    "1e308",
    "-1e308",
    "1e400",
    "1.5",
    "-0.0",
    "null",
    "\"NaN\"",
    "NaN",
    "Infinity",
    "true",
    "[]",
];

/// Byte ranges of the numbers in a JSON text, outside strings.
fn json_number_spans(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut spans = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            i += 1;
        } else if byte == b'"' {
            in_string = true;
            i += 1;
        } else if byte == b'-' || byte.is_ascii_digit() {
            let start = i;
            while i < bytes.len() && matches!(bytes[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') {
                i += 1;
            }
            spans.push((start, i));
        } else {
            i += 1;
        }
    }
    spans
}

/// Replaces the `index`-th number of `text` (modulo their count).
fn replace_json_number(text: &str, index: usize, replacement: &str) -> String {
    let spans = json_number_spans(text);
    if spans.is_empty() {
        return text.to_string();
    }
    let (start, end) = spans[index % spans.len()];
    format!("{}{replacement}{}", &text[..start], &text[end..])
}

fn number_edit() -> impl Strategy<Value = (usize, &'static str)> {
    (any::<usize>(), prop::sample::select(&NUMBER_REPLACEMENTS[..]))
}

/// Sizes to write into header length fields and tensor shapes.
fn claimed_size() -> impl Strategy<Value = u64> {
    prop_oneof![
        0..64u64,
        Just(u64::MAX),
        Just(u64::MAX / 2),
        Just(1 << 32),
        Just(1 << 40),
        Just(MAX_HEADER_BYTES as u64),
        Just(MAX_HEADER_BYTES as u64 + 1),
        any::<u64>(),
    ]
}

// ---------------------------------------------------------------------------
// Safetensors header edits
// ---------------------------------------------------------------------------

/// A checkpoint split into its parsed JSON header and its data section.
struct SplitCheckpoint {
    header: Map<String, Value>,
    data: Vec<u8>,
}

fn split_checkpoint(bytes: &[u8]) -> SplitCheckpoint {
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Map<String, Value> = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    SplitCheckpoint { header, data: bytes[8 + header_len..].to_vec() }
}

fn join_checkpoint(header: &Map<String, Value>, data: &[u8]) -> Vec<u8> {
    let header_bytes = serde_json::to_vec(header).unwrap();
    let mut bytes = (header_bytes.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&header_bytes);
    bytes.extend_from_slice(data);
    bytes
}

/// One edit of a safetensors header. Tensor indices are taken modulo the
/// number of tensors, in name order.
#[derive(Clone, Debug)]
enum HeaderEdit {
    Shape { tensor: usize, shape: Vec<u64> },
    Dtype { tensor: usize, dtype: &'static str },
    Offsets { tensor: usize, start: u64, end: u64 },
    /// Gives `tensor` the data offsets of `other`, so that two tensors overlap.
    OverlapOffsets { tensor: usize, other: usize },
    Remove { tensor: usize },
    /// Stores `tensor` a second time, with the Hugging Face "transformer."
    /// prefix and its own copy of the data with every byte XOR `mask`.
    DuplicateWithPrefix { tensor: usize, mask: u8 },
    Rename { tensor: usize, name: String },
    ConfigNumber { index: usize, replacement: &'static str },
    ConfigText(String),
    Vocab(String),
    RemoveMetadata(&'static str),
}

/// Size settings of a model configuration.
const CONFIG_SIZE_FIELDS: [&str; 5] = ["layers", "width", "heads", "context", "vocab"];

const DTYPES: [&str; 12] = ["F32", "F64", "F16", "BF16", "I64", "I32", "U8", "BOOL", "F8_E4M3", "F4", "f32", "COMPLEX"];

fn header_edit() -> impl Strategy<Value = HeaderEdit> {
    let dimension = prop_oneof![0..40u64, claimed_size()];
    prop_oneof![
        (any::<usize>(), prop::collection::vec(dimension, 0..4)).prop_map(|(tensor, shape)| HeaderEdit::Shape { tensor, shape }),
        (any::<usize>(), prop::sample::select(&DTYPES[..])).prop_map(|(tensor, dtype)| HeaderEdit::Dtype { tensor, dtype }),
        (any::<usize>(), claimed_size(), claimed_size()).prop_map(|(tensor, start, end)| HeaderEdit::Offsets { tensor, start, end }),
        (any::<usize>(), any::<usize>()).prop_map(|(tensor, other)| HeaderEdit::OverlapOffsets { tensor, other }),
        any::<usize>().prop_map(|tensor| HeaderEdit::Remove { tensor }),
        (any::<usize>(), any::<u8>()).prop_map(|(tensor, mask)| HeaderEdit::DuplicateWithPrefix { tensor, mask }),
        (any::<usize>(), "[a-z_.0-9]{0,20}").prop_map(|(tensor, name)| HeaderEdit::Rename { tensor, name }),
        number_edit().prop_map(|(index, replacement)| HeaderEdit::ConfigNumber { index, replacement }),
        "[{}\":,a-z0-9_ .\\-]{0,80}".prop_map(HeaderEdit::ConfigText),
        "[\n=0-9a-zé🐋]{0,20}".prop_map(HeaderEdit::Vocab),
        prop::sample::select(vec![checkpoint::CONFIG_KEY, checkpoint::VOCAB_KEY]).prop_map(HeaderEdit::RemoveMetadata),
    ]
}

fn tensor_names(header: &Map<String, Value>) -> Vec<String> {
    header.keys().filter(|name| *name != "__metadata__").cloned().collect()
}

fn metadata_mut(header: &mut Map<String, Value>) -> &mut Map<String, Value> {
    header.entry("__metadata__").or_insert_with(|| Value::Object(Map::new())).as_object_mut().unwrap()
}

fn apply_header_edit(header: &mut Map<String, Value>, data: &mut Vec<u8>, edit: &HeaderEdit) {
    let names = tensor_names(header);
    let pick = |index: usize| names.get(index % names.len().max(1)).cloned();
    match edit {
        HeaderEdit::Shape { tensor, shape } => {
            if let Some(name) = pick(*tensor) {
                header[&name]["shape"] = serde_json::json!(shape);
            }
        }
        HeaderEdit::Dtype { tensor, dtype } => {
            if let Some(name) = pick(*tensor) {
                header[&name]["dtype"] = Value::from(*dtype);
            }
        }
        HeaderEdit::Offsets { tensor, start, end } => {
            if let Some(name) = pick(*tensor) {
                header[&name]["data_offsets"] = serde_json::json!([start, end]);
            }
        }
        HeaderEdit::OverlapOffsets { tensor, other } => {
            if let (Some(name), Some(other)) = (pick(*tensor), pick(*other)) {
                let offsets = header[&other]["data_offsets"].clone();
                header[&name]["data_offsets"] = offsets;
            }
        }
        HeaderEdit::Remove { tensor } => {
            if let Some(name) = pick(*tensor) {
                header.remove(&name);
            }
        }
        HeaderEdit::DuplicateWithPrefix { tensor, mask } => {
            let Some(name) = pick(*tensor) else { return };
            let mut entry = header[&name].clone();
            // Earlier edits may have left offsets that do not fit the data.
            let offsets = (entry["data_offsets"][0].as_u64(), entry["data_offsets"][1].as_u64());
            let (Some(start), Some(end)) = offsets else { return };
            let (start, end) = (start as usize, end as usize);
            if start > end || end > data.len() {
                return;
            }
            let copy: Vec<u8> = data[start..end].iter().map(|byte| byte ^ mask).collect();
            entry["data_offsets"] = serde_json::json!([data.len(), data.len() + copy.len()]);
            data.extend_from_slice(&copy);
            header.insert(format!("transformer.{name}"), entry);
        }
        HeaderEdit::Rename { tensor, name: new_name } => {
            if let Some(name) = pick(*tensor) {
                let entry = header.remove(&name).unwrap();
                header.insert(new_name.clone(), entry);
            }
        }
        HeaderEdit::ConfigNumber { index, replacement } => {
            let metadata = metadata_mut(header);
            if let Some(Value::String(config)) = metadata.get(checkpoint::CONFIG_KEY) {
                let edited = replace_json_number(config, *index, replacement);
                metadata.insert(checkpoint::CONFIG_KEY.to_string(), Value::String(edited));
            }
        }
        HeaderEdit::ConfigText(text) => {
            metadata_mut(header).insert(checkpoint::CONFIG_KEY.to_string(), Value::String(text.clone()));
        }
        HeaderEdit::Vocab(vocab) => {
            metadata_mut(header).insert(checkpoint::VOCAB_KEY.to_string(), Value::String(vocab.clone()));
        }
        HeaderEdit::RemoveMetadata(key) => {
            metadata_mut(header).remove(*key);
        }
    }
}

// ---------------------------------------------------------------------------
// Checks of results
// ---------------------------------------------------------------------------

/// Asserts that an error message is a plain sentence that starts with one of
/// `subjects`, the words that name the file part at fault.
fn assert_plain_message(message: &str, subjects: &[&str]) {
    let trimmed = message.trim();
    assert!(trimmed.len() >= 20, "message too short to say what is wrong: {message:?}");
    assert!(!trimmed.eq_ignore_ascii_case("error"), "message says only \"error\"");
    assert!(!trimmed.ends_with(':'), "message ends before its detail: {message:?}");
    assert!(subjects.iter().any(|subject| trimmed.starts_with(subject)), "message {message:?} does not start with one of {subjects:?}");
}

/// Asserts the consistency checks that `RunFile::from_json` promises.
fn assert_run_consistent(run: &RunFile) {
    run.model.validate().unwrap();
    let layers = run.model.layers;
    for eval in &run.evals {
        assert_eq!(eval.layers.len(), layers + 1, "boundaries at step {}", eval.step);
        assert_eq!(eval.half_steps.len(), 2 * layers + 1, "half-steps at step {}", eval.step);
        assert_eq!(eval.blocks.len(), layers, "blocks at step {}", eval.step);
    }
    let batch = &run.eval_batch;
    assert_eq!(batch.batch.checked_mul(batch.context), Some(batch.tokens.len()), "evaluation batch tokens");
    assert_eq!(batch.targets.len(), batch.tokens.len(), "evaluation batch targets");

    // What the reader accepted, it must read again after writing it.
    let rewritten = run.to_json();
    let reread = RunFile::from_json(rewritten.as_bytes()).unwrap();
    assert_eq!(reread.to_json(), rewritten);
}

fn check_run_result(result: Result<RunFile, RunFileError>) {
    match result {
        Ok(run) => assert_run_consistent(&run),
        Err(error) => assert_plain_message(&error.to_string(), &["run file", "file has schema"]),
    }
}

/// Asserts that a loaded checkpoint's tensors have the sizes its
/// configuration implies and that its vocabulary fits that configuration.
fn assert_checkpoint_consistent(checkpoint: &Checkpoint) {
    let config = &checkpoint.model.config;
    config.validate().unwrap();
    let layout = Layout::new(config);
    assert_eq!(checkpoint.model.params.len(), layout.total, "parameter count");
    for (id, spec) in layout.tensors.iter().enumerate() {
        let expected: usize = spec.shape.iter().product();
        assert_eq!(checkpoint.model.tensor(id).len(), expected, "size of {}", spec.name);
    }
    if let Some(vocab) = &checkpoint.vocab {
        let vocab = Vocab::from_chars(vocab.chars().collect()).unwrap();
        assert_eq!(vocab.len(), config.vocab, "stored vocabulary size");
    }
}

fn check_checkpoint_result(result: Result<Checkpoint, CheckpointError>) {
    match result {
        Ok(checkpoint) => assert_checkpoint_consistent(&checkpoint),
        Err(error) => assert_plain_message(&error.to_string(), &["checkpoint", "tensor"]),
    }
}

fn check_saved_result(result: Result<saved::Loaded, SavedError>) {
    let loaded = match result {
        Ok(loaded) => loaded,
        Err(error) => return assert_plain_message(&error.to_string(), &["the saved"]),
    };
    assert!(loaded.runs.len() <= MAX_SAVED_RUNS, "{} runs kept", loaded.runs.len());
    for (index, saved_run) in loaded.runs.iter().enumerate() {
        assert!(loaded.runs[..index].iter().all(|other| other.id != saved_run.id), "id {} repeated", saved_run.id);
        assert_run_consistent(&saved_run.run);
    }
    for reason in &loaded.skipped {
        assert_plain_message(reason, &["saved run "]);
    }
}

/// Asserts that a dataset is the tokenised text the file held.
fn assert_dataset_consistent(dataset: &Dataset, bytes: &[u8]) {
    let text = std::str::from_utf8(bytes).unwrap();
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let total = text.chars().count();
    assert!(total >= MIN_TEXT_CHARS, "{total} characters accepted");
    assert!((2..=lnlab::config::limits::MAX_VOCAB).contains(&dataset.vocab.len()), "vocabulary of {}", dataset.vocab.len());
    assert_eq!(dataset.train.len() + dataset.val.len(), total, "token count");
    assert_eq!(dataset.val.len(), (total as f64 * VAL_FRACTION) as usize, "validation split size");
    let vocab_size = dataset.vocab.len() as u32;
    assert!(dataset.train.iter().chain(&dataset.val).all(|&id| id < vocab_size), "token id outside the vocabulary");
    let mut tokens = dataset.train.clone();
    tokens.extend_from_slice(&dataset.val);
    assert_eq!(dataset.vocab.decode(&tokens), text);
}

fn check_dataset_bytes(bytes: &[u8]) {
    match Dataset::from_bytes(TEXT_NAME, bytes) {
        Ok(dataset) => assert_dataset_consistent(&dataset, bytes),
        Err(error) => assert_plain_message(&error.to_string(), &[TEXT_NAME]),
    }
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

fn any_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..4096)
}

fn byte_edits() -> impl Strategy<Value = Vec<ByteEdit>> {
    prop::collection::vec(byte_edit(), 1..5)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn run_file_any_bytes(bytes in any_bytes()) {
        check_run_result(RunFile::from_json(&bytes));
    }

    #[test]
    fn run_file_json_like_text(text in "[{}\\[\\]\":, a-z_0-9.\\-]{0,400}") {
        check_run_result(RunFile::from_json(text.as_bytes()));
    }

    #[test]
    fn run_file_byte_edits(edits in byte_edits()) {
        let bytes = apply_byte_edits(valid_files().run_json.as_bytes(), &edits);
        check_run_result(RunFile::from_json(&bytes));
    }

    #[test]
    fn run_file_number_edits(edits in prop::collection::vec(number_edit(), 1..4)) {
        let mut text = valid_files().run_json.clone();
        for (index, replacement) in &edits {
            text = replace_json_number(&text, *index, replacement);
        }
        check_run_result(RunFile::from_json(text.as_bytes()));
    }

    #[test]
    fn checkpoint_any_bytes(bytes in any_bytes()) {
        check_checkpoint_result(checkpoint::load(&bytes, None));
        check_checkpoint_result(checkpoint::load(&bytes, Some(2)));
    }

    #[test]
    fn checkpoint_claimed_header_length(length in claimed_size(), header in "[{}\":,a-z0-9_\\[\\] ]{0,200}") {
        let mut bytes = length.to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        check_checkpoint_result(checkpoint::load(&bytes, Some(2)));
    }

    #[test]
    fn checkpoint_length_field_edits(length in claimed_size()) {
        let mut bytes = valid_files().checkpoint.clone();
        bytes[..8].copy_from_slice(&length.to_le_bytes());
        check_checkpoint_result(checkpoint::load(&bytes, None));
    }

    #[test]
    fn checkpoint_byte_edits(edits in byte_edits()) {
        let bytes = apply_byte_edits(&valid_files().checkpoint, &edits);
        check_checkpoint_result(checkpoint::load(&bytes, None));
    }

    #[test]
    fn checkpoint_header_edits(edits in prop::collection::vec(header_edit(), 1..4), heads in prop::option::of(0..5usize)) {
        let SplitCheckpoint { mut header, mut data } = split_checkpoint(&valid_files().checkpoint);
        for edit in &edits {
            apply_header_edit(&mut header, &mut data, edit);
        }
        let result = checkpoint::load(&join_checkpoint(&header, &data), heads);
        // Two tensors that differ only by the prefix make the file ambiguous.
        let names = tensor_names(&header);
        let clash = names.iter().any(|name| name.strip_prefix("transformer.").is_some_and(|bare| names.iter().any(|other| other == bare)));
        if clash {
            prop_assert!(result.is_err(), "a file with a prefixed duplicate tensor was accepted");
        }
        check_checkpoint_result(result);
    }

    #[test]
    fn checkpoint_config_fields(field in prop::sample::select(&CONFIG_SIZE_FIELDS[..]), value in claimed_size()) {
        let bytes = edited_checkpoint(|header| edit_config(header, |config| config[field] = Value::from(value)));
        check_checkpoint_result(checkpoint::load(&bytes, None));
    }

    #[test]
    fn run_file_eval_batch_shape(batch in claimed_size(), context in claimed_size()) {
        check_run_result(RunFile::from_json(run_json_with_batch_shape(batch, context).as_bytes()));
    }

    #[test]
    fn saved_list_any_bytes(bytes in any_bytes()) {
        check_saved_result(saved::decode(&String::from_utf8_lossy(&bytes)));
    }

    #[test]
    fn saved_list_byte_edits(edits in byte_edits()) {
        let bytes = apply_byte_edits(valid_files().saved_list.as_bytes(), &edits);
        check_saved_result(saved::decode(&String::from_utf8_lossy(&bytes)));
    }

    #[test]
    fn saved_list_number_edits(edits in prop::collection::vec(number_edit(), 1..4)) {
        let mut text = valid_files().saved_list.clone();
        for (index, replacement) in &edits {
            text = replace_json_number(&text, *index, replacement);
        }
        check_saved_result(saved::decode(&text));
    }

    #[test]
    fn text_file_any_bytes(bytes in any_bytes()) {
        check_dataset_bytes(&bytes);
    }

    #[test]
    fn text_file_small_alphabet(text in "\u{FEFF}?[a-f \né🐋]{900,1200}") {
        check_dataset_bytes(text.as_bytes());
    }

    #[test]
    fn text_file_any_characters(chars in prop::collection::vec(any::<char>(), 0..1500)) {
        let text: String = chars.into_iter().collect();
        check_dataset_bytes(text.as_bytes());
    }

    #[test]
    fn text_file_byte_edits(edits in byte_edits()) {
        let bytes = apply_byte_edits(valid_files().text.as_bytes(), &edits);
        check_dataset_bytes(&bytes);
    }
}

// ---------------------------------------------------------------------------
// Regression cases
// ---------------------------------------------------------------------------

#[test]
fn valid_files_accepted() {
    let files = valid_files();
    assert_run_consistent(&RunFile::from_json(files.run_json.as_bytes()).unwrap());
    assert_checkpoint_consistent(&checkpoint::load(&files.checkpoint, None).unwrap());
    let loaded = saved::decode(&files.saved_list).unwrap();
    assert_eq!(loaded.runs.len(), 2);
    assert!(loaded.skipped.is_empty(), "{:?}", loaded.skipped);
    assert_dataset_consistent(&Dataset::from_bytes(TEXT_NAME, files.text.as_bytes()).unwrap(), files.text.as_bytes());
}

/// Sets the evaluation batch of the valid run file to `batch` × `context`
/// sequences while keeping its token lists.
fn run_json_with_batch_shape(batch: u64, context: u64) -> String {
    let mut value: Value = serde_json::from_str(&valid_files().run_json).unwrap();
    value["eval_batch"]["batch"] = Value::from(batch);
    value["eval_batch"]["context"] = Value::from(context);
    serde_json::to_string(&value).unwrap()
}

#[test]
fn run_file_overflowing_batch_shape_rejected() {
    // The product 2^32 × 2^32 overflows a 64-bit usize, and the check must not panic.
    let text = run_json_with_batch_shape(1 << 32, 1 << 32);
    let error = RunFile::from_json(text.as_bytes()).unwrap_err();
    assert!(matches!(error, RunFileError::Inconsistent(_)), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("4294967296 × 4294967296"), "{message}");
}

#[test]
fn run_file_missing_targets_named() {
    let mut value: Value = serde_json::from_str(&valid_files().run_json).unwrap();
    value["eval_batch"]["targets"] = serde_json::json!([]);
    let error = RunFile::from_json(serde_json::to_string(&value).unwrap().as_bytes()).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("0 targets"), "{message}");
}

#[test]
fn saved_list_overflowing_batch_shape_skipped() {
    let run: Value = serde_json::from_str(&run_json_with_batch_shape(u64::MAX, 2)).unwrap();
    let list = serde_json::json!({
        "schema": saved::SAVED_SCHEMA,
        "version": saved::SAVED_VERSION,
        "runs": [{"id": 1, "shown": true, "label": null, "run": run}],
    });
    let loaded = saved::decode(&list.to_string()).unwrap();
    assert!(loaded.runs.is_empty());
    assert_eq!(loaded.skipped.len(), 1);
    assert!(loaded.skipped[0].starts_with("saved run 1 could not be read"), "{:?}", loaded.skipped);
}

fn edited_checkpoint(edit: impl FnOnce(&mut Map<String, Value>)) -> Vec<u8> {
    let SplitCheckpoint { mut header, data } = split_checkpoint(&valid_files().checkpoint);
    edit(&mut header);
    join_checkpoint(&header, &data)
}

fn edit_config(header: &mut Map<String, Value>, edit: impl FnOnce(&mut Value)) {
    let metadata = metadata_mut(header);
    let mut config: Value = serde_json::from_str(metadata[checkpoint::CONFIG_KEY].as_str().unwrap()).unwrap();
    edit(&mut config);
    metadata.insert(checkpoint::CONFIG_KEY.to_string(), Value::String(config.to_string()));
}

#[test]
fn checkpoint_largest_config_rejected_without_allocating() {
    // This configuration has about 0.8 billion parameters (3 GiB as f32).
    // A small file that claims it must fail on its first tensor before any
    // buffer of that size is allocated.
    let bytes = edited_checkpoint(|header| {
        edit_config(header, |config| {
            config["layers"] = Value::from(64);
            config["width"] = Value::from(1024);
            config["context"] = Value::from(1024);
        });
    });
    let error = checkpoint::load(&bytes, None).unwrap_err();
    assert!(matches!(error, CheckpointError::WrongShape { .. }), "{error:?}");
    assert!(error.to_string().starts_with("tensor wte.weight has shape"), "{error}");
}

#[test]
fn checkpoint_header_past_end_rejected() {
    let mut bytes = valid_files().checkpoint.clone();
    let available = bytes.len() - 8;
    bytes[..8].copy_from_slice(&(available as u64 + 1).to_le_bytes());
    let error = checkpoint::load(&bytes, None).unwrap_err();
    let message = error.to_string();
    assert!(message.contains(&format!("declares {} bytes", available + 1)), "{message}");
    assert!(message.contains(&format!("only {available} bytes follow")), "{message}");
}

#[test]
fn checkpoint_truncated_data_named() {
    let bytes = &valid_files().checkpoint;
    let error = checkpoint::load(&bytes[..bytes.len() - 4], None).unwrap_err();
    assert!(matches!(error, CheckpointError::Format(_)), "{error:?}");
    assert!(error.to_string().contains("truncated"), "{error}");
}

#[test]
fn checkpoint_overlapping_offsets_rejected() {
    let bytes = edited_checkpoint(|header| {
        let offsets = header["wte.weight"]["data_offsets"].clone();
        header["wpe.weight"]["data_offsets"] = offsets;
    });
    let error = checkpoint::load(&bytes, None).unwrap_err();
    assert!(matches!(error, CheckpointError::Format(_)), "{error:?}");
    assert!(error.to_string().contains("data offsets"), "{error}");
}

#[test]
fn checkpoint_huge_shape_rejected() {
    let bytes = edited_checkpoint(|header| {
        header["wte.weight"]["shape"] = serde_json::json!([u64::MAX, u64::MAX]);
    });
    let error = checkpoint::load(&bytes, None).unwrap_err();
    assert!(matches!(error, CheckpointError::Format(_)), "{error:?}");
}

#[test]
fn checkpoint_prefixed_duplicate_rejected() {
    // A well-formed file that stores the embedding under both names, so that
    // only the name clash can fail.
    let model = checkpoint::load(&valid_files().checkpoint, None).unwrap().model;
    let mut tensors: Vec<(String, Vec<usize>, &[f32])> =
        model.layout.tensors.iter().enumerate().map(|(id, spec)| (spec.name.clone(), spec.shape.clone(), model.tensor(id))).collect();
    tensors.push(("transformer.wte.weight".to_string(), model.layout.tensors[model.layout.wte].shape.clone(), model.tensor(model.layout.wte)));
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(name, shape, values)| (name.clone(), TensorView::new(Dtype::F32, shape.clone(), bytemuck::cast_slice(values)).unwrap()))
        .collect();
    let metadata = HashMap::from([(checkpoint::CONFIG_KEY.to_string(), serde_json::to_string(&model.config).unwrap())]);
    let bytes = safetensors::serialize(views, Some(metadata)).unwrap();

    let error = checkpoint::load(&bytes, None).unwrap_err();
    assert!(matches!(&error, CheckpointError::DuplicateTensor { name } if name == "wte.weight"), "{error:?}");
    assert!(error.to_string().contains("both tensor wte.weight and transformer.wte.weight"), "{error}");
}

#[test]
fn checkpoint_vocab_size_mismatch_rejected() {
    let bytes = edited_checkpoint(|header| {
        metadata_mut(header).insert(checkpoint::VOCAB_KEY.to_string(), Value::from("abc"));
    });
    let error = checkpoint::load(&bytes, None).unwrap_err();
    assert!(matches!(error, CheckpointError::BadVocab(_)), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("3 characters"), "{message}");
    assert!(message.contains("vocab = 12"), "{message}");
}

#[test]
fn checkpoint_unsorted_vocab_rejected() {
    let bytes = edited_checkpoint(|header| {
        metadata_mut(header).insert(checkpoint::VOCAB_KEY.to_string(), Value::from("\n9876543210="));
    });
    let error = checkpoint::load(&bytes, None).unwrap_err();
    assert!(matches!(error, CheckpointError::BadVocab(_)), "{error:?}");
    assert!(error.to_string().contains("ascending order"), "{error}");
}

#[test]
fn text_file_split_character_rejected() {
    let text = sample_text();
    let whale = text.find('🐋').unwrap();
    let error = Dataset::from_bytes(TEXT_NAME, &text.as_bytes()[..whale + 2]).unwrap_err();
    let message = error.to_string();
    assert!(message.contains(&format!("byte offset {whale}")), "{message}");
}

#[test]
fn run_file_without_version_named() {
    let mut run: Value = serde_json::from_str(&valid_files().run_json).unwrap();
    run.as_object_mut().unwrap().remove("schema_version");
    let error = RunFile::from_json(run.to_string().as_bytes()).unwrap_err();
    assert!(matches!(error, RunFileError::MissingVersion), "{error:?}");
    assert!(error.to_string().contains("no schema_version"), "{error}");
}
