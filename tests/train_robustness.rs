//! A run survives what goes wrong around it: a damaged newest checkpoint (resumed from the one
//! before it, ending bit-identical to an undamaged run), a second trainer on the same directory
//! (refused), a full disk while checkpointing (a clear error, the earlier checkpoints intact)
//! and a loss that stops being finite (stopped with the checkpoint to go back to, or skipped and
//! counted with `skip_nonfinite`).

mod run_common;

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::AtomicBool;

use effnetv2::trainer::checkpoint;
use effnetv2::trainer::config::RunConfig;
use effnetv2::trainer::events::{Discard, Event, EventSink};
use effnetv2::trainer::run::{train, RunSummary};
use run_common::{final_state, short_run};

/// 12 steps in one stage, a checkpoint every 4.
fn config(out: &Path) -> RunConfig {
    RunConfig {
        checkpoint_every: 4,
        ..short_run(out, 12, 1)
    }
}

/// Keeps the events that are not steps, as lines.
#[derive(Default)]
struct Notes(Vec<String>);

impl EventSink for Notes {
    fn emit(&mut self, event: &Event) -> anyhow::Result<()> {
        match event {
            Event::Resumed { checkpoint, step } => {
                self.0.push(format!("resumed {} {step}", checkpoint.name()))
            }
            Event::CheckpointDamaged { checkpoint, reason } => self
                .0
                .push(format!("damaged {}: {reason}", checkpoint.name())),
            Event::NonFiniteSkipped(r) => self.0.push(format!("skipped {}", r.step)),
            Event::LockBroken { holder, .. } => self.0.push(format!("lock broken: {holder}")),
            _ => {}
        }
        Ok(())
    }
}

fn run(config: &RunConfig, resume: bool, notes: &mut Notes) -> anyhow::Result<RunSummary> {
    train(config, resume, &AtomicBool::new(false), notes)
}

fn checkpoints(out: &Path) -> Vec<String> {
    checkpoint::list(out.join("checkpoints"))
        .unwrap()
        .iter()
        .map(|d| d.name())
        .collect()
}

fn newest(out: &Path) -> PathBuf {
    let newest = checkpoint::latest(out.join("checkpoints")).unwrap();
    newest.unwrap().local_path().unwrap().to_path_buf()
}

#[test]
fn a_damaged_newest_checkpoint_resumes_from_the_one_before_it() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("run");
    run(&config(&out), false, &mut Notes::default()).unwrap();
    assert_eq!(
        checkpoints(&out),
        ["ckpt-0000000004", "ckpt-0000000008", "ckpt-0000000012"]
    );
    let uninterrupted = final_state(&out);
    let tensors = newest(&out).join("state.safetensors");
    let clean = fs::read(&tensors).unwrap();

    // One flipped bit in the middle of the newest checkpoint's tensor data.
    let mut flipped = clean.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x10;
    fs::write(&tensors, &flipped).unwrap();
    let mut notes = Notes::default();
    run(&config(&out), true, &mut notes).unwrap();
    assert_eq!(notes.0.len(), 2, "{:?}", notes.0);
    assert!(
        notes.0[0].starts_with("damaged ckpt-0000000012: tensor '")
            && notes.0[0].contains("reads with checksum"),
        "{:?}",
        notes.0
    );
    assert_eq!(notes.0[1], "resumed ckpt-0000000008 8");
    assert_eq!(
        final_state(&out),
        uninterrupted,
        "bit-identical after the fallback"
    );

    // A truncated metadata file: the same.
    let meta = newest(&out).join("meta.json");
    let text = fs::read(&meta).unwrap();
    fs::write(&meta, &text[..text.len() / 3]).unwrap();
    let mut notes = Notes::default();
    run(&config(&out), true, &mut notes).unwrap();
    assert!(
        notes.0[0].starts_with("damaged ckpt-0000000012: meta.json"),
        "{:?}",
        notes.0
    );
    assert_eq!(notes.0[1], "resumed ckpt-0000000008 8");
    assert_eq!(final_state(&out), uninterrupted);
}

