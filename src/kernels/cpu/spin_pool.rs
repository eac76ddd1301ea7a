//! The native worker threads behind [`super::threads`]. A training step
//! runs a few hundred short parallel kernels, with serial work between
//! them. A pool whose threads sleep between kernels pays a wake-up for
//! each one, so these threads poll for a while after each kernel before
//! they sleep (waking every 10 ms to check). On a 2-core virtual machine this raised the standard
//! preset's two-thread rate by about 9% over rayon's pool (medians of ten
//! alternating runs).
//!
//! One kernel runs at a time. A kernel started while another runs (from
//! another thread, or from inside one of its parts) runs its parts on the
//! calling thread, which gives the same result.

use std::cell::Cell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering::SeqCst};
use std::sync::OnceLock;
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// How long an idle thread polls for the next kernel before it sleeps.
const SPIN: Duration = Duration::from_micros(200);

/// One parallel kernel: its parts and what has been claimed and finished.
struct Region<'a> {
    work: &'a (dyn Fn(usize) + Sync),
    parts: usize,
    next: AtomicUsize,
    done: AtomicUsize,
    panicked: AtomicBool,
}

impl Region<'_> {
    /// Runs parts until none is left unclaimed.
    fn help(&self) {
        loop {
            let part = self.next.fetch_add(1, SeqCst);
            if part >= self.parts {
                return;
            }
            if catch_unwind(AssertUnwindSafe(|| (self.work)(part))).is_err() {
                self.panicked.store(true, SeqCst);
            }
            self.done.fetch_add(1, SeqCst);
        }
    }
}

struct Pool {
    /// The running kernel, or null. Its lifetime is erased; `run` keeps it
    /// alive until no helper is inside it.
    region: AtomicPtr<Region<'static>>,
    /// Counter bumped for every kernel, which a waiting helper polls to detect a new one.
    epoch: AtomicUsize,
    /// Helpers between reading `region` and leaving it.
    inside: AtomicUsize,
    /// Set while a kernel runs.
    running: AtomicBool,
    helpers: Vec<Thread>,
}

static POOL: OnceLock<&'static Pool> = OnceLock::new();

thread_local! {
    /// Set while this thread runs a part, so nested kernels run inline.
    static IN_PART: Cell<bool> = const { Cell::new(false) };
}

fn pool(threads: usize) -> &'static Pool {
    POOL.get_or_init(|| {
        let helpers = (1..threads)
            .map(|index| {
                let handle = thread::Builder::new()
                    .name(format!("lnlab kernel {index}"))
                    .spawn(|| helper_loop(POOL.wait()))
                    .expect("cannot start a kernel thread");
                handle.thread().clone()
            })
            .collect();
        Box::leak(Box::new(Pool {
            region: AtomicPtr::new(std::ptr::null_mut()),
            epoch: AtomicUsize::new(0),
            inside: AtomicUsize::new(0),
            running: AtomicBool::new(false),
            helpers,
        }))
    })
}

fn helper_loop(pool: &Pool) {
    IN_PART.set(true);
    let mut seen = pool.epoch.load(SeqCst);
    loop {
        let idle_since = Instant::now();
        while pool.epoch.load(SeqCst) == seen {
            if idle_since.elapsed() < SPIN {
                std::hint::spin_loop();
            } else {
                thread::park_timeout(Duration::from_millis(10));
            }
        }
        seen = pool.epoch.load(SeqCst);
        pool.inside.fetch_add(1, SeqCst);
        let region = pool.region.load(SeqCst);
        if !region.is_null() {
            // SAFETY: `run` keeps the region alive while `inside` is not zero.
            unsafe { &*region }.help();
        }
        pool.inside.fetch_sub(1, SeqCst);
    }
}

/// Runs `work(0)` to `work(parts - 1)`, on `threads` threads (this one
/// included) when no other kernel is running.
pub fn run(threads: usize, parts: usize, work: &(dyn Fn(usize) + Sync)) {
    let inline = || (0..parts).for_each(work);
    if threads <= 1 || parts <= 1 || IN_PART.get() {
        return inline();
    }
    let pool = pool(threads);
    if pool.running.swap(true, SeqCst) {
        return inline();
    }
    let region = Region { work, parts, next: AtomicUsize::new(0), done: AtomicUsize::new(0), panicked: AtomicBool::new(false) };
    // SAFETY: only the lifetime is erased; the pointer is cleared, and every
    // helper has left, before `region` goes out of scope below.
    let erased = &region as *const Region<'_> as *mut Region<'static>;
    pool.region.store(erased, SeqCst);
    pool.epoch.fetch_add(1, SeqCst);
    for helper in &pool.helpers {
        helper.unpark();
    }
    IN_PART.set(true);
    region.help();
    IN_PART.set(false);
    wait_until(|| region.done.load(SeqCst) >= parts);
    pool.region.store(std::ptr::null_mut(), SeqCst);
    wait_until(|| pool.inside.load(SeqCst) == 0);
    pool.running.store(false, SeqCst);
    if region.panicked.load(SeqCst) {
        resume_unwind(Box::new("a part of a parallel kernel panicked"));
    }
}

/// Polls `done` until it holds, giving the core away after a while in
/// case the thread it waits for was descheduled.
fn wait_until(done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        if start.elapsed() < SPIN {
            std::hint::spin_loop();
        } else {
            thread::yield_now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_runs_once() {
        let seen: Vec<AtomicUsize> = (0..100).map(|_| AtomicUsize::new(0)).collect();
        for _ in 0..200 {
            run(3, seen.len(), &|part| {
                seen[part].fetch_add(1, SeqCst);
            });
        }
        assert!(seen.iter().all(|n| n.load(SeqCst) == 200));
    }

    #[test]
    fn nested_kernels_run_inline() {
        let total = AtomicUsize::new(0);
        run(2, 4, &|_| {
            run(2, 5, &|_| {
                total.fetch_add(1, SeqCst);
            });
        });
        assert_eq!(total.load(SeqCst), 20);
    }

    #[test]
    fn panic_in_a_part_reaches_the_caller() {
        let result = catch_unwind(|| run(2, 8, &|part| assert_ne!(part, 5, "part five fails")));
        assert!(result.is_err());
        // The pool still runs parts on more than one thread afterwards.
        let threads = std::sync::Mutex::new(std::collections::HashSet::new());
        for _ in 0..100 {
            run(2, 64, &|_| {
                threads.lock().unwrap().insert(thread::current().id());
                std::thread::sleep(Duration::from_micros(50));
            });
        }
        assert!(threads.into_inner().unwrap().len() >= 2, "every part ran on one thread");
    }
}
