//! Kill anywhere: a training run killed with SIGKILL at random moments (while it compiles,
//! trains, writes checkpoints or evaluates) and resumed each time ends exactly where an
//! uninterrupted run ends: the same weights, optimizer slots, EMA, step and random key (every
//! checkpoint tensor bit-identical), the same data cursor, and the same metrics log once
//! resolved (every step's loss, accuracy and learning rate; every evaluation).
//!
//! `EFFNETV2_KILLS` sets the number of kills (default 4 here; `tools/kill_soak.sh` runs 20); the
//! run is 0.1 epoch per kill, so that the kills land before it completes. The killed run starts
//! with an empty executable cache, so its first attempts are killed while compiling.

mod run_common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use effnetv2::report::plot::RunLog;
use rand::{Rng, SeedableRng};
use run_common::final_state;

const DEFAULT_KILLS: usize = 4;

/// The run: `tiny` over two stages for `epochs`, a checkpoint every 5 steps, 2 steps per call,
/// with the user cache `cache` (`None`: the default one).
fn train(out: &Path, epochs: f64, cache: Option<&Path>) -> Command {
    let options = "--batch 24 --stages 2 --checkpoint-every 5 --steps-per-call 2 \
                   --eval-limit 300 --workers 2 --seed 9 --resume";
    let mut command = Command::new(env!("CARGO_BIN_EXE_effnetv2"));
    command
        .arg("train")
        .args(options.split_whitespace())
        .arg("--epochs")
        .arg(epochs.to_string())
        .arg("--out")
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(cache) = cache {
        command.env("EFFNETV2_CACHE", cache);
    }
    command
}

/// A user cache sharing the installed plugins and data of the default one, with no executables.
fn cache_without_executables(root: &Path) -> PathBuf {
    let shared = effnetv2::data::cache_dir().unwrap();
    let cache = root.join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    for entry in ["plugins", "fashion-mnist"] {
        std::os::unix::fs::symlink(shared.join(entry), cache.join(entry)).unwrap();
    }
    cache
}

/// The resolved metrics log: each step's and each evaluation's numbers (timings left out).
fn resolved_metrics(out: &Path) -> (Vec<String>, Vec<String>) {
    let log = RunLog::read(&out.into()).unwrap();
    let steps = log
        .steps
        .iter()
        .map(|s| {
            format!(
                "{} {} {} {:?} {:?} {:?}",
                s.step, s.stage, s.image_size, s.loss, s.accuracy, s.lr
            )
        })
        .collect();
    let evals = log
        .evals
        .iter()
        .map(|e| {
            format!(
                "{} {} {:?} {:?} {}",
                e.step, e.stage, e.top1, e.top5, e.images
            )
        })
        .collect();
    (steps, evals)
}

fn cursor(out: &Path) -> serde_json::Value {
    let dir = effnetv2::trainer::checkpoint::latest(out.join("checkpoints"))
        .unwrap()
        .unwrap();
    let meta: serde_json::Value = effnetv2::trainer::checkpoint::metadata(dir).unwrap();
    meta["cursor"].clone()
}

#[test]
fn a_run_killed_at_random_moments_ends_as_an_uninterrupted_one() {
    let kills: usize = std::env::var("EFFNETV2_KILLS").map_or(DEFAULT_KILLS, |v| {
        v.parse().expect("EFFNETV2_KILLS is a count")
    });
    let epochs = 0.1 * kills.max(2) as f64;
    let root = tempfile::tempdir().unwrap();
    // First, so that the plugin and the data set are installed.
    let uninterrupted = root.path().join("uninterrupted");
    let reference = train(&uninterrupted, epochs, None).output().unwrap();
    assert!(reference.status.success(), "{reference:?}");

    let cache = cache_without_executables(root.path());
    let killed = root.path().join("killed");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2026);
    let mut done = 0;
    let mut attempts = 0;
    while done < kills {
        attempts += 1;
        assert!(attempts <= 4 * kills, "{done} kills in {attempts} attempts");
        let delay = Duration::from_secs_f64(rng.gen_range(0.2..6.0));
        let mut child = train(&killed, epochs, Some(&cache)).spawn().unwrap();
        let started = Instant::now();
        let exited = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if started.elapsed() >= delay {
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        match exited {
            // Finished before its kill: the run is complete.
            Some(status) => {
                let output = child.wait_with_output().unwrap();
                assert!(
                    status.success(),
                    "{}",
                    String::from_utf8_lossy(&output.stderr)
                );
                break;
            }
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                done += 1;
            }
        }
    }
    let last = train(&killed, epochs, Some(&cache)).output().unwrap();
    assert!(
        last.status.success(),
        "{}",
        String::from_utf8_lossy(&last.stderr)
    );

    println!("{done} kills in {attempts} attempts, then a resume that completed the run");
    assert!(
        done >= kills.min(2),
        "only {done} kills landed before the run completed"
    );
    assert_eq!(final_state(&killed), final_state(&uninterrupted));
    assert_eq!(cursor(&killed), cursor(&uninterrupted));
    assert_eq!(resolved_metrics(&killed), resolved_metrics(&uninterrupted));
}
