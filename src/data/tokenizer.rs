//! Character-level tokenizer: one token per Unicode scalar value.

use super::DataError;
use crate::config::limits::MAX_VOCAB;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Character printed by [`Vocab::decode`] for an id outside the vocabulary.
pub const UNKNOWN_ID_CHAR: char = char::REPLACEMENT_CHARACTER;

/// The distinct characters of a text in ascending code point order. A
/// character's token id is its index in that order, so the same text always
/// gives the same ids.
///
/// Serialises as one string of the characters in id order, and deserialising
/// checks that order and the [`MAX_VOCAB`] limit again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Vocab {
    /// Strictly increasing, at most [`MAX_VOCAB`] entries.
    chars: Vec<char>,
}

impl Vocab {
    /// Builds the vocabulary of `text`.
    ///
    /// Fails with [`DataError::VocabTooLarge`] when the text has more than
    /// [`MAX_VOCAB`] distinct characters. An empty text gives an empty vocabulary.
    pub fn from_text(text: &str) -> Result<Vocab, DataError> {
        Self::from_named_text("the text", text)
    }

    /// Builds the vocabulary of `text`, naming the text `name` in errors.
    pub(crate) fn from_named_text(name: &str, text: &str) -> Result<Vocab, DataError> {
        let distinct: BTreeSet<char> = text.chars().collect();
        if distinct.len() > MAX_VOCAB {
            return Err(DataError::VocabTooLarge {
                name: name.to_string(),
                distinct: distinct.len(),
                max: MAX_VOCAB,
            });
        }
        Ok(Vocab { chars: distinct.into_iter().collect() })
    }

    /// Builds a vocabulary from characters already in id order, as stored with
    /// a trained model.
    ///
    /// Fails with [`DataError::InvalidVocab`] unless the characters are strictly
    /// increasing, and with [`DataError::VocabTooLarge`] above [`MAX_VOCAB`].
    pub fn from_chars(chars: Vec<char>) -> Result<Vocab, DataError> {
        if chars.len() > MAX_VOCAB {
            return Err(DataError::VocabTooLarge {
                name: "the stored vocabulary".to_string(),
                distinct: chars.len(),
                max: MAX_VOCAB,
            });
        }
        if let Some(index) = chars.windows(2).position(|pair| pair[0] >= pair[1]) {
            return Err(DataError::InvalidVocab {
                index: index + 1,
                ch: chars[index + 1],
                previous: chars[index],
            });
        }
        Ok(Vocab { chars })
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.chars.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    /// Returns the characters in id order.
    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    /// Returns the id of `ch`, or `None` if the vocabulary lacks it.
    pub fn id(&self, ch: char) -> Option<u32> {
        // The length is at most MAX_VOCAB, so the index fits in u32.
        self.chars.binary_search(&ch).ok().map(|index| index as u32)
    }

    /// Returns the character of token `id`, or `None` if the id is out of range.
    pub fn char_of(&self, id: u32) -> Option<char> {
        self.chars.get(id as usize).copied()
    }

    /// Converts `text` to token ids.
    ///
    /// Fails with [`DataError::UnknownCharacter`] on the first character that is
    /// not in the vocabulary, for example in a prompt typed by the user.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, DataError> {
        let mut ids = Vec::with_capacity(text.len());
        for (position, ch) in text.chars().enumerate() {
            match self.id(ch) {
                Some(id) => ids.push(id),
                None => {
                    return Err(DataError::UnknownCharacter { ch, position, vocab_size: self.len() })
                }
            }
        }
        Ok(ids)
    }

    /// Converts token ids back to text. An id outside the vocabulary becomes
    /// [`UNKNOWN_ID_CHAR`] instead of an error, so that sampled output always prints.
    pub fn decode(&self, ids: &[u32]) -> String {
        ids.iter().map(|&id| self.char_of(id).unwrap_or(UNKNOWN_ID_CHAR)).collect()
    }
}

