//! Parallel loops for the CPU kernels, on candle's own worker pool.
//!
//! candle 0.11 runs its CPU ops on a barrier pool whose workers spin for about a millisecond
//! after each op before parking. Kernels on a second pool (rayon's) then share the cores with
//! those spinning workers: on two cores, a third of a diffusion training step went to the spin.
//! Running scarce's kernels on the same pool (the calling thread plus candle's workers) keeps
//! one thread per core.

#![allow(unsafe_code)] // disjoint writes through a shared pointer; each use says why.

use candle_core::utils::barrier_pool;

/// Calls `f(i)` for every `i < n`, spread over the pool (items are taken in small chunks
/// from a shared cursor, so uneven items balance).
pub(crate) fn for_each(n: usize, f: impl Fn(usize) + Sync) {
    barrier_pool().execute_chunked(n, |range| range.for_each(&f));
}

/// Calls `f(i, chunk)` for each `len`-element chunk of `data` (the last may be shorter).
pub(crate) fn chunks_mut<T: Send>(data: &mut [T], len: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    let total = data.len();
    if len == 0 || total == 0 {
        return;
    }
    let base = SharedMut(data.as_mut_ptr());
    for_each(total.div_ceil(len), |i| {
        let start = i * len;
        // SAFETY: chunk i covers start..start + n within data, and each chunk is handed to
        // exactly one call.
        let chunk =
            unsafe { std::slice::from_raw_parts_mut(base.at(start), len.min(total - start)) };
        f(i, chunk)
    });
}

/// [`chunks_mut`] that also returns each call's result, in chunk order.
pub(crate) fn map_chunks_mut<T: Send, R: Send + Default + Clone>(
    data: &mut [T],
    len: usize,
    f: impl Fn(usize, &mut [T]) -> R + Sync,
) -> Vec<R> {
    let mut out = vec![R::default(); data.len().div_ceil(len.max(1))];
    let results = SharedMut(out.as_mut_ptr());
    chunks_mut(data, len, |i, chunk| {
        // SAFETY: result i is written by chunk i's call alone.
        unsafe { *results.at(i) = f(i, chunk) }
    });
    out
}

/// `f(i)` for every `i < n`, in order.
pub(crate) fn map<R: Send + Default + Clone>(n: usize, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    let mut out = vec![R::default(); n];
    chunks_mut(&mut out, 1, |i, slot| slot[0] = f(i));
    out
}

/// Samples a weight gradient sums into one partial (see [`partial_sums`]).
pub(crate) const SAMPLES_PER_PARTIAL: usize = 2;

/// `Σ` of `f` over `n` items in fixed runs of `per_part`: `f(run, partial)` adds the run's
/// items into a zeroed partial of `len`, and the partials are then added in order. The
/// result does not depend on which thread ran what, so a resumed run reaches bit-identical
/// weights.
pub(crate) fn partial_sums<T: candle_core::WithDType>(
    n: usize,
    per_part: usize,
    len: usize,
    f: impl Fn(std::ops::Range<usize>, &mut [T]) + Sync,
) -> Vec<T> {
    let per_part = per_part.max(1);
    let parts = map(n.div_ceil(per_part), |part| {
        let mut partial = vec![T::zero(); len];
        f(
            part * per_part..((part + 1) * per_part).min(n),
            &mut partial,
        );
        partial
    });
    let mut sum = vec![T::zero(); len];
    for part in &parts {
        sum.iter_mut().zip(part).for_each(|(a, &b)| *a += b);
    }
    sum
}

/// `len` zeros, written by the pool's threads (`vec![0; len]` zeroes on the calling thread
/// alone, while the pool waits).
pub(crate) fn zeroed<T: candle_core::WithDType>(len: usize) -> Vec<T> {
    const CHUNK: usize = 1 << 16;
    let mut v: Vec<T> = Vec::with_capacity(len);
    let base = SharedMut(v.as_mut_ptr());
    for_each(len.div_ceil(CHUNK), |i| {
        let start = i * CHUNK;
        // SAFETY: chunk i of the capacity is written by this call alone; all-zero bytes are
        // the value zero of every candle dtype.
        unsafe { base.at(start).write_bytes(0, CHUNK.min(len - start)) }
    });
    // SAFETY: every element was written above.
    unsafe { v.set_len(len) };
    v
}

/// A raw pointer shared by calls that write disjoint elements.
pub(crate) struct SharedMut<T>(pub *mut T);
impl<T> Clone for SharedMut<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SharedMut<T> {}
// SAFETY: only used by calls whose writes never overlap (see each use).
unsafe impl<T: Send> Send for SharedMut<T> {}
unsafe impl<T: Send> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    /// The pointer to element `i` (a method, so closures capture the whole wrapper).
    pub fn at(self, i: usize) -> *mut T {
        self.0.wrapping_add(i)
    }
}

/// A NaN whose payload no arithmetic produces (computed NaNs carry the canonical payload).
#[cfg(debug_assertions)]
const UNWRITTEN: u32 = 0x7fa5_c0de;

/// An empty `Vec<f32>` with room for `len` values that the caller's parallel tasks write
/// through raw pointers before [`finish_written`] sets the length. In debug builds (tests)
/// the room is first filled with a marker so that `finish_written` can check that every
/// value was written.
pub(crate) fn unwritten_f32(len: usize) -> Vec<f32> {
    #[allow(unused_mut)]
    let mut v: Vec<f32> = Vec::with_capacity(len);
    #[cfg(debug_assertions)]
    {
        v.resize(len, f32::from_bits(UNWRITTEN));
        v.clear();
    }
    v
}

/// Sets the length of a vector from [`unwritten_f32`] to `len`, asserting in debug builds
/// that every value was written (none still holds the marker).
///
/// # Safety
/// The caller's tasks must have written all `len` values.
pub(crate) unsafe fn finish_written(v: &mut Vec<f32>, len: usize, what: &str) {
    debug_assert!(v.capacity() >= len);
    // SAFETY: the caller guarantees all `len` values were written (debug builds check).
    unsafe { v.set_len(len) };
    #[cfg(debug_assertions)]
    if let Some(i) = v.iter().position(|x| x.to_bits() == UNWRITTEN) {
        panic!("{what}: value {i} of {len} was never written");
    }
    #[cfg(not(debug_assertions))]
    let _ = what;
}
