//! The mutation-fuzz driver of `tests/fuzz.rs`: bounded, deterministic and on stable Rust.
//!
//! `cargo fuzz` needs a nightly compiler and an instrumented build, and its coverage-guided runs
//! depend on the corpus they grew. This driver runs inside `cargo test` instead: input `i` of a
//! target is a pure function of the target's seed inputs and `i` (a ChaCha stream per input), so
//! a failure is reproduced from its number alone, and a count of inputs means the same inputs on
//! every machine.
//!
//! Each input is a set of files ("parts": a zip shard and its `labels.txt`, the two IDX files of a
//! split, ...) made by stacking random byte-level mutations on a seed, written into one folder
//! and handed to the target, which opens them through the project's real entry points. A rejected
//! input is fine; the test fails when an input panics, runs longer than [`HANG_AFTER`] (a
//! watchdog ends the process: a hung parser cannot be interrupted), or holds more than
//! [`MEMORY_LIMIT`] at once (this test binary counts every allocation, per thread). The failing
//! input is copied next to the message so it can be kept as a regression case under
//! `tests/fixtures/fuzz/<target>/<case>/`, which every run replays first.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Inputs per target when `EFFNETV2_FUZZ_INPUTS` is unset: what CI runs, 1-4 seconds per target
/// in the test profile on 2 cores. `tools/fuzz.sh` runs 100,000.
const DEFAULT_INPUTS: u64 = 2_000;
/// An input still running after this long is a hang. Inputs take milliseconds; the margin covers
/// a debug build on a loaded 2-core machine.
const HANG_AFTER: Duration = Duration::from_secs(10);
/// Most memory one input may hold at once. The image decoder's budget is 256 MiB for the stored
/// pixels and its working memory together (`effnetv2::data::decode`), and the conversion to RGB
/// holds up to 256 MiB more; an input above this took a size from its bytes without a bound.
const MEMORY_LIMIT: usize = 768 << 20;
/// Single allocations above this are refused, which aborts the process with the allocator's
/// "memory allocation of N bytes failed" (the input is on disk, see [`fuzz`]); without the
/// refusal an allocation sized by a corrupt header could take the machine's memory before the
/// per-input check sees it.
const REFUSED_ALLOCATION: usize = 2 * MEMORY_LIMIT;
/// Mutated parts are cut to this length, so that repeated duplication stays cheap.
const MAX_PART_LEN: usize = 1 << 20;
/// Most mutations stacked on one input.
const MAX_MUTATIONS: usize = 12;

/// One fuzz target: how to make valid inputs and how to feed one to the code under test.
pub struct Target {
    /// Names the test's report line, its work folder and `tests/fixtures/fuzz/<name>/`.
    pub name: &'static str,
    /// File names of an input's parts (may contain `/`), written into one folder.
    pub parts: &'static [&'static str],
    /// Valid inputs, one byte string per part. Each must be accepted by `run` (a target whose
    /// seeds fail would only exercise the first check of its parser).
    pub seeds: Vec<Vec<Vec<u8>>>,
    /// Recomputes checksums after mutating (PNG chunk CRCs, a checkpoint's tensor CRCs), so that
    /// most inputs reach the code behind the checksum instead of all failing at it. Applied to 9
    /// inputs in 10.
    pub repair: Option<fn(&mut [Vec<u8>])>,
    /// Opens the input in `dir` (its parts under their names) the way the project does. `Err` is
    /// a rejected input; targets assert what they expect of errors (that they name the file).
    pub run: fn(&Path) -> Result<(), String>,
}

/// Runs the regression cases of `target`, its seeds, then `EFFNETV2_FUZZ_INPUTS` mutated inputs
/// starting at number `EFFNETV2_FUZZ_FROM` (0), and prints one line of counts. Panics with the
/// input number and the path of a saved copy at the first failing input.
pub fn fuzz(target: &Target) {
    let inputs = env_count("EFFNETV2_FUZZ_INPUTS", DEFAULT_INPUTS);
    let first = env_count("EFFNETV2_FUZZ_FROM", 0);
    let work = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("fuzz")
        .join(target.name);
    let dir = work.join("input");
    record_panics();
    if dir.exists() {
        std::fs::remove_dir_all(&dir).expect("clearing the fuzz input folder");
    }
    let watch = Watch::default();
    let started = Instant::now();
    let mut stats = Stats::default();
    std::thread::scope(|scope| {
        scope.spawn(|| watchdog(&watch, target.name, &dir));
        // Stops the watchdog however this closure ends, so that a failure is reported instead
        // of waiting for the watchdog forever.
        let _stop = Stop(&watch.done);
        let check = |parts: &[Vec<u8>], label: &str| {
            run_one(target, &dir, parts, label, &watch)
                .unwrap_or_else(|reason| fail(target, &work, parts, label, &reason))
        };
        let cases = regression_cases(target);
        for (case, parts) in &cases {
            check(parts, &format!("regression case {case}"));
        }
        for (n, seed) in target.seeds.iter().enumerate() {
            if let Some(error) = check(seed, &format!("seed {n}")).error {
                panic!("fuzz {}: seed {n} is rejected: {error}", target.name);
            }
        }
        for i in first..first + inputs {
            stats.add(&check(&mutated(target, i), &format!("input {i}")));
        }
        println!(
            "fuzz {}: {inputs} inputs from number {first}, {} accepted, {} rejected \
             ({} regression cases and {} seeds before them); {:.1} s, slowest input {:.0} ms, \
             most memory held by one input {:.1} MiB",
            target.name,
            stats.accepted,
            stats.rejected,
            cases.len(),
            target.seeds.len(),
            started.elapsed().as_secs_f64(),
            stats.slowest.as_secs_f64() * 1e3,
            stats.most_memory as f64 / (1 << 20) as f64,
        );
    });
}

