//! The Cloud Storage answers the emulator cannot give, from a tiny HTTP responder on loopback
//! that answers as the JSON API documents: a 403 (stops at once, naming bucket, object and
//! credential source), a 412 to `ifGenerationMatch=0` (create-only sees the object exists), and
//! a dropped connection then a 503 (retried, then the write succeeds).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use effnetv2::storage::{Location, StorageError, Store, EMULATOR_HOST_VAR};

/// The request lines the responder saw, in order.
type Log = Arc<Mutex<Vec<String>>>;

/// Reads one request; its request line, or `None` if the client went away.
fn read_request(stream: &TcpStream) -> Option<String> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        if header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(line.trim().to_string())
}

fn error_body(code: u16, reason: &str) -> String {
    format!(
        r#"{{"error":{{"code":{code},"message":"{reason}","errors":[{{"reason":"{reason}","message":"{reason}"}}]}}}}"#
    )
}

const OBJECT: &str = r#"{"kind":"storage#object","name":"x","bucket":"flaky","generation":"1","metageneration":"1","size":"3","md5Hash":"XUFAKrxLKna5cZ2REBfFkg==","etag":"CAE=","updated":"2026-12-07T18:38:54.158827Z","contentType":"application/octet-stream"}"#;

/// The answer to the `attempt`-th (from 0) arrival of `line`; `None` drops the connection.
fn answer(line: &str, attempt: usize) -> Option<(u16, String)> {
    if line.contains("/b/forbidden/") {
        Some((403, error_body(403, "forbidden")))
    } else if line.contains("/b/locks/") && line.contains("ifGenerationMatch=0") {
        Some((412, error_body(412, "conditionNotMet")))
    } else if line.contains("/b/flaky/") {
        match attempt {
            0 => None,
            1 => Some((503, error_body(503, "backendError"))),
            _ => Some((200, OBJECT.to_string())),
        }
    } else {
        Some((400, error_body(400, "unexpected request")))
    }
}

/// Serves on a free loopback port until the process ends; returns the port.
fn start_responder(log: Log) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut attempts: HashMap<String, usize> = HashMap::new();
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let Some(line) = read_request(&stream) else {
                continue;
            };
            log.lock().unwrap().push(line.clone());
            let attempt = attempts.entry(line.clone()).or_default();
            let reply = answer(&line, *attempt);
            *attempt += 1;
            if let Some((status, body)) = reply {
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        }
    });
    port
}

/// A storage call whose result is only looked at for its error.
type Operation<'a> = Box<dyn Fn() -> Result<(), StorageError> + 'a>;

fn open(url: &str) -> Store {
    Store::open(&Location::parse(url).unwrap()).unwrap()
}

/// How many requests since `from` had `bucket` in their path.
fn count(log: &Log, from: usize, bucket: &str) -> usize {
    let log = log.lock().unwrap();
    log[from..]
        .iter()
        .filter(|l| l.contains(&format!("/b/{bucket}/")))
        .count()
}

#[test]
fn forbidden_stops_at_once_create_only_conflicts_and_flaky_requests_are_retried() {
    let log = Log::default();
    let port = start_responder(log.clone());
    std::env::set_var(EMULATOR_HOST_VAR, format!("http://127.0.0.1:{port}"));

    // 403: named, and one request each (no retries)
    let forbidden = open("gs://forbidden/runs");
    let operations: [(&str, Operation); 3] = [
        (
            "write",
            Box::new(|| forbidden.write("ckpt/a.bin", &mut &b"abc"[..])),
        ),
        (
            "read",
            Box::new(|| forbidden.read("ckpt/a.bin").map(|_| ())),
        ),
        ("list", Box::new(|| forbidden.list("ckpt/").map(|_| ()))),
    ];
    for (operation, run) in operations {
        let before = log.lock().unwrap().len();
        let error = run().unwrap_err();
        assert!(
            matches!(error, StorageError::PermissionDenied { .. }),
            "{operation}: {error:?}"
        );
        let message = error.to_string();
        for part in [
            "gs://forbidden/runs/ckpt/",
            "permission denied",
            "emulator at http://127.0.0.1",
        ] {
            assert!(message.contains(part), "{operation}: {message}");
        }
        assert_eq!(
            count(&log, before, "forbidden"),
            1,
            "{operation}: {:?}",
            log.lock().unwrap()
        );
    }

    // 412 to ifGenerationMatch=0: the object exists
    let before = log.lock().unwrap().len();
    let error = open("gs://locks/runs")
        .create_only("run.lock", b"host-b")
        .unwrap_err();
    match &error {
        StorageError::AlreadyExists { location } => {
            assert_eq!(location, "gs://locks/runs/run.lock")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(count(&log, before, "locks"), 1);

    // a dropped connection and a 503 are retried; the third try succeeds
    let before = log.lock().unwrap().len();
    open("gs://flaky/runs")
        .write("metrics.jsonl", &mut &b"abc"[..])
        .unwrap();
    assert_eq!(count(&log, before, "flaky"), 3, "{:?}", log.lock().unwrap());
}
