//! Softmax cross-entropy averaged over all B·T positions.

use super::scalar::wide_simd;
use super::{max_of, Scalar};

wide_simd! {
/// Computes the mean loss and stores the softmax probabilities.
///
/// With `weights`, position i contributes `weights[i]·CE_i / N` instead of
/// `CE_i / N`; the gradient checks use this so that terms cannot cancel.
///
/// Shapes: logits [N, V], targets [N] (each < V), weights [N]; probs [N, V].
pub fn cross_entropy_forward<F: Scalar>(probs: &mut [F], logits: &[F], targets: &[u32], weights: Option<&[F]>, vocab: usize) -> F {
    let rows = targets.len();
    let mut total = F::zero();
    for (n, (p_row, l_row)) in probs.chunks_exact_mut(vocab).zip(logits.chunks_exact(vocab)).enumerate() {
        let max_logit = max_of(l_row);
        // The exponentials first, in a loop of their own that vectorises,
        // then their sum.
        for (p, &l) in p_row.iter_mut().zip(l_row) {
            *p = (l - max_logit).fast_exp();
        }
        let sum = p_row.iter().fold(F::zero(), |total, &p| total + p);
        for p in p_row.iter_mut() {
            *p = *p / sum;
        }
        // −log softmax computed from the logits, so a tiny probability does
        // not round to log(0).
        let target = targets[n] as usize;
        let ce = sum.ln() + max_logit - l_row[target];
        let w = weights.map_or(F::one(), |w| w[n]);
        total = total + w * ce;
    }
    total / F::of(rows as f64)
}
}

/// Writes `dlogits = w_i·(p − onehot(target)) / N`.
///
/// Shapes: probs [N, V], targets [N], weights [N]; dlogits [N, V].
pub fn cross_entropy_backward<F: Scalar>(dlogits: &mut [F], probs: &[F], targets: &[u32], weights: Option<&[F]>, vocab: usize) {
    let inv_rows = F::one() / F::of(targets.len() as f64);
    for (n, (d_row, p_row)) in dlogits.chunks_exact_mut(vocab).zip(probs.chunks_exact(vocab)).enumerate() {
        let scale = weights.map_or(F::one(), |w| w[n]) * inv_rows;
        for (d, &p) in d_row.iter_mut().zip(p_row) {
            *d = p * scale;
        }
        let target = targets[n] as usize;
        d_row[target] = d_row[target] - scale;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_logits_give_log_vocab() {
        let vocab = 7;
        let logits = vec![0.3f64; 2 * vocab];
        let mut probs = vec![0.0; 2 * vocab];
        let loss = cross_entropy_forward(&mut probs, &logits, &[1, 6], None, vocab);
        assert!((loss - (vocab as f64).ln()).abs() < 1e-12);
    }

    #[test]
    fn extreme_logits_stay_finite() {
        let logits = [80.0f32, -80.0, 0.0, 79.0];
        let mut probs = [0.0f32; 4];
        let loss = cross_entropy_forward(&mut probs, &logits, &[1], None, 4);
        assert!((loss - 160.313_26).abs() < 1e-3, "loss {loss}");
    }
}