/// One input that ran to its end.
struct Ran {
    /// Why the target rejected it, if it did.
    error: Option<String>,
    time: Duration,
    /// Most bytes held at once.
    memory: usize,
}

/// Counts over the mutated inputs.
#[derive(Default)]
struct Stats {
    accepted: usize,
    rejected: usize,
    slowest: Duration,
    most_memory: usize,
}

impl Stats {
    fn add(&mut self, ran: &Ran) {
        match ran.error {
            None => self.accepted += 1,
            Some(_) => self.rejected += 1,
        }
        self.slowest = self.slowest.max(ran.time);
        self.most_memory = self.most_memory.max(ran.memory);
    }
}

/// Saves a failing input under the target's work folder and fails the test with `reason`.
fn fail(target: &Target, work: &Path, parts: &[Vec<u8>], label: &str, reason: &str) -> ! {
    let saved = work.join(label.replace(' ', "-"));
    if saved.exists() {
        std::fs::remove_dir_all(&saved).expect("replacing an old saved input");
    }
    write_parts(&saved, target.parts, parts);
    panic!(
        "fuzz {}: {label} failed: {reason}\nthe input is saved in {} (replay it with \
         EFFNETV2_FUZZ_FROM=<its number> EFFNETV2_FUZZ_INPUTS=1; keep it as a regression case by \
         copying the folder to tests/fixtures/fuzz/{}/<case>/)",
        target.name,
        saved.display(),
        target.name
    )
}

/// Writes `parts` into `dir` and runs the target on them under the watchdog and the memory
/// count; `Err` says why the input fails the test.
fn run_one(
    target: &Target,
    dir: &Path,
    parts: &[Vec<u8>],
    label: &str,
    watch: &Watch,
) -> Result<Ran, String> {
    write_parts(dir, target.parts, parts);
    *watch.running.lock().unwrap() = Some((label.to_owned(), Instant::now()));
    let baseline = memory::start();
    let start = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(|| (target.run)(dir)));
    let time = start.elapsed();
    let memory = memory::peak_since(baseline);
    *watch.running.lock().unwrap() = None;
    let Ok(result) = result else {
        return Err(LAST_PANIC.with(|last| last.borrow().clone()));
    };
    if memory > MEMORY_LIMIT {
        return Err(format!(
            "held {} MiB at once, more than the {} MiB limit",
            memory >> 20,
            MEMORY_LIMIT >> 20
        ));
    }
    Ok(Ran {
        error: result.err(),
        time,
        memory,
    })
}

thread_local! {
    /// The last panic on this thread, with its location, as the panic hook printed it.
    static LAST_PANIC: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Wraps the panic hook so that a caught panic's message and location can go into the failure
/// report (the payload alone has no location).
fn record_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = LAST_PANIC.try_with(|last| *last.borrow_mut() = info.to_string());
            default(info);
        }));
    });
}

fn write_parts(dir: &Path, names: &[&str], parts: &[Vec<u8>]) {
    for (name, bytes) in names.iter().zip(parts) {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("creating the fuzz input folder");
        }
        std::fs::write(&path, bytes)
            .unwrap_or_else(|e| panic!("writing fuzz input {}: {e}", path.display()));
    }
}

fn env_count(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a count")),
        Err(_) => default,
    }
}

