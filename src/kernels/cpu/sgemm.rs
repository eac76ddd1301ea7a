//! The f32 matrix product `C = alpha·A·B + beta·C` on strided views, with
//! SIMD kernels for x86-64 (AVX-512 or AVX2 with FMA, picked at run time)
//! and for WebAssembly built with simd128.
//!
//! The lab's products are small: a block multiplies 1024×64 by 64×192, and
//! one attention head 32×16 by 16×64 per block of queries. A general
//! library packs both operands on every call, which cost about half as much
//! as its arithmetic at these sizes. Here only B is packed, into column panels NR wide, and A is read
//! in place. Each micro-kernel call keeps an MR×NR block of C (MR×2NR for
//! two panels at once) in registers for the whole inner dimension and
//! writes it once.
//!
//! Other targets, x86-64 CPUs without AVX2 and FMA, and C with a column
//! stride other than 1 use matrixmultiply.

// A WebAssembly build without simd128 has no micro-kernel, so most of this
// file goes unused there.
#![cfg_attr(all(target_arch = "wasm32", not(target_feature = "simd128")), allow(dead_code, unused))]

use super::threads::{for_each_part, Shared, SharedMut};
use std::cell::RefCell;

thread_local! {
    /// B packed into panels; kept between calls so a training step does
    /// not allocate.
    static PANELS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// A micro-kernel: how many rows (MR) and columns (NR) of C it computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kernel {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    Simd128,
}

impl Kernel {
    fn detect() -> Option<Kernel> {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Some(Kernel::Avx512);
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                return Some(Kernel::Avx2);
            }
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        {
            return Some(Kernel::Simd128);
        }
        #[allow(unreachable_code)]
        None
    }

    /// Returns every kernel this CPU runs, the general library (`None`) included.
    #[cfg(test)]
    fn all_available() -> Vec<Option<Kernel>> {
        let mut kernels = vec![None];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                kernels.push(Some(Kernel::Avx512));
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                kernels.push(Some(Kernel::Avx2));
            }
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        kernels.push(Some(Kernel::Simd128));
        kernels
    }

    fn rows(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => 8,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => 6,
            // Eight accumulators, two B vectors and a temporary fit the 16
            // vector registers a browser's x86-64 code generator has.
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Kernel::Simd128 => 4,
        }
    }

    /// Returns whether the kernel also has a variant for two panels at once.
    fn pairs_panels(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    fn cols(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 | Kernel::Avx2 => 16,
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Kernel::Simd128 => 8,
        }
    }
}

/// One MR×NR (or smaller) block of C: the arguments every micro-kernel takes.
#[derive(Clone, Copy)]
struct Block {
    /// Rows of C in this block, 1..=MR.
    rows: usize,
    /// Columns of C in this block: 1..=NR, the panel zero-padded beyond,
    /// or 2·NR for the two-panel kernel.
    cols: usize,
    k: usize,
    /// A(i, p) of the block's first row sits at `a + i·rsa + p·csa`.
    a: *const f32,
    rsa: isize,
    csa: isize,
    /// The panel of B: k rows of NR values, `panel_stride` apart.
    panel: *const f32,
    /// The next panel, read only by the two-panel kernel; same stride.
    next_panel: *const f32,
    panel_stride: usize,
    /// C(i, j) sits at `c + i·rsc + j`.
    c: *mut f32,
    rsc: isize,
    alpha: f32,
    beta: f32,
    /// Added to every row of the block (its `cols` values), or null.
    bias: *const f32,
}

/// `C = alpha·A·B + beta·C` with A m×k, B k×n and C m×n; element (i, j) of
/// each sits at `ptr + i·row_stride + j·col_stride`. With `beta = 0` the
/// old contents of C are ignored, NaN included.
///
/// # Safety
/// Every element the shapes and strides address must be inside a live
/// allocation, C must not overlap A or B, and no two elements of C may
/// share an address (rows of C may be written from different threads).
#[allow(clippy::too_many_arguments)]
pub unsafe fn sgemm(
    m: usize, k: usize, n: usize, alpha: f32,
    a: *const f32, rsa: isize, csa: isize,
    b: *const f32, rsb: isize, csb: isize,
    beta: f32,
    c: *mut f32, rsc: isize, csc: isize,
) {
    sgemm_with(Kernel::detect(), m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, std::ptr::null(), c, rsc, csc);
}

