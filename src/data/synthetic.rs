//! Synthetic algorithmic tasks generated from a seed.
//!
//! Each task is a text stream of samples, one per line, each line ending in
//! `\n`. The stream goes through the same character tokenizer and window
//! sampling as natural text, so the model sees samples cut at arbitrary
//! offsets and learns the format as well as the rule. Only the characters
//! after `=` are determined by the rest of the line.
//!
//! NOTE: short samples repeat (a one-digit copy task has 10 distinct lines),
//! so the validation split shares many lines with the training split.

use crate::rng::LabRng;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Approximate length of a generated stream in characters. Generation stops
/// at the first line end at or past this length.
pub const TARGET_CHARS: usize = 200_000;

/// Maximum number of digits in a copy, reverse or sort operand. The length
/// of each operand is uniform in `1..=MAX_DIGITS`.
pub const MAX_DIGITS: usize = 8;

/// Modulus of the addition task, so operands and sum have two digits.
pub const ADD_MODULUS: u32 = 100;

/// ChaCha stream that generation draws from. Initialisation and batch
/// sampling use stream 0 of the same seed, so this keeps the data independent
/// of them while one seed still names the whole run.
pub const SYNTHETIC_STREAM: u64 = 1;

/// A synthetic task. Digit strings may have leading zeros.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// `digits=digits`, for example `4821=4821`.
    Copy,
    /// `digits=reversed`, for example `4821=1284`.
    Reverse,
    /// `digits=digits sorted ascending`, for example `4821=1248`.
    Sort,
    /// `aa+bb=cc` with `cc = (aa + bb) mod 100`, every number zero-padded to
    /// two digits, for example `37+85=22`. Every line has 8 characters.
    Add,
}

impl Task {
    pub const ALL: [Task; 4] = [Task::Copy, Task::Reverse, Task::Sort, Task::Add];

