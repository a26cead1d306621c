//! Runs kept in a bucket: `train --out gs://...` against a real Cloud Storage JSON API server on
//! loopback (the emulator of `storage_common`, started here), with no gcsfuse.
//!
//! - A run writes its checkpoints (each committed by its marker), config, metrics, TensorBoard
//!   events and summary to the bucket, and the same final state as the same run on local disk.
//! - A trainer killed (SIGKILL) while it uploads a checkpoint, once before that checkpoint's
//!   marker and once in the middle of its tensors, resumes from the last committed checkpoint
//!   and ends bit-identical to the uninterrupted run, with the same metrics. The kills are
//!   placed by a loopback proxy between trainer and emulator that holds the chosen upload
//!   request (it never reaches the bucket) and reports it, so each kill lands inside an upload.
//! - A damaged object of the newest checkpoint is reported and the one before it resumed from.
//! - A run's lock held by another machine's trainer refuses a second trainer, naming the
//!   holder; `--break-lock` takes over.
//! - `eval`, `predict` and `export` read `--checkpoint gs://...`.
//! - An object larger than one 8 MiB piece is written and read back whole.
//! - An executable cache in the bucket (`EFFNETV2_EXECUTABLE_CACHE`) serves a second run.
//!
//! One test function: the emulator variable is process-wide. Every child process is bounded in
//! time and killed when it overruns.

mod run_common;
mod storage_common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use effnetv2::program::executables::SHARED_CACHE_VAR;
use effnetv2::report::plot::RunLog;
use effnetv2::storage::{Location, Store, EMULATOR_HOST_VAR};
use effnetv2::trainer::checkpoint;
use run_common::final_state;

/// `tiny` over two stages, 25 steps, a checkpoint every 5.
const OPTIONS: &str = "--batch 24 --stages 2 --checkpoint-every 5 --steps-per-call 2 \
                       --eval-limit 300 --workers 2 --seed 9 --epochs 0.01";
/// The longest a child process may run.
const LIMIT: Duration = Duration::from_secs(300);