/// Writes `out = inp·w + bias` with inp m×k, w k×n, bias [n] and out m×n,
/// all row-major. The bias is added as each block of the product is
/// stored, which rounds like adding it to the finished product.
pub fn affine(m: usize, k: usize, n: usize, inp: &[f32], w: &[f32], bias: &[f32], out: &mut [f32]) {
    assert_eq!(inp.len(), m * k, "affine: inp has {} elements, expected {m}×{k}", inp.len());
    assert_eq!(w.len(), k * n, "affine: w has {} elements, expected {k}×{n}", w.len());
    assert_eq!(bias.len(), n, "affine: bias has {} elements, expected {n}", bias.len());
    assert_eq!(out.len(), m * n, "affine: out has {} elements, expected {m}×{n}", out.len());
    let kernel = Kernel::detect();
    if kernel.is_none() || k == 0 {
        for row in out.chunks_exact_mut(n.max(1)) {
            row.copy_from_slice(bias);
        }
        // SAFETY: the asserts above pin every slice to its shape.
        unsafe { sgemm_with(None, m, k, n, 1.0, inp.as_ptr(), k as isize, 1, w.as_ptr(), n as isize, 1, 1.0, std::ptr::null(), out.as_mut_ptr(), n as isize, 1) };
        return;
    }
    // SAFETY: as above; the micro-kernels read `bias` only at columns < n.
    unsafe {
        sgemm_with(kernel, m, k, n, 1.0, inp.as_ptr(), k as isize, 1, w.as_ptr(), n as isize, 1, 0.0, bias.as_ptr(), out.as_mut_ptr(), n as isize, 1)
    };
}

/// Computes [`sgemm`] on the given micro-kernel, or on matrixmultiply for
/// `None`, and adds `bias` (n values, or null) to every row of C.
///
/// # Safety
/// As for [`sgemm`]; the kernel must run on this CPU. `bias` must be null
/// unless a micro-kernel runs, that is C has column stride 1 and m, n and
/// k are all positive: matrixmultiply has no bias and ignores it.
#[allow(clippy::too_many_arguments)]
unsafe fn sgemm_with(
    kernel: Option<Kernel>,
    m: usize, k: usize, n: usize, alpha: f32,
    a: *const f32, rsa: isize, csa: isize,
    b: *const f32, rsb: isize, csb: isize,
    beta: f32, bias: *const f32,
    c: *mut f32, rsc: isize, csc: isize,
) {
    let kernel = match kernel {
        Some(kernel) if csc == 1 && m > 0 && n > 0 && k > 0 => kernel,
        _ => {
            matrixmultiply::sgemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc);
            return;
        }
    };
    let (mr, nr) = (kernel.rows(), kernel.cols());
    // In a row-major B each full panel already is k rows of nr consecutive
    // values, so only the ragged last panel needs copying.
    let direct = if csb == 1 && rsb >= 0 { n / nr } else { 0 };
    // The buffer leaves its cell while the parts run: a thread that waits
    // for them may meanwhile run another product from the same pool, which
    // then finds the cell empty and allocates its own. A product whose B
    // needs no copy (row-major, whole panels) leaves the cell alone, since
    // attention makes thousands of such small products a step.
    let copies = direct * nr < n;
    let mut panels = if copies { PANELS.with(|cell| cell.replace(Vec::new())) } else { Vec::new() };
    {
        let panels = &mut panels;
        pack_panels(panels, k, n, nr, direct * nr, b, rsb, csb);
        let (a, b, c, packed, bias) = (Shared(a), Shared(b), SharedMut(c), Shared(panels.as_ptr()), Shared(bias));
        // Enough rows per thread that the arithmetic (about 2^17
        // multiply-adds) outweighs handing the part to another thread.
        let min_rows = (1 << 17) / (n * k).max(1);
        let count = n.div_ceil(nr);
        let panel_at = |index: usize| {
            if index < direct {
                (b.get().add(index * nr), rsb as usize)
            } else {
                (packed.get().add((index - direct) * k * nr), nr)
            }
        };
        for_each_part(m, min_rows.max(mr), mr, |rows| {
            let mut index = 0;
            while index < count {
                let j = index * nr;
                let (panel, panel_stride) = panel_at(index);
                // Two full panels of the same kind (both in B, or both
                // packed) go to the two-panel kernel where there is one.
                let pair = kernel.pairs_panels() && j + 2 * nr <= n && (index + 1 < direct || index >= direct);
                let next_panel = if pair { panel_at(index + 1).0 } else { std::ptr::null() };
                for i in rows.clone().step_by(mr) {
                    let block = Block {
                        rows: mr.min(rows.end - i),
                        cols: if pair { 2 * nr } else { nr.min(n - j) },
                        k,
                        a: a.get().offset(i as isize * rsa),
                        rsa,
                        csa,
                        panel,
                        next_panel,
                        panel_stride,
                        c: c.get().offset(i as isize * rsc + j as isize),
                        rsc,
                        alpha,
                        beta,
                        bias: if bias.get().is_null() { bias.get() } else { bias.get().add(j) },
                    };
                    run(kernel, block);
                }
                index += if pair { 2 } else { 1 };
            }
        });
    }
    if copies {
        PANELS.with(|cell| *cell.borrow_mut() = panels);
    }
}

