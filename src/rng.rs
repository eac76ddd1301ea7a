//! The one seeded generator behind initialisation and batch sampling.
//!
//! ChaCha8 gives the same stream on every platform (native and wasm32), so a
//! seed names one run wherever it trains.

use rand::SeedableRng;

pub type LabRng = rand_chacha::ChaCha8Rng;

pub fn seeded(seed: u64) -> LabRng {
    LabRng::seed_from_u64(seed)
}