fn effnetv2(host: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_effnetv2"));
    command
        .args(args)
        .env(EMULATOR_HOST_VAR, host)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn train(host: &str, out: &str, extra: &[&str]) -> Command {
    let mut command = effnetv2(host, &["train", "--out", out]);
    command.args(OPTIONS.split_whitespace()).args(extra);
    command
}

/// Runs `command` to its end, killing it past [`LIMIT`].
fn finish(mut command: Command) -> Output {
    eprintln!("running {command:?}");
    let mut child = command.spawn().unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > LIMIT {
            child.kill().unwrap();
            panic!("{command:?} ran past {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn succeeded(command: Command) -> String {
    let output = finish(command);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A loopback proxy to the emulator that holds (never forwards) the `nth` upload request of an
/// object whose name contains `object`, and reports when it does.
struct Proxy {
    port: u16,
    held: mpsc::Receiver<()>,
}

impl Proxy {
    fn start(to: u16, object: &'static str, nth: usize) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (report, held) = mpsc::channel();
        let seen = Arc::new(AtomicUsize::new(0));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let server = TcpStream::connect(("127.0.0.1", to)).unwrap();
                let (mut back_from, mut back_to) =
                    (server.try_clone().unwrap(), client.try_clone().unwrap());
                std::thread::spawn(move || std::io::copy(&mut back_from, &mut back_to));
                let (seen, report) = (seen.clone(), report.clone());
                std::thread::spawn(move || forward(client, server, object, nth, &seen, &report));
            }
        });
        Proxy { port, held }
    }

    fn host(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Forwards a client's bytes to the server line by line until the `nth` upload of `object`,
/// which it holds.
fn forward(
    mut client: TcpStream,
    mut server: TcpStream,
    object: &str,
    nth: usize,
    seen: &AtomicUsize,
    report: &mpsc::Sender<()>,
) {
    let mut piece = [0u8; 1 << 16];
    let mut line = Vec::new();
    loop {
        let Ok(n) = client.read(&mut piece) else {
            return;
        };
        if n == 0 {
            return;
        }
        for &byte in &piece[..n] {
            line.push(byte);
            if byte != b'\n' {
                continue;
            }
            let text = String::from_utf8_lossy(&line);
            if text.starts_with("POST /upload/")
                && text.contains(object)
                && seen.fetch_add(1, Ordering::SeqCst) + 1 == nth
            {
                // The emulator serves one connection at a time: it is let go; the trainer's
                // connection is held open, not closed (a closed one would be retried).
                let _ = server.shutdown(Shutdown::Both);
                let _ = report.send(());
                std::thread::sleep(LIMIT);
                return;
            }
            if server.write_all(&line).is_err() {
                return;
            }
            line.clear();
        }
        if server.write_all(&line).is_err() {
            return;
        }
        line.clear();
    }
}

/// Starts a trainer through a proxy that holds the `nth` upload of `object`, and kills it
/// (SIGKILL) there.
fn kill_during_upload(emulator_port: u16, out: &str, object: &'static str, nth: usize) {
    let proxy = Proxy::start(emulator_port, object, nth);
    let mut child: Child = train(&proxy.host(), out, &["--resume"]).spawn().unwrap();
    match proxy.held.recv_timeout(LIMIT) {
        Ok(()) => {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        Err(_) => {
            child.kill().unwrap();
            let output = child.wait_with_output().unwrap();
            panic!(
                "upload {nth} of {object} never came: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

fn store(url: &str) -> Store {
    Store::open(&Location::parse(url).unwrap()).unwrap()
}

fn read_text(store: &Store, name: &str) -> String {
    let mut text = String::new();
    store.read(name).unwrap().read_to_string(&mut text).unwrap();
    text
}

/// Each step's and each evaluation's numbers of a run's metrics log (timings left out).
fn resolved_metrics(run: &Store) -> Vec<String> {
    let log = RunLog::parse(&read_text(run, "metrics.jsonl"));
    let steps = log.steps.iter().map(|s| {
        format!(
            "step {} {} {:?} {:?} {:?}",
            s.step, s.image_size, s.loss, s.accuracy, s.lr
        )
    });
    let evals = log
        .evals
        .iter()
        .map(|e| format!("eval {} {:?} {:?}", e.step, e.top1, e.top5));
    steps.chain(evals).collect()
}

/// The steps of a run's committed checkpoints.
fn committed(run: &str) -> Vec<String> {
    let root = Location::parse(run).unwrap().join("checkpoints");
    let list = checkpoint::list(root).unwrap();
    list.iter().map(Location::name).collect()
}

#[test]
fn runs_live_in_a_bucket() {
    let emulator = storage_common::start_and_use();
    let host = format!("http://127.0.0.1:{}", emulator.port);
    emulator.create_bucket("runs");
    let local = tempfile::tempdir().unwrap();

    // Larger than one 8 MiB piece: one JSON-API upload, read back whole.
    let large: Vec<u8> = (0..(9u32 << 20) + 7)
        .map(|i| (i * 7 + i / 4099) as u8)
        .collect();
    let bucket = store("gs://runs/objects");
    bucket.write("large.bin", &mut &large[..]).unwrap();
    let mut back = Vec::new();
    bucket
        .read("large.bin")
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert!(back == large, "the large object reads back as written");

    // A whole run in the bucket, and the same run on disk.
    let whole = "gs://runs/whole";
    succeeded(train(&host, whole, &[]));
    let on_disk = local.path().join("run");
    succeeded(train(&host, on_disk.to_str().unwrap(), &[]));
    assert!(final_state(Location::parse(whole).unwrap()) == final_state(&on_disk));
    let run = store(whole);
    let names = run.list("").unwrap();
    for expected in ["config.json", "metrics.jsonl", "summary.json"] {
        assert!(names.iter().any(|n| n == expected), "{expected}: {names:?}");
    }
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("tensorboard/events.out.tfevents.")),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n.contains("lock")),
        "lock released: {names:?}"
    );
    let newest = committed(whole).pop().unwrap();
    assert!(names.contains(&format!("checkpoints/{newest}/commit_success.txt")));
    let disk_metrics = std::fs::read_to_string(on_disk.join("metrics.jsonl")).unwrap();
    let resolve = |text: &str| RunLog::parse(text).steps.len();
    assert_eq!(
        resolve(&read_text(&run, "metrics.jsonl")),
        resolve(&disk_metrics)
    );
    // The report of a run in the bucket, written beside it.
    let printed = succeeded(effnetv2(&host, &["report", whole]));
    assert!(
        printed.contains("wrote gs://runs/whole/report.png and gs://runs/whole/report.svg"),
        "{printed}"
    );
    let mut png = Vec::new();
    run.read("report.png")
        .unwrap()
        .read_to_end(&mut png)
        .unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG in the bucket");
    assert!(read_text(&run, "report.svg").starts_with("<svg"));

    // Killed before the marker of the second checkpoint (step 10), then in the middle of the
    // tensors of the next one written after resuming from step 5: each time the last committed
    // checkpoint is the one before.
    let killed = "gs://runs/killed";
    kill_during_upload(emulator.port, killed, "commit_success.txt", 2);
    assert_eq!(committed(killed), ["ckpt-0000000005"]);
    let uncommitted = store(killed).list("checkpoints/ckpt-0000000010/").unwrap();
    assert_eq!(
        uncommitted,
        [
            "checkpoints/ckpt-0000000010/meta.json",
            "checkpoints/ckpt-0000000010/state.safetensors"
        ],
        "all but the marker"
    );
    kill_during_upload(emulator.port, killed, "state.safetensors", 2);
    assert_eq!(committed(killed), ["ckpt-0000000005", "ckpt-0000000010"]);
    let resumed = succeeded(train(&host, killed, &["--resume"]));
    assert!(resumed.contains("resuming from gs://runs/killed/checkpoints/ckpt-0000000010"));
    assert!(final_state(Location::parse(killed).unwrap()) == final_state(&on_disk));
    assert_eq!(resolved_metrics(&store(killed)), resolved_metrics(&run));

    // A damaged object: the newest checkpoint's tensors with one byte changed.
    let tensors = format!("checkpoints/{newest}/state.safetensors");
    let mut bytes = Vec::new();
    run.read(&tensors).unwrap().read_to_end(&mut bytes).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x10;
    run.write(&tensors, &mut &bytes[..]).unwrap();
    let again = succeeded(train(&host, whole, &["--resume"]));
    assert!(
        again.contains(&format!(
            "not resuming from gs://runs/whole/checkpoints/{newest}"
        )),
        "{again}"
    );
    assert!(final_state(Location::parse(whole).unwrap()) == final_state(&on_disk));

    // A lock held by a trainer on another VM.
    let locked = "gs://runs/locked";
    let holder = "process 7 on host another-vm";
    store(locked)
        .write(".trainer-lock", &mut holder.as_bytes())
        .unwrap();
    let refused = finish(train(&host, locked, &[]));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains(holder) && stderr.contains("--break-lock"),
        "{stderr}"
    );
    assert!(committed(locked).is_empty());
    let broke = succeeded(train(&host, locked, &["--break-lock", "--stop-after", "2"]));
    assert!(broke.contains(&format!("held by {holder}")), "{broke}");
    assert_eq!(committed(locked), ["ckpt-0000000002"]);

    // Reading checkpoints from the bucket.
    let evaluated = succeeded(effnetv2(&host, &["eval", "--checkpoint", whole]));
    assert!(
        evaluated.starts_with(&format!("gs://runs/whole/checkpoints/{newest}/: step ")),
        "{evaluated}"
    );
    let image = local.path().join("shoe.png");
    image::GrayImage::from_fn(28, 28, |x, y| image::Luma([((x * 9 + y * 3) % 256) as u8]))
        .save(&image)
        .unwrap();
    let predicted = succeeded(effnetv2(
        &host,
        &[
            "predict",
            "--checkpoint",
            whole,
            "--top",
            "1",
            image.to_str().unwrap(),
        ],
    ));
    assert!(predicted.contains("shoe.png"), "{predicted}");
    let exported = local.path().join("exported.safetensors");
    succeeded(effnetv2(
        &host,
        &[
            "export",
            "--to",
            "timm",
            "--checkpoint",
            &format!("{whole}/checkpoints/{newest}"),
            "--out",
            exported.to_str().unwrap(),
        ],
    ));
    assert!(std::fs::metadata(&exported).unwrap().len() > 1000);

    // An executable cache in the bucket, shared by two runs (as by a slice's hosts): the second
    // loads what the first compiled.
    let shared = "gs://runs/executables";
    for out in ["gs://runs/cached-1", "gs://runs/cached-2"] {
        let mut command = train(&host, out, &["--stop-after", "2"]);
        command.env(SHARED_CACHE_VAR, shared);
        succeeded(command);
    }
    let entries = store(shared).list("").unwrap();
    assert!(
        !entries.is_empty() && entries.iter().all(|n| n.ends_with(".pjrt")),
        "{entries:?}"
    );
    let compiles = |run: &str| -> Vec<String> {
        let log = RunLog::parse(&read_text(&store(run), "metrics.jsonl"));
        log.compiles.iter().map(|c| c.reason.clone()).collect()
    };
    assert!(compiles("gs://runs/cached-1").contains(&"CacheMiss".to_string()));
    let second = compiles("gs://runs/cached-2");
    assert!(
        !second.is_empty() && second.iter().all(|r| r == "CacheHit"),
        "{second:?}"
    );
}
