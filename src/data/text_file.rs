//! Validation of user-supplied text files, and reading them on native builds.

use super::DataError;
#[cfg(not(target_arch = "wasm32"))]
use super::Dataset;
#[cfg(not(target_arch = "wasm32"))]
use std::path::Path;

/// Largest accepted file, 32 MiB. At one `u32` per character the tokens of
/// such a file take up to 128 MiB, well inside the 4 GiB of a wasm32 memory.
pub const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;

/// Smallest accepted text in characters, so that the validation split
/// (10 %) has at least 100 tokens.
pub const MIN_TEXT_CHARS: usize = 1_000;

const UTF8_BOM: &str = "\u{FEFF}";

/// Checks the raw bytes of the file `name` and returns its text without a
/// leading byte order mark.
///
/// Fails with [`DataError::FileTooLarge`], [`DataError::InvalidUtf8`] (giving
/// the byte offset of the first invalid sequence), [`DataError::Empty`] or
/// [`DataError::TooShort`]. The vocabulary is checked later, by the tokenizer.
pub fn decode_text<'a>(name: &str, bytes: &'a [u8]) -> Result<&'a str, DataError> {
    let size = bytes.len() as u64;
    if size > MAX_FILE_BYTES {
        return Err(DataError::FileTooLarge {
            name: name.to_string(),
            bytes: size,
            max: MAX_FILE_BYTES,
        });
    }

    let text = std::str::from_utf8(bytes).map_err(|error| DataError::InvalidUtf8 {
        name: name.to_string(),
        offset: error.valid_up_to(),
    })?;
    let text = text.strip_prefix(UTF8_BOM).unwrap_or(text);

    if text.is_empty() {
        return Err(DataError::Empty { name: name.to_string(), min: MIN_TEXT_CHARS });
    }
    let chars = text.chars().count();
    if chars < MIN_TEXT_CHARS {
        return Err(DataError::TooShort { name: name.to_string(), chars, min: MIN_TEXT_CHARS });
    }
    Ok(text)
}

/// Reads a file of at most [`MAX_FILE_BYTES`] bytes. The size is checked
/// before reading, so a huge file is never loaded.
#[cfg(not(target_arch = "wasm32"))]
pub fn read_file(path: &Path) -> Result<Vec<u8>, DataError> {
    use std::io::Read;

    let path_text = path.display().to_string();
    let read_error = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::NotFound {
            DataError::FileNotFound { path: path_text.clone() }
        } else {
            DataError::Read { path: path_text.clone(), source }
        }
    };

    let file = std::fs::File::open(path).map_err(read_error)?;
    let size = file.metadata().map_err(read_error)?.len();
    if size > MAX_FILE_BYTES {
        return Err(DataError::FileTooLarge { name: path_text, bytes: size, max: MAX_FILE_BYTES });
    }

    // Reading one byte past the limit detects a file that grew after the
    // size check, without reading the rest of it.
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(read_error)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(DataError::FileTooLarge {
            name: path_text,
            bytes: bytes.len() as u64,
            max: MAX_FILE_BYTES,
        });
    }
    Ok(bytes)
}