/// `tests/fixtures/fuzz/<target>/<case>/<part>`: inputs that once failed, sorted by case name.
fn regression_cases(target: &Target) -> Vec<(String, Vec<Vec<u8>>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fuzz")
        .join(target.name);
    let Ok(entries) = std::fs::read_dir(&root) else {
        return Vec::new();
    };
    let mut cases: Vec<(String, Vec<Vec<u8>>)> = entries
        .map(|entry| {
            let case = entry.expect("listing regression cases").path();
            let parts = target
                .parts
                .iter()
                .map(|part| {
                    std::fs::read(case.join(part)).unwrap_or_else(|e| {
                        panic!("regression case {} lacks part {part}: {e}", case.display())
                    })
                })
                .collect();
            let name = case.file_name().unwrap().to_string_lossy().into_owned();
            (name, parts)
        })
        .collect();
    cases.sort();
    cases
}

/// The shared state between the fuzz loop and its watchdog.
#[derive(Default)]
struct Watch {
    /// The input now running and since when.
    running: Mutex<Option<(String, Instant)>>,
    done: AtomicBool,
}

/// Sets its flag when dropped.
struct Stop<'a>(&'a AtomicBool);

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Ends the process when one input runs past [`HANG_AFTER`]. The message goes straight to the
/// standard error stream, which the test harness does not capture, before the abort.
fn watchdog(watch: &Watch, target: &str, dir: &Path) {
    while !watch.done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        let running = watch.running.lock().unwrap().clone();
        if let Some((label, since)) = running {
            if since.elapsed() > HANG_AFTER {
                let _ = writeln!(
                    std::io::stderr(),
                    "fuzz {target}: {label} has run for more than {} s (a hang); the input is in {}",
                    HANG_AFTER.as_secs(),
                    dir.display()
                );
                std::process::abort();
            }
        }
    }
}

/// Input `number` of `target`: a seed with 1 to [`MAX_MUTATIONS`] mutations stacked on it.
fn mutated(target: &Target, number: u64) -> Vec<Vec<u8>> {
    let mut rng = ChaCha8Rng::seed_from_u64(fnv1a(target.name.as_bytes()));
    rng.set_stream(number);
    let mut input = target.seeds.choose(&mut rng).unwrap().clone();
    let mut count = 1;
    while count < MAX_MUTATIONS && rng.gen_bool(0.6) {
        count += 1;
    }
    for _ in 0..count {
        let part = rng.gen_range(0..input.len());
        let donor = &target.seeds.choose(&mut rng).unwrap()[part];
        mutate(&mut rng, &mut input[part], donor);
        input[part].truncate(MAX_PART_LEN);
    }
    if let Some(repair) = target.repair {
        if rng.gen_bool(0.9) {
            repair(&mut input);
        }
    }
    input
}

/// FNV-1a, a hash that is the same on every platform and Rust version (unlike `DefaultHasher`).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Values that sit on the edges parsers get wrong: zero, one, sign bits, all ones.
const INTERESTING: [u64; 12] = [
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x7fff_ffff_ffff_ffff,
    u64::MAX,
];

/// Numbers as text, for the digits inside JSON and other text formats.
const INTERESTING_NUMBERS: [&str; 14] = [
    "0",
    "-1",
    "1",
    "65536",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "9007199254740993",
    "1e308",
    "-1e308",
    "1e-320",
    "0.0",
    "NaN",
    "",
];