impl TryFrom<String> for Vocab {
    type Error = DataError;

    fn try_from(text: String) -> Result<Vocab, DataError> {
        Vocab::from_chars(text.chars().collect())
    }
}

impl From<Vocab> for String {
    fn from(vocab: Vocab) -> String {
        vocab.chars.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_restores_text() {
        let text = "Call me Ishmael—some years ago.\nΑβγ ✓ 🐋";
        let vocab = Vocab::from_text(text).unwrap();
        let ids = vocab.encode(text).unwrap();
        assert_eq!(ids.len(), text.chars().count());
        assert_eq!(vocab.decode(&ids), text);
    }

    #[test]
    fn vocab_sorted_by_code_point() {
        let vocab = Vocab::from_text("cabbage\n").unwrap();
        assert_eq!(vocab.chars(), &['\n', 'a', 'b', 'c', 'e', 'g']);
        assert_eq!(vocab.len(), 6);
        assert_eq!(vocab.id('\n'), Some(0));
        assert_eq!(vocab.id('g'), Some(5));
        assert_eq!(vocab.id('z'), None);
    }

    #[test]
    fn vocab_independent_of_text_order() {
        let forward = Vocab::from_text("the whale").unwrap();
        let shuffled = Vocab::from_text("elahw eht").unwrap();
        assert_eq!(forward, shuffled);
        assert_eq!(forward.encode("whale").unwrap(), shuffled.encode("whale").unwrap());
    }

    #[test]
    fn vocab_at_limit_accepted() {
        let text: String = (0..MAX_VOCAB as u32).filter_map(|i| char::from_u32(0x4E00 + i)).collect();
        let vocab = Vocab::from_text(&text).unwrap();
        assert_eq!(vocab.len(), MAX_VOCAB);
    }

    #[test]
    fn vocab_over_limit_rejected() {
        let text: String = (0..600u32).filter_map(|i| char::from_u32(0x4E00 + i)).collect();
        let error = Vocab::from_text(&text).unwrap_err();
        assert!(
            matches!(error, DataError::VocabTooLarge { distinct: 600, max: MAX_VOCAB, .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains("600 distinct characters"), "{message}");
        assert!(message.contains(&MAX_VOCAB.to_string()), "{message}");
    }

    #[test]
    fn encode_unknown_character_fails() {
        let vocab = Vocab::from_text("abc").unwrap();
        let error = vocab.encode("abxc").unwrap_err();
        assert!(
            matches!(error, DataError::UnknownCharacter { ch: 'x', position: 2, vocab_size: 3 }),
            "{error:?}"
        );
        assert!(error.to_string().contains("'x'"), "{error}");
    }

    #[test]
    fn decode_out_of_range_id() {
        let vocab = Vocab::from_text("ab").unwrap();
        assert_eq!(vocab.decode(&[0, 7, 1, u32::MAX]), "a\u{FFFD}b\u{FFFD}");
    }

    #[test]
    fn from_chars_rejects_unsorted() {
        let error = Vocab::from_chars(vec!['a', 'c', 'b']).unwrap_err();
        assert!(
            matches!(error, DataError::InvalidVocab { index: 2, ch: 'b', previous: 'c' }),
            "{error:?}"
        );
        let duplicate = Vocab::from_chars(vec!['a', 'a']).unwrap_err();
        assert!(matches!(duplicate, DataError::InvalidVocab { index: 1, .. }), "{duplicate:?}");
    }

    #[test]
    fn serde_round_trip() {
        let vocab = Vocab::from_text("hello, world\n").unwrap();
        let json = serde_json::to_string(&vocab).unwrap();
        assert_eq!(json, "\"\\n ,dehlorw\"");
        let back: Vocab = serde_json::from_str(&json).unwrap();
        assert_eq!(back, vocab);
    }

    #[test]
    fn serde_rejects_unsorted() {
        let result: Result<Vocab, _> = serde_json::from_str("\"ba\"");
        assert!(result.is_err());
    }
}