/// Copies the columns `first..n` of B into `panels`. Panel q contains
/// columns first + q·nr.. of every row, nr values per row, with zeros past
/// column n.
///
/// # Safety
/// As for [`sgemm`]'s B.
#[allow(clippy::too_many_arguments)]
unsafe fn pack_panels(panels: &mut Vec<f32>, k: usize, n: usize, nr: usize, first: usize, b: *const f32, rsb: isize, csb: isize) {
    let len = (n - first).div_ceil(nr) * k * nr;
    // Grow only: every element below is written, padding included.
    if panels.len() < len {
        panels.resize(len, 0.0);
    }
    for (index, panel) in panels[..len].chunks_exact_mut(k * nr).enumerate() {
        let j = first + index * nr;
        let width = nr.min(n - j);
        if csb == 1 {
            for (p, row) in panel.chunks_exact_mut(nr).enumerate() {
                let from = std::slice::from_raw_parts(b.offset(p as isize * rsb + j as isize), width);
                row[..width].copy_from_slice(from);
                row[width..].fill(0.0);
            }
        } else {
            for (p, row) in panel.chunks_exact_mut(nr).enumerate() {
                let from = b.offset(p as isize * rsb + j as isize * csb);
                for (col, value) in row[..width].iter_mut().enumerate() {
                    *value = *from.offset(col as isize * csb);
                }
                row[width..].fill(0.0);
            }
        }
    }
}

/// # Safety
/// The block's pointers must address valid memory for its shape.
unsafe fn run(kernel: Kernel, block: Block) {
    // Each kernel is instantiated for every row count up to its MR, so the
    // accumulators of a full block and of the last partial one both live
    // in registers.
    macro_rules! by_rows {
        ($kernel:ident, $($rows:literal),+) => {
            match block.rows {
                $($rows => $kernel::<$rows>(block),)+
                rows => unreachable!("a block of {rows} rows"),
            }
        };
    }
    match kernel {
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 if !block.next_panel.is_null() => by_rows!(avx512_pair, 1, 2, 3, 4, 5, 6, 7, 8),
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 => by_rows!(avx512, 1, 2, 3, 4, 5, 6, 7, 8),
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => by_rows!(avx2, 1, 2, 3, 4, 5, 6),
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        Kernel::Simd128 => by_rows!(simd128, 1, 2, 3, 4),
    }
}

