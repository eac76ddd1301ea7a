//! Divergence reports in the page's words: the quantity by its chart
//! label, the step as the number of updates taken.

use crate::metrics::NonFinite;
use crate::plot::Metric;

/// Returns the page's name for a quantity of a non-finite report.
fn quantity_words(quantity: &str) -> String {
    if let Some(tensor) = quantity.strip_prefix("grad:") {
        return format!("the gradient of {tensor}");
    }
    match quantity {
        "train_loss" => "the training loss".into(),
        "val_loss" => "the validation loss".into(),
        "grad_rms" => "the gradient rms".into(),
        "max_token_grad_norm" => "the largest token gradient".into(),
        "max_abs" => "the largest |x|".into(),
        "gradient norm" => "the gradient norm".into(),
        other => Metric::parse(other).map(|m| m.label().to_string()).unwrap_or_else(|| other.to_string()),
    }
}

/// Describes a divergence for the page, such as
/// `mean |x_l| over entries became NaN after 4 updates, at layer 8`.
pub fn describe(non_finite: &NonFinite) -> String {
    let updates = if non_finite.step == 1 { "1 update".to_string() } else { format!("{} updates", non_finite.step) };
    let place = non_finite.layer.map(|l| format!(", at layer {l}")).unwrap_or_default();
    format!("{} became {} after {updates}{place}", quantity_words(&non_finite.quantity), non_finite.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_uses_chart_label() {
        let text = describe(&NonFinite::new(4, Some(8), "mean_abs", f64::NAN));
        assert_eq!(text, "mean |x_l| over entries became NaN after 4 updates, at layer 8");
    }

    #[test]
    fn gradient_names_tensor() {
        let text = describe(&NonFinite::new(1, Some(0), "grad:wte.weight", f64::INFINITY));
        assert_eq!(text, "the gradient of wte.weight became inf after 1 update, at layer 0");
    }

    #[test]
    fn loss_has_no_layer() {
        let text = describe(&NonFinite::new(0, None, "train_loss", f64::NAN));
        assert_eq!(text, "the training loss became NaN after 0 updates");
    }
}
