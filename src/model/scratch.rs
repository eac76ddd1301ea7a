//! Buffers the forward and backward passes reuse from one step to the next.
//!
//! A training step fills about a hundred large vectors. Allocating them
//! zeroed each step cost 6 to 7% of a step in memset alone, so the CPU
//! backend hands a finished pass back with [`recycle`], and [`buffer`]
//! takes from those before it allocates.

use crate::kernels::cpu::Scalar;
use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::collections::HashMap;

/// Buffers kept per float type; a step of the largest model needs fewer.
const MAX_KEPT: usize = 512;

thread_local! {
    static FREE: RefCell<HashMap<TypeId, Box<dyn Any>>> = RefCell::new(HashMap::new());
}

/// Returns a vector of `len` elements whose contents are unspecified:
/// stale values from an earlier step, or zeros. Use it only for outputs
/// that a kernel overwrites entirely. Builds with debug assertions (the
/// tests) fill a reused buffer with NaN, so from the second step on, a
/// kernel that leaves an element unwritten shows up as a non-finite result.
pub fn buffer<F: Scalar>(len: usize) -> Vec<F> {
    let reused = FREE.with_borrow_mut(|free| {
        let list = free.get_mut(&TypeId::of::<F>())?.downcast_mut::<Vec<Vec<F>>>()?;
        // The smallest buffer that is long enough, so big ones stay for big requests.
        let (index, _) = list.iter().enumerate().filter(|(_, v)| v.len() >= len).min_by_key(|(_, v)| v.len())?;
        Some(list.swap_remove(index))
    });
    match reused {
        Some(mut vector) => {
            vector.truncate(len);
            if cfg!(debug_assertions) {
                vector.fill(F::nan());
            }
            vector
        }
        None => vec![F::zero(); len],
    }
}

/// Returns a vector of `len` zeros, reusing a kept buffer when there is one.
pub fn zeroed<F: Scalar>(len: usize) -> Vec<F> {
    let mut vector = buffer(len);
    vector.fill(F::zero());
    vector
}

/// Returns a copy of `values`, reusing a kept buffer when there is one.
pub fn copied<F: Scalar>(values: &[F]) -> Vec<F> {
    let mut vector = buffer(values.len());
    vector.copy_from_slice(values);
    vector
}

/// Keeps `vectors` for later [`buffer`] calls on this thread.
pub fn recycle<F: Scalar>(vectors: impl IntoIterator<Item = Vec<F>>) {
    FREE.with_borrow_mut(|free| {
        let entry = free.entry(TypeId::of::<F>()).or_insert_with(|| Box::new(Vec::<Vec<F>>::new()));
        let list = entry.downcast_mut::<Vec<Vec<F>>>().expect("the map is keyed by element type");
        for vector in vectors {
            if list.len() >= MAX_KEPT {
                break;
            }
            if !vector.is_empty() {
                list.push(vector);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_a_long_enough_buffer() {
        let original = vec![1.0f32; 100];
        let address = original.as_ptr();
        recycle([original]);
        let reused = buffer::<f32>(60);
        assert_eq!(reused.len(), 60);
        assert_eq!(reused.as_ptr(), address);
    }

    #[test]
    fn allocates_when_none_fits() {
        recycle([vec![1.0f64; 10]]);
        let fresh = buffer::<f64>(11);
        assert_eq!(fresh, vec![0.0; 11]);
    }
}