/// Reads and validates the user file at `path` and builds its dataset, named
/// by the path as given.
#[cfg(not(target_arch = "wasm32"))]
pub fn load_file(path: &str) -> Result<Dataset, DataError> {
    let bytes = read_file(Path::new(path))?;
    Dataset::from_bytes(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn long_text() -> String {
        "It is not down in any map; true places never are.\n".repeat(30)
    }

    #[test]
    fn valid_text_accepted() {
        let text = long_text();
        assert_eq!(decode_text("book.txt", text.as_bytes()).unwrap(), text);
    }

    #[test]
    fn byte_order_mark_dropped() {
        let text = long_text();
        let bytes = [UTF8_BOM.as_bytes(), text.as_bytes()].concat();
        assert_eq!(decode_text("book.txt", &bytes).unwrap(), text);
    }

    #[test]
    fn empty_file_rejected() {
        for bytes in [&b""[..], UTF8_BOM.as_bytes()] {
            let error = decode_text("empty.txt", bytes).unwrap_err();
            assert!(matches!(error, DataError::Empty { .. }), "{error:?}");
            let message = error.to_string();
            assert!(message.contains("empty.txt is empty"), "{message}");
            assert!(message.contains(&MIN_TEXT_CHARS.to_string()), "{message}");
        }
    }

    #[test]
    fn tiny_file_rejected() {
        let text = "é".repeat(MIN_TEXT_CHARS - 1);
        let error = decode_text("short.txt", text.as_bytes()).unwrap_err();
        assert!(
            matches!(error, DataError::TooShort { chars, min: MIN_TEXT_CHARS, .. } if chars == MIN_TEXT_CHARS - 1),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains("short.txt has 999 characters"), "{message}");
        assert!(message.contains("minimum of 1000"), "{message}");
    }

    #[test]
    fn minimum_counts_characters_not_bytes() {
        let text = "é".repeat(MIN_TEXT_CHARS);
        assert!(decode_text("accents.txt", text.as_bytes()).is_ok());
    }

    #[test]
    fn invalid_utf8_reports_offset() {
        let mut bytes = long_text().into_bytes();
        bytes[1234] = 0xFF;
        let error = decode_text("latin1.txt", &bytes).unwrap_err();
        assert!(matches!(error, DataError::InvalidUtf8 { offset: 1234, .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("latin1.txt is not valid UTF-8"), "{message}");
        assert!(message.contains("byte offset 1234"), "{message}");
    }

    #[test]
    fn truncated_utf8_reports_offset() {
        let mut bytes = long_text().into_bytes();
        let cut = bytes.len();
        bytes.extend_from_slice(&"é".as_bytes()[..1]);
        let error = decode_text("cut.txt", &bytes).unwrap_err();
        assert!(matches!(error, DataError::InvalidUtf8 { offset, .. } if offset == cut), "{error:?}");
    }

    #[test]
    fn oversized_bytes_rejected() {
        let bytes = vec![b'a'; MAX_FILE_BYTES as usize + 1];
        let error = decode_text("huge.txt", &bytes).unwrap_err();
        assert!(
            matches!(error, DataError::FileTooLarge { bytes, max: MAX_FILE_BYTES, .. } if bytes == MAX_FILE_BYTES + 1),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains("huge.txt is 33554433 bytes"), "{message}");
        assert!(message.contains("limit of 33554432 bytes"), "{message}");
    }

    #[cfg(not(target_arch = "wasm32"))]
    mod files {
        use super::*;
        use std::path::PathBuf;

        /// Returns a path in the temporary folder that no other test uses.
        fn temp_path(label: &str) -> PathBuf {
            std::env::temp_dir().join(format!("lnlab-text-file-{}-{label}", std::process::id()))
        }

        #[test]
        fn missing_file_rejected() {
            let path = temp_path("missing.txt");
            let error = load_file(path.to_str().unwrap()).unwrap_err();
            assert!(matches!(error, DataError::FileNotFound { .. }), "{error:?}");
            let message = error.to_string();
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(message.contains("copy, reverse, sort, add"), "{message}");
        }

        #[test]
        fn oversized_file_rejected_before_reading() {
            let path = temp_path("sparse.txt");
            let file = std::fs::File::create(&path).unwrap();
            file.set_len(MAX_FILE_BYTES + 10).unwrap();
            let result = read_file(&path);
            std::fs::remove_file(&path).unwrap();
            let error = result.unwrap_err();
            assert!(
                matches!(error, DataError::FileTooLarge { bytes, .. } if bytes == MAX_FILE_BYTES + 10),
                "{error:?}"
            );
        }

        #[test]
        fn directory_rejected() {
            let path = temp_path("folder");
            std::fs::create_dir_all(&path).unwrap();
            let result = load_file(path.to_str().unwrap());
            std::fs::remove_dir(&path).unwrap();
            let error = result.unwrap_err();
            assert!(matches!(error, DataError::Read { .. }), "{error:?}");
            assert!(error.to_string().starts_with("failed to read"), "{error}");
        }

        #[test]
        fn file_loads_with_path_name() {
            let path = temp_path("book.txt");
            std::fs::write(&path, long_text()).unwrap();
            let name = path.to_str().unwrap().to_string();
            let result = load_file(&name);
            std::fs::remove_file(&path).unwrap();
            let dataset = result.unwrap();
            assert_eq!(dataset.name, name);
            assert_eq!(dataset.train.len() + dataset.val.len(), long_text().len());
        }
    }
}
