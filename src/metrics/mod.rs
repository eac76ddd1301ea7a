//! Per-layer measurements and the certified bounds drawn against them.

pub mod bounds;
pub mod hidden_stats;
pub mod measure;
pub mod non_finite;

pub use bounds::{Bounds, GrowthFit};
pub use hidden_stats::{BlockGradNorms, LayerMetrics};
pub use measure::{measure, Measurement};
pub use non_finite::NonFinite;

/// Relative allowance when comparing a measured value with its bound. The
/// bounds hold in exact arithmetic, but the states are computed in f32. A
/// tight measurement can then land a few ulps above its bound, since a
/// Post-LN token norm sits within ε/(2σ²) of sqrt(d).
pub const ROUNDING_ALLOWANCE: f64 = 1e-5;

/// Check that `measured` is at or below `bound`, up to [`ROUNDING_ALLOWANCE`].
pub fn within_bound(measured: f64, bound: f64) -> bool {
    measured <= bound * (1.0 + ROUNDING_ALLOWANCE) + f64::MIN_POSITIVE
}