/// Writes `alpha·acc + beta·C (+ bias)` for one row of a partial block,
/// through a scalar loop.
///
/// # Safety
/// `out`, and `bias` unless null, must address `acc.len().min(cols)` floats.
unsafe fn store_partial_row(acc: &[f32], out: *mut f32, cols: usize, alpha: f32, beta: f32, bias: *const f32) {
    for (j, &sum) in acc.iter().take(cols).enumerate() {
        let target = out.add(j);
        let mut value = if beta == 0.0 { alpha * sum } else { alpha * sum + beta * *target };
        if !bias.is_null() {
            value += *bias.add(j);
        }
        *target = value;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn avx512<const R: usize>(block: Block) {
    use std::arch::x86_64::*;
    let mut acc = [_mm512_setzero_ps(); R];
    for p in 0..block.k {
        let b = _mm512_loadu_ps(block.panel.add(p * block.panel_stride));
        let a = block.a.offset(p as isize * block.csa);
        for (r, sum) in acc.iter_mut().enumerate() {
            *sum = _mm512_fmadd_ps(_mm512_set1_ps(*a.offset(r as isize * block.rsa)), b, *sum);
        }
    }
    let mask: __mmask16 = if block.cols >= 16 { u16::MAX } else { (1u16 << block.cols) - 1 };
    for (r, &sum) in acc.iter().enumerate() {
        store_avx512(sum, block.c.offset(r as isize * block.rsc), mask, &block, block.bias);
    }
}

/// Writes `alpha·sum + beta·C`, plus 16 values of `bias` unless it is null,
/// to the floats of `out` that `mask` selects.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn store_avx512(sum: std::arch::x86_64::__m512, out: *mut f32, mask: std::arch::x86_64::__mmask16, block: &Block, bias: *const f32) {
    use std::arch::x86_64::*;
    let mut value = _mm512_mul_ps(sum, _mm512_set1_ps(block.alpha));
    if block.beta != 0.0 {
        value = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, out), _mm512_set1_ps(block.beta), value);
    }
    if !bias.is_null() {
        value = _mm512_add_ps(value, _mm512_maskz_loadu_ps(mask, bias));
    }
    _mm512_mask_storeu_ps(out, mask, value);
}

