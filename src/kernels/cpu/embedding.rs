//! Token plus learned position embedding: `x[b,t] = wte[token[b,t]] + wpe[t]`.

use super::Scalar;

/// Shapes: tokens [B, T] (each < V), wte [V, d], wpe [T_max ≥ T, d]; out [B, T, d].
pub fn embedding_forward<F: Scalar>(out: &mut [F], tokens: &[u32], wte: &[F], wpe: &[F], context: usize, d: usize) {
    for (n, (row, &token)) in out.chunks_exact_mut(d).zip(tokens).enumerate() {
        let t = n % context;
        let token_row = &wte[token as usize * d..][..d];
        let position_row = &wpe[t * d..][..d];
        for ((o, &e), &p) in row.iter_mut().zip(token_row).zip(position_row) {
            *o = e + p;
        }
    }
}

/// Adds into `dwte` and `dwpe`. Repeated tokens add up in the same row.
///
/// Shapes: dout [B, T, d], tokens [B, T]; dwte [V, d], dwpe [T_max, d].
pub fn embedding_backward<F: Scalar>(dwte: &mut [F], dwpe: &mut [F], dout: &[F], tokens: &[u32], context: usize, d: usize) {
    for (n, (row, &token)) in dout.chunks_exact(d).zip(tokens).enumerate() {
        let t = n % context;
        for (w, &g) in dwte[token as usize * d..][..d].iter_mut().zip(row) {
            *w = *w + g;
        }
        for (w, &g) in dwpe[t * d..][..d].iter_mut().zip(row) {
            *w = *w + g;
        }
    }
}