    /// Name used on the command line and in saved configurations.
    pub fn name(self) -> &'static str {
        match self {
            Task::Copy => "copy",
            Task::Reverse => "reverse",
            Task::Sort => "sort",
            Task::Add => "add",
        }
    }

    /// One-line description with an example, for help text.
    pub fn description(self) -> &'static str {
        match self {
            Task::Copy => "copy a digit string (4821=4821)",
            Task::Reverse => "reverse a digit string (4821=1284)",
            Task::Sort => "sort the digits ascending (4821=1248)",
            Task::Add => "add two-digit numbers modulo 100 (37+85=22)",
        }
    }

    /// Parses a task name, ignoring ASCII case. Returns `None` for anything
    /// else, because callers such as `DataConfig::parse` then try other meanings.
    pub fn parse(text: &str) -> Option<Task> {
        Task::ALL.into_iter().find(|task| task.name().eq_ignore_ascii_case(text))
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Generates the text stream of `task` for `seed`: about [`TARGET_CHARS`]
/// characters of complete lines. The same task and seed give the same text on
/// every platform.
pub fn generate(task: Task, seed: u64) -> String {
    let mut rng = crate::rng::seeded(seed);
    rng.set_stream(SYNTHETIC_STREAM);
    generate_with(task, TARGET_CHARS, &mut rng)
}

/// Appends lines of `task` drawn from `rng` until the text has at least
/// `min_chars` characters, and returns the text.
pub fn generate_with(task: Task, min_chars: usize, rng: &mut LabRng) -> String {
    let mut text = String::with_capacity(min_chars + 2 * MAX_DIGITS + 2);
    // Every character is ASCII, so the byte length is the character count.
    while text.len() < min_chars {
        text.push_str(&sample_line(task, rng));
        text.push('\n');
    }
    text
}

/// Draws one sample of `task`, without the line end.
pub fn sample_line(task: Task, rng: &mut LabRng) -> String {
    let prompt = match task {
        Task::Copy | Task::Reverse | Task::Sort => random_digits(rng),
        Task::Add => {
            let left = rng.random_range(0..ADD_MODULUS);
            let right = rng.random_range(0..ADD_MODULUS);
            format!("{left:02}+{right:02}")
        }
    };
    // The prompt was built in the task's format, so `answer` always succeeds.
    let answer = answer(task, &prompt).unwrap_or_default();
    format!("{prompt}={answer}")
}

/// Computes the text after `=` for the text before it, or returns `None` when
/// `prompt` is not in the task's format. Used to score model completions.
pub fn answer(task: Task, prompt: &str) -> Option<String> {
    match task {
        Task::Copy | Task::Reverse | Task::Sort => {
            let valid = !prompt.is_empty()
                && prompt.len() <= MAX_DIGITS
                && prompt.bytes().all(|byte| byte.is_ascii_digit());
            if !valid {
                return None;
            }
            let mut digits: Vec<u8> = prompt.bytes().collect();
            match task {
                Task::Reverse => digits.reverse(),
                Task::Sort => digits.sort_unstable(),
                _ => {}
            }
            String::from_utf8(digits).ok()
        }
        Task::Add => {
            let (left, right) = prompt.split_once('+')?;
            let left = parse_two_digits(left)?;
            let right = parse_two_digits(right)?;
            Some(format!("{:02}", (left + right) % ADD_MODULUS))
        }
    }
}

/// Parses exactly two ASCII digits.
fn parse_two_digits(text: &str) -> Option<u32> {
    if text.len() != 2 || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Draws a digit string of uniform length in `1..=MAX_DIGITS`.
fn random_digits(rng: &mut LabRng) -> String {
    let length = rng.random_range(1..=MAX_DIGITS as u32);
    (0..length).map(|_| char::from(b'0' + rng.random_range(0..10u8))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits a generated line into prompt and answer, failing the test on a
    /// malformed line.
    fn split_line(line: &str) -> (&str, &str) {
        let parts: Vec<&str> = line.split('=').collect();
        assert_eq!(parts.len(), 2, "line {line:?} must contain one '='");
        (parts[0], parts[1])
    }

    fn assert_digit_operand(line: &str, prompt: &str) {
        assert!((1..=MAX_DIGITS).contains(&prompt.len()), "operand length in {line:?}");
        assert!(prompt.bytes().all(|byte| byte.is_ascii_digit()), "operand digits in {line:?}");
    }

    #[test]
    fn copy_lines_correct() {
        let text = generate(Task::Copy, 7);
        for line in text.lines() {
            let (prompt, result) = split_line(line);
            assert_digit_operand(line, prompt);
            assert_eq!(result, prompt, "line {line:?}");
        }
    }

    #[test]
    fn reverse_lines_correct() {
        let text = generate(Task::Reverse, 7);
        for line in text.lines() {
            let (prompt, result) = split_line(line);
            assert_digit_operand(line, prompt);
            let expected: String = prompt.chars().rev().collect();
            assert_eq!(result, expected, "line {line:?}");
        }
    }

    #[test]
    fn sort_lines_correct() {
        let text = generate(Task::Sort, 7);
        for line in text.lines() {
            let (prompt, result) = split_line(line);
            assert_digit_operand(line, prompt);
            let mut expected: Vec<char> = prompt.chars().collect();
            expected.sort();
            assert_eq!(result, expected.into_iter().collect::<String>(), "line {line:?}");
        }
    }

    #[test]
    fn add_lines_correct() {
        let text = generate(Task::Add, 7);
        for line in text.lines() {
            assert_eq!(line.len(), 8, "line {line:?}");
            let (prompt, result) = split_line(line);
            let (left, right) = prompt.split_once('+').expect("'+' in the prompt");
            let left: u32 = left.parse().unwrap();
            let right: u32 = right.parse().unwrap();
            let sum: u32 = result.parse().unwrap();
            assert_eq!(sum, (left + right) % 100, "line {line:?}");
        }
    }

    #[test]
    fn all_lengths_appear() {
        let text = generate(Task::Copy, 3);
        for length in 1..=MAX_DIGITS {
            let found = text.lines().any(|line| split_line(line).0.len() == length);
            assert!(found, "no operand of {length} digits");
        }
    }

    #[test]
    fn stream_size_and_line_ends() {
        for task in Task::ALL {
            let text = generate(task, 11);
            assert!(text.len() >= TARGET_CHARS, "{task}: {} characters", text.len());
            assert!(text.len() < TARGET_CHARS + 2 * MAX_DIGITS + 2, "{task}: {} characters", text.len());
            assert!(text.ends_with('\n'), "{task}");
            assert!(!text.contains("\n\n"), "{task}");
        }
    }

    #[test]
    fn same_seed_same_text() {
        for task in Task::ALL {
            assert_eq!(generate(task, 42), generate(task, 42), "{task}");
        }
    }

    #[test]
    fn different_seed_different_text() {
        for task in Task::ALL {
            assert_ne!(generate(task, 42), generate(task, 43), "{task}");
        }
    }

    #[test]
    fn independent_of_seed_stream_zero() {
        // Stream 0 of the seed is what initialisation and batch sampling use.
        let mut stream_zero = crate::rng::seeded(5);
        let from_stream_zero = generate_with(Task::Copy, TARGET_CHARS, &mut stream_zero);
        assert_ne!(generate(Task::Copy, 5), from_stream_zero);
    }

    #[test]
    fn answer_examples() {
        assert_eq!(answer(Task::Copy, "4821").as_deref(), Some("4821"));
        assert_eq!(answer(Task::Reverse, "4821").as_deref(), Some("1284"));
        assert_eq!(answer(Task::Sort, "4821").as_deref(), Some("1248"));
        assert_eq!(answer(Task::Add, "37+85").as_deref(), Some("22"));
        assert_eq!(answer(Task::Add, "00+07").as_deref(), Some("07"));
    }

    #[test]
    fn answer_rejects_malformed() {
        for prompt in ["", "12a4", "123456789", "-1", "١٢"] {
            assert_eq!(answer(Task::Copy, prompt), None, "{prompt:?}");
        }
        for prompt in ["37+8", "37-85", "+3785", "3a+85", "37+85+1", "+1+2"] {
            assert_eq!(answer(Task::Add, prompt), None, "{prompt:?}");
        }
    }

    #[test]
    fn parse_task_names() {
        for task in Task::ALL {
            assert_eq!(Task::parse(task.name()), Some(task));
            assert_eq!(Task::parse(&task.name().to_uppercase()), Some(task));
        }
        assert_eq!(Task::parse("moby-dick"), None);
        assert_eq!(Task::parse(""), None);
    }

    #[test]
    fn serde_names_match() {
        for task in Task::ALL {
            let json = serde_json::to_string(&task).unwrap();
            assert_eq!(json, format!("\"{}\"", task.name()));
            assert_eq!(serde_json::from_str::<Task>(&json).unwrap(), task);
        }
    }
}