/// Computes a block of two full panels (MR×32): sixteen accumulators keep
/// both FMA units busy where the one-panel kernel's eight wait on latency.
/// Each element is summed in the same order as by [`avx512`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn avx512_pair<const R: usize>(block: Block) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    for p in 0..block.k {
        let b0 = _mm512_loadu_ps(block.panel.add(p * block.panel_stride));
        let b1 = _mm512_loadu_ps(block.next_panel.add(p * block.panel_stride));
        let a = block.a.offset(p as isize * block.csa);
        for (r, sums) in acc.iter_mut().enumerate() {
            let value = _mm512_set1_ps(*a.offset(r as isize * block.rsa));
            sums[0] = _mm512_fmadd_ps(value, b0, sums[0]);
            sums[1] = _mm512_fmadd_ps(value, b1, sums[1]);
        }
    }
    for (r, sums) in acc.iter().enumerate() {
        for (half, &sum) in sums.iter().enumerate() {
            let out = block.c.offset(r as isize * block.rsc).add(16 * half);
            let bias = if block.bias.is_null() { block.bias } else { block.bias.add(16 * half) };
            store_avx512(sum, out, u16::MAX, &block, bias);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2<const R: usize>(block: Block) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    for p in 0..block.k {
        let b0 = _mm256_loadu_ps(block.panel.add(p * block.panel_stride));
        let b1 = _mm256_loadu_ps(block.panel.add(p * block.panel_stride + 8));
        let a = block.a.offset(p as isize * block.csa);
        for (r, sums) in acc.iter_mut().enumerate() {
            let value = _mm256_set1_ps(*a.offset(r as isize * block.rsa));
            sums[0] = _mm256_fmadd_ps(value, b0, sums[0]);
            sums[1] = _mm256_fmadd_ps(value, b1, sums[1]);
        }
    }
    let alpha = _mm256_set1_ps(block.alpha);
    let beta = _mm256_set1_ps(block.beta);
    for (r, sums) in acc.iter().enumerate() {
        let out = block.c.offset(r as isize * block.rsc);
        if block.cols == 16 {
            for (half, &sum) in sums.iter().enumerate() {
                let at = out.add(8 * half);
                let mut value = _mm256_mul_ps(sum, alpha);
                if block.beta != 0.0 {
                    value = _mm256_fmadd_ps(_mm256_loadu_ps(at), beta, value);
                }
                if !block.bias.is_null() {
                    value = _mm256_add_ps(value, _mm256_loadu_ps(block.bias.add(8 * half)));
                }
                _mm256_storeu_ps(at, value);
            }
        } else {
            let mut row = [0.0f32; 16];
            _mm256_storeu_ps(row.as_mut_ptr(), sums[0]);
            _mm256_storeu_ps(row.as_mut_ptr().add(8), sums[1]);
            store_partial_row(&row, out, block.cols, block.alpha, block.beta, block.bias);
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
unsafe fn simd128<const R: usize>(block: Block) {
    use std::arch::wasm32::*;
    let mut acc = [[f32x4_splat(0.0); 2]; R];
    for p in 0..block.k {
        let b0 = v128_load(block.panel.add(p * block.panel_stride) as *const v128);
        let b1 = v128_load(block.panel.add(p * block.panel_stride + 4) as *const v128);
        let a = block.a.offset(p as isize * block.csa);
        for (r, sums) in acc.iter_mut().enumerate() {
            let value = f32x4_splat(*a.offset(r as isize * block.rsa));
            sums[0] = f32x4_add(sums[0], f32x4_mul(value, b0));
            sums[1] = f32x4_add(sums[1], f32x4_mul(value, b1));
        }
    }
    let alpha = f32x4_splat(block.alpha);
    let beta = f32x4_splat(block.beta);
    for (r, sums) in acc.iter().enumerate() {
        let out = block.c.offset(r as isize * block.rsc);
        if block.cols == 8 {
            for (half, &sum) in sums.iter().enumerate() {
                let at = out.add(4 * half) as *mut v128;
                let mut value = f32x4_mul(sum, alpha);
                if block.beta != 0.0 {
                    value = f32x4_add(value, f32x4_mul(v128_load(at), beta));
                }
                if !block.bias.is_null() {
                    value = f32x4_add(value, v128_load(block.bias.add(4 * half) as *const v128));
                }
                v128_store(at, value);
            }
        } else {
            let mut row = [0.0f32; 8];
            v128_store(row.as_mut_ptr() as *mut v128, sums[0]);
            v128_store(row.as_mut_ptr().add(4) as *mut v128, sums[1]);
            store_partial_row(&row, out, block.cols, block.alpha, block.beta, block.bias);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// C = alpha·A·B + beta·C in f64, on the same strided layout.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        m: usize, k: usize, n: usize, alpha: f32,
        a: &[f32], (rsa, csa): (usize, usize), b: &[f32], (rsb, csb): (usize, usize),
        beta: f32, c: &[f32], rsc: usize,
    ) -> Vec<f32> {
        let mut out = c.to_vec();
        for i in 0..m {
            for j in 0..n {
                let sum: f64 = (0..k).map(|p| a[i * rsa + p * csa] as f64 * b[p * rsb + j * csb] as f64).sum();
                let old = if beta == 0.0 { 0.0 } else { beta as f64 * c[i * rsc + j] as f64 };
                out[i * rsc + j] = (alpha as f64 * sum + old) as f32;
            }
        }
        out
    }

    fn values(len: usize, seed: f32) -> Vec<f32> {
        (0..len).map(|i| (i as f32 * seed).sin()).collect()
    }

    #[test]
    fn kernels_match_f64_reference() {
        let sizes = [1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33, 65];
        for kernel in Kernel::all_available() {
            for &m in &sizes {
                for &k in &[1, 2, 16, 17, 64] {
                    for &n in &sizes {
                        for (transpose_a, transpose_b) in [(false, false), (false, true), (true, false), (true, true)] {
                            for beta in [0.0f32, 0.5] {
                                check(kernel, m, k, n, transpose_a, transpose_b, beta);
                            }
                        }
                    }
                }
            }
        }
    }

    fn check(kernel: Option<Kernel>, m: usize, k: usize, n: usize, transpose_a: bool, transpose_b: bool, beta: f32) {
        let a = values(m * k, 0.37);
        let b = values(k * n, 0.11);
        // C sits inside a wider matrix (row stride n + 3) prefilled with NaN
        // when beta = 0, which must not leak into the result.
        let rsc = n + 3;
        let mut c = if beta == 0.0 { vec![f32::NAN; m * rsc] } else { values(m * rsc, 0.23) };
        let sa = if transpose_a { (1, m) } else { (k, 1) };
        let sb = if transpose_b { (1, k) } else { (n, 1) };
        let want = reference(m, k, n, 1.5, &a, sa, &b, sb, beta, &c, rsc);
        unsafe {
            sgemm_with(
                kernel, m, k, n, 1.5,
                a.as_ptr(), sa.0 as isize, sa.1 as isize,
                b.as_ptr(), sb.0 as isize, sb.1 as isize,
                beta, std::ptr::null(), c.as_mut_ptr(), rsc as isize, 1,
            );
        }
        let case = format!("{kernel:?} m{m} k{k} n{n} ta{transpose_a} tb{transpose_b} beta{beta}");
        for i in 0..m {
            for j in 0..rsc {
                let (got, expected) = (c[i * rsc + j], want[i * rsc + j]);
                if j >= n {
                    assert_eq!(got.to_bits(), expected.to_bits(), "{case}: wrote outside C at ({i},{j})");
                } else {
                    let tolerance = 1e-5 * (1.0 + k as f32);
                    assert!((got - expected).abs() <= tolerance, "{case} at ({i},{j}): {got} vs {expected}");
                }
            }
        }
    }

    #[test]
    fn affine_matches_bias_then_product() {
        for (m, k, n) in [(1, 1, 1), (9, 17, 33), (70, 64, 89), (64, 16, 16)] {
            let (inp, w, bias) = (values(m * k, 0.37), values(k * n, 0.11), values(n, 0.7));
            let mut fused = vec![f32::NAN; m * n];
            affine(m, k, n, &inp, &w, &bias, &mut fused);
            let mut plain: Vec<f32> = bias.iter().copied().cycle().take(m * n).collect();
            unsafe {
                sgemm(m, k, n, 1.0, inp.as_ptr(), k as isize, 1, w.as_ptr(), n as isize, 1, 1.0, plain.as_mut_ptr(), n as isize, 1);
            }
            assert!(fused.iter().zip(&plain).all(|(x, y)| x.to_bits() == y.to_bits()), "m{m} k{k} n{n}");
        }
    }

    #[test]
    fn threads_give_identical_bits() {
        let (m, k, n) = (301, 64, 65);
        let a = values(m * k, 0.37);
        let b = values(k * n, 0.11);
        let product = |threads: usize, kernel: Option<Kernel>| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let mut c = vec![0.0f32; m * n];
            pool.install(|| unsafe {
                sgemm_with(kernel, m, k, n, 1.0, a.as_ptr(), k as isize, 1, b.as_ptr(), n as isize, 1, 0.0, std::ptr::null(), c.as_mut_ptr(), n as isize, 1);
            });
            c
        };
        for kernel in Kernel::all_available() {
            let one = product(1, kernel);
            let three = product(3, kernel);
            assert!(one.iter().zip(&three).all(|(x, y)| x.to_bits() == y.to_bits()), "{kernel:?}");
            check(kernel, m, k, n, false, false, 0.0);
        }
    }

    #[test]
    fn panel_pairs_round_like_single_panels() {
        // n = 32 takes the two-panel kernel where there is one; the same
        // product as two 16-column halves takes the one-panel kernel. B is
        // read in place (row-major) or packed (transposed).
        let (m, k, n, half) = (13, 37, 32, 16);
        let (a, b, bias) = (values(m * k, 0.37), values(k * n, 0.11), values(n, 0.7));
        for kernel in Kernel::all_available().into_iter().flatten() {
            for beta in [0.0f32, 0.5] {
                // Strides of B, and the offset of column j.
                for (rsb, csb) in [(n, 1), (1, k)] {
                    let start = values(m * n, 0.23);
                    let mut whole = start.clone();
                    let mut halves = start.clone();
                    unsafe {
                        sgemm_with(
                            Some(kernel), m, k, n, 1.5,
                            a.as_ptr(), k as isize, 1,
                            b.as_ptr(), rsb as isize, csb as isize,
                            beta, bias.as_ptr(), whole.as_mut_ptr(), n as isize, 1,
                        );
                        for j in [0, half] {
                            sgemm_with(
                                Some(kernel), m, k, half, 1.5,
                                a.as_ptr(), k as isize, 1,
                                b.as_ptr().add(j * csb), rsb as isize, csb as isize,
                                beta, bias.as_ptr().add(j), halves.as_mut_ptr().add(j), n as isize, 1,
                            );
                        }
                    }
                    let same = whole.iter().zip(&halves).all(|(x, y)| x.to_bits() == y.to_bits());
                    assert!(same, "{kernel:?} beta {beta} B strides ({rsb}, {csb})");
                }
            }
        }
    }

    #[test]
    fn picks_simd_kernel_on_avx2() {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            assert_ne!(Kernel::detect(), None);
        }
    }
}
