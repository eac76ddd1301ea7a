//! The page's model, kept apart from the DOM so that it builds, and its
//! tests run, on every target: the settings as typed, the link that
//! carries them, and the presets.

pub mod settings;
pub mod saved;
pub mod link;
pub mod presets;
pub mod divergence;
