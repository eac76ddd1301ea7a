//! Learning rate against step: linear warm-up, then constant or cosine.

use crate::config::{Schedule, TrainConfig};

/// Learning rate for the update that takes the model from `step` to
/// `step + 1` (0-based).
pub fn learning_rate(config: &TrainConfig, step: usize) -> f64 {
    if step < config.warmup {
        return config.lr * (step + 1) as f64 / config.warmup as f64;
    }
    match config.schedule {
        Schedule::Constant => config.lr,
        Schedule::Cosine => {
            let decay_steps = config.steps.saturating_sub(config.warmup).max(1) as f64;
            let progress = ((step - config.warmup) as f64 / decay_steps).min(1.0);
            let floor = config.lr * config.min_lr_ratio;
            floor + (config.lr - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_constant() {
        let config = TrainConfig { lr: 1.0, warmup: 4, steps: 10, ..TrainConfig::default() };
        let rates: Vec<f64> = (0..6).map(|s| learning_rate(&config, s)).collect();
        assert_eq!(rates, [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]);
    }

    #[test]
    fn cosine_ends_at_floor() {
        let config = TrainConfig {
            lr: 2.0, warmup: 2, steps: 12, schedule: Schedule::Cosine, min_lr_ratio: 0.1, ..TrainConfig::default()
        };
        assert_eq!(learning_rate(&config, 2), 2.0);
        assert!((learning_rate(&config, 7) - 1.1).abs() < 1e-12);
        assert!((learning_rate(&config, 12) - 0.2).abs() < 1e-12);
    }
}