/// Applies one random mutation to `bytes`; `donor` (a seed's same part) feeds splices.
fn mutate(rng: &mut ChaCha8Rng, bytes: &mut Vec<u8>, donor: &[u8]) {
    let len = bytes.len();
    let pos = |rng: &mut ChaCha8Rng| rng.gen_range(0..=len);
    match rng.gen_range(0..10) {
        // Flip one bit.
        0 if len > 0 => {
            let i = rng.gen_range(0..len);
            bytes[i] ^= 1 << rng.gen_range(0..8);
        }
        // One byte to an interesting value or a small step away from what it was.
        1 if len > 0 => {
            let i = rng.gen_range(0..len);
            let step = rng.gen_range(1..=35);
            bytes[i] = match rng.gen_range(0..3) {
                0 => INTERESTING[rng.gen_range(0..5)] as u8,
                1 => bytes[i].wrapping_add(step),
                _ => bytes[i].wrapping_sub(step),
            };
        }
        // A 2-, 4- or 8-byte field (a length, a count, an offset) to an edge value, either order.
        2 => {
            let width = [2, 4, 8][rng.gen_range(0..3)];
            if len >= width {
                let i = rng.gen_range(0..=len - width);
                let value = if rng.gen_bool(0.8) {
                    INTERESTING[rng.gen_range(0..INTERESTING.len())]
                } else {
                    1 << rng.gen_range(0..64)
                };
                let le = value.to_le_bytes();
                let field = &mut bytes[i..i + width];
                field.copy_from_slice(&le[..width]);
                if rng.gen() {
                    field.reverse();
                }
            }
        }
        // Truncate.
        3 => bytes.truncate(pos(rng)),
        // Delete a range.
        4 if len > 0 => {
            let start = rng.gen_range(0..len);
            let end = rng.gen_range(start..=len.min(start + 64));
            bytes.drain(start..end);
        }
        // Duplicate a chunk somewhere else (repeated records, doubled headers).
        5 if len > 0 => {
            let start = rng.gen_range(0..len);
            let end = rng.gen_range(start..=len.min(start + 256));
            let chunk = bytes[start..end].to_vec();
            let at = pos(rng);
            bytes.splice(at..at, chunk);
        }
        // Insert random bytes.
        6 => {
            let at = pos(rng);
            let new: Vec<u8> = (0..rng.gen_range(1..=16)).map(|_| rng.gen()).collect();
            bytes.splice(at..at, new);
        }
        // Splice: keep a prefix, continue with a seed's bytes from another offset.
        7 if !donor.is_empty() => {
            let at = pos(rng);
            let from = rng.gen_range(0..donor.len());
            bytes.truncate(at);
            bytes.extend_from_slice(&donor[from..]);
        }
        // Replace a run of ASCII digits (a number in JSON or a text file) with an edge number.
        _ => {
            let digits: Vec<usize> = (0..len).filter(|&i| bytes[i].is_ascii_digit()).collect();
            if let Some(&i) = digits.choose(rng) {
                let mut start = i;
                while start > 0 && bytes[start - 1].is_ascii_digit() {
                    start -= 1;
                }
                let mut end = i;
                while end < len && bytes[end].is_ascii_digit() {
                    end += 1;
                }
                let number = INTERESTING_NUMBERS.choose(rng).unwrap();
                bytes.splice(start..end, number.bytes());
            }
        }
    }
}

/// Counting global allocator: live and peak bytes per thread, and the refusal of single
/// allocations above [`REFUSED_ALLOCATION`]. Per thread because the targets run in parallel,
/// one per test thread, and none of the code they call allocates on another thread.
mod memory {
    use super::*;

    thread_local! {
        static LIVE: Cell<isize> = const { Cell::new(0) };
        static PEAK: Cell<isize> = const { Cell::new(0) };
    }

    struct Counting;

    /// Written before a refusal ends the process: the standard library's abort message gives the
    /// size but not which input asked for it.
    const REFUSAL: &str = concat!(
        "fuzz: refusing a single allocation above the limit; the input that asked for it is in ",
        env!("CARGO_TARGET_TMPDIR"),
        "/fuzz/<target>/input\n"
    );

    /// Says why the process is about to end, without allocating (this runs inside the allocator).
    fn refuse() -> *mut u8 {
        // SAFETY: writes a static buffer of the given length to the standard error descriptor.
        unsafe { libc::write(2, REFUSAL.as_ptr().cast(), REFUSAL.len()) };
        std::ptr::null_mut()
    }

    #[global_allocator]
    static ALLOCATOR: Counting = Counting;

    fn grow(bytes: usize) {
        let _ = LIVE.try_with(|live| {
            let now = live.get().wrapping_add(bytes as isize);
            live.set(now);
            let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
        });
    }

    fn shrink(bytes: usize) {
        let _ = LIVE.try_with(|live| live.set(live.get().wrapping_sub(bytes as isize)));
    }

    // SAFETY: every call is forwarded to the system allocator with the caller's layout; the
    // counting touches only const-initialised thread-locals without destructors, which neither
    // allocate nor unwind.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if layout.size() > REFUSED_ALLOCATION {
                return refuse();
            }
            let p = System.alloc(layout);
            if !p.is_null() {
                grow(layout.size());
            }
            p
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            if layout.size() > REFUSED_ALLOCATION {
                return refuse();
            }
            let p = System.alloc_zeroed(layout);
            if !p.is_null() {
                grow(layout.size());
            }
            p
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            System.dealloc(ptr, layout);
            shrink(layout.size());
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            if new_size > REFUSED_ALLOCATION {
                return refuse();
            }
            let p = System.realloc(ptr, layout, new_size);
            if !p.is_null() {
                shrink(layout.size());
                grow(new_size);
            }
            p
        }
    }

    /// Starts measuring this thread's peak; returns the baseline to pass to [`peak_since`].
    pub fn start() -> isize {
        let live = LIVE.with(Cell::get);
        PEAK.with(|peak| peak.set(live));
        live
    }

    /// Most bytes this thread held at once since [`start`], above its baseline.
    pub fn peak_since(baseline: isize) -> usize {
        PEAK.with(Cell::get).saturating_sub(baseline).max(0) as usize
    }
}
