//! Splitting a kernel's rows over threads.
//!
//! Natively the work runs on the threads of `spin_pool`, whose number the
//! caller sets (the CLI's `--threads`), or on the rayon pool a test runs
//! it in. In WebAssembly there is one thread. Each
//! part computes whole rows in the same order as one thread would, so a
//! run's numbers do not depend on the thread count.

use std::ops::Range;

/// Calls `work` on consecutive parts of `0..count` that together cover it,
/// in parallel where there are threads. Parts hold at least `min_part`
/// items and a multiple of `align` (except the last), so a part never
/// splits a kernel's block of rows.
pub fn for_each_part(count: usize, min_part: usize, align: usize, work: impl Fn(Range<usize>) + Sync) {
    let parts = part_count(count, min_part);
    if parts <= 1 {
        work(0..count);
        return;
    }
    let align = align.max(1);
    let size = count.div_ceil(parts).div_ceil(align) * align;
    run_parts(count.div_ceil(size), &|part| work(part * size..((part + 1) * size).min(count)));
}

/// Splits `data` into `rows` rows and calls `work(first_row, part)` on
/// consecutive groups of at least `min_rows` rows (except the last), in
/// parallel where there are threads.
pub fn for_each_rows<T: Send>(data: &mut [T], rows: usize, min_rows: usize, work: impl Fn(usize, &mut [T]) + Sync) {
    let row_len = data.len().checked_div(rows).unwrap_or(0);
    assert_eq!(row_len * rows, data.len(), "for_each_rows: {} elements do not make {rows} rows", data.len());
    let base = SharedMut(data.as_mut_ptr());
    for_each_part(rows, min_rows, 1, |part| {
        // SAFETY: the parts are disjoint ranges of rows inside `data`, which
        // stays mutably borrowed until every part has returned.
        let slice = unsafe { std::slice::from_raw_parts_mut(base.get().add(part.start * row_len), part.len() * row_len) };
        work(part.start, slice);
    });
}

/// Returns how many parts `count` items make: one per thread, but few
/// enough that each contains about `min_part` items or more.
fn part_count(count: usize, min_part: usize) -> usize {
    threads().min(count / min_part.max(1)).max(1)
}

/// Threads set by [`set_threads`]; 0 until then, which means one per
/// logical CPU.
#[cfg(not(target_arch = "wasm32"))]
static THREADS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Returns the number of threads kernels may use. Inside a rayon pool (the
/// tests run kernels in pools of chosen sizes) that is the pool's size.
pub fn threads() -> usize {
    #[cfg(not(target_arch = "wasm32"))]
    {
        if rayon::current_thread_index().is_some() {
            return rayon::current_num_threads();
        }
        match THREADS.load(std::sync::atomic::Ordering::SeqCst) {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            count => count,
        }
    }
    #[cfg(target_arch = "wasm32")]
    {
        1
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn run_parts(parts: usize, work: &(dyn Fn(usize) + Sync)) {
    if rayon::current_thread_index().is_some() {
        use rayon::prelude::*;
        (0..parts).into_par_iter().for_each(work);
    } else {
        super::spin_pool::run(threads(), parts, work);
    }
}

#[cfg(target_arch = "wasm32")]
fn run_parts(parts: usize, work: &(dyn Fn(usize) + Sync)) {
    (0..parts).for_each(work);
}

/// Sets the number of threads the kernels use, once per process and
/// before the first kernel runs: the pool keeps the size it started with.
/// Returns an error if another number was set before.
#[cfg(not(target_arch = "wasm32"))]
pub fn set_threads(count: usize) -> Result<(), String> {
    use std::sync::atomic::Ordering::SeqCst;
    match THREADS.compare_exchange(0, count, SeqCst, SeqCst) {
        Ok(_) => Ok(()),
        Err(current) if current == count => Ok(()),
        Err(current) => Err(format!("cannot use {count} threads: {current} were set before")),
    }
}

/// A pointer that parts of one kernel share. Each part writes only its own
/// rows, which is what makes sending it to another thread sound.
pub struct SharedMut<T>(pub *mut T);

// Copy by hand: a derive would require `T: Copy`.
impl<T> Clone for SharedMut<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SharedMut<T> {}

impl<T> SharedMut<T> {
    /// Returns the pointer. Closures call this rather than reading the
    /// field, so that they capture the wrapper and not a bare pointer.
    pub fn get(self) -> *mut T {
        self.0
    }
}

// SAFETY: see the type's doc; users keep the parts' writes disjoint.
unsafe impl<T> Send for SharedMut<T> {}
unsafe impl<T> Sync for SharedMut<T> {}

/// A read-only pointer that parts of one kernel share.
pub struct Shared<T>(pub *const T);

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Shared<T> {}

impl<T> Shared<T> {
    /// Returns the pointer; closures call it for the reason given at [`SharedMut::get`].
    pub fn get(self) -> *const T {
        self.0
    }
}

// SAFETY: the data is only read while the parts run.
unsafe impl<T> Send for Shared<T> {}
unsafe impl<T> Sync for Shared<T> {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn parts_cover_every_row_once() {
        for count in [0, 1, 7, 64, 1000] {
            for (min_part, align) in [(1, 1), (16, 8), (300, 6)] {
                let seen = Mutex::new(vec![0u32; count]);
                for_each_part(count, min_part, align, |rows| {
                    if rows.start != 0 && rows.start < count {
                        assert_eq!(rows.start % align, 0, "part {rows:?} starts inside a block");
                    }
                    let mut seen = seen.lock().unwrap();
                    for row in rows {
                        seen[row] += 1;
                    }
                });
                assert!(seen.into_inner().unwrap().iter().all(|&n| n == 1), "count {count}");
            }
        }
    }
}