#[test]
fn a_second_trainer_is_refused_naming_the_holder_and_break_lock_takes_over() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("run");
    fs::create_dir_all(&out).unwrap();
    // As a trainer on another machine holds it (which this one cannot check).
    let holder = "process 7 on host another-vm";
    fs::write(out.join(".trainer-lock"), holder).unwrap();
    let err = train(&config(&out), false, &AtomicBool::new(false), &mut Discard).unwrap_err();
    let message = format!("{err:#}");
    assert!(
        message.contains("another trainer is using")
            && message.contains(holder)
            && message.contains("--break-lock"),
        "{message}"
    );
    assert!(checkpoints(&out).is_empty());

    let breaking = RunConfig {
        break_lock: true,
        ..config(&out)
    };
    let mut notes = Notes::default();
    run(&breaking, false, &mut notes).unwrap();
    assert_eq!(notes.0[0], format!("lock broken: {holder}"));
    assert!(!out.join(".trainer-lock").exists(), "released at the end");
}

#[test]
fn a_nonfinite_loss_stops_naming_the_last_good_checkpoint_or_is_skipped() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("run");
    let first_four = RunConfig {
        stop_after: Some(4),
        ..config(&out)
    };
    run(&first_four, false, &mut Notes::default()).unwrap();
    // A learning rate no weights survive: the forward pass overflows within a few steps.
    let exploding = RunConfig {
        lr_base: 1e30,
        ..config(&out)
    };
    let err = run(&exploding, true, &mut Notes::default()).unwrap_err();
    let message = format!("{err:#}");
    assert!(
        message.contains("the loss became NaN at step")
            && message.contains("(stage 0, 28 px): stopped without writing a checkpoint")
            && message.contains(&format!(
                "the last good checkpoint is {}",
                out.join("checkpoints/ckpt-0000000004").display()
            ))
            && message.contains("--skip-nonfinite skips such steps instead"),
        "{message}"
    );
    assert_eq!(checkpoints(&out), ["ckpt-0000000004"]);

    let skipping = RunConfig {
        skip_nonfinite: true,
        ..exploding
    };
    let mut notes = Notes::default();
    let summary = run(&skipping, true, &mut notes).unwrap();
    assert!(summary.completed);
    assert!(summary.nonfinite_skipped > 0, "{:?}", notes.0);
    assert_eq!(notes.0.len() as u64, 1 + summary.nonfinite_skipped);
    for (name, tensor) in final_state(&out) {
        assert!(
            tensor.to_f64_vec().iter().all(|v| v.is_finite()),
            "{name} is finite: the skipped steps left it alone"
        );
    }
}

/// `effnetv2 train` on the short run's settings, with files limited to `max_file_bytes`.
fn train_command(out: &Path, resume: bool, max_file_bytes: Option<u64>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_effnetv2"));
    command.args([
        "train",
        "--batch",
        "32",
        "--epochs",
        "0.0064",
        "--stages",
        "1",
        "--checkpoint-every",
        "4",
        "--steps-per-call",
        "1",
        "--eval-limit",
        "100",
        "--workers",
        "2",
        "--seed",
        "3",
        "--out",
    ]);
    command.arg(out);
    if resume {
        command.arg("--resume");
    }
    if let Some(limit) = max_file_bytes {
        // SAFETY: setrlimit and signal are async-signal-safe. A write past the limit then
        // fails with EFBIG instead of killing the process with SIGXFSZ, as on a full disk.
        unsafe {
            command.pre_exec(move || {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                let rlimit = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: limit,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &rlimit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    command.output().unwrap()
}

#[test]
fn a_failed_checkpoint_write_stops_the_run_and_keeps_the_earlier_checkpoints() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("run");
    let first = train_command(&out, false, None);
    assert!(first.status.success(), "{first:?}");
    let state_bytes = fs::metadata(newest(&out).join("state.safetensors"))
        .unwrap()
        .len();
    // Remove the last two checkpoints: the run resumes at step 4 and writes step 8 next.
    for step in [8, 12] {
        fs::remove_dir_all(out.join(format!("checkpoints/ckpt-{step:010}"))).unwrap();
    }
    let full = train_command(&out, true, Some(state_bytes / 2));
    assert!(!full.status.success(), "{full:?}");
    let stderr = String::from_utf8_lossy(&full.stderr);
    assert!(
        stderr.contains("writing the checkpoint of step 8 failed; the checkpoints already in")
            && stderr.contains("File too large"),
        "{stderr}"
    );
    assert_eq!(checkpoints(&out), ["ckpt-0000000004"]);
    let resumed = train_command(&out, true, None);
    assert!(resumed.status.success(), "{resumed:?}");
    assert!(String::from_utf8_lossy(&resumed.stdout).contains("resuming from"));
    assert_eq!(
        checkpoints(&out),
        ["ckpt-0000000004", "ckpt-0000000008", "ckpt-0000000012"]
    );
}
