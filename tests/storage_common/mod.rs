//! A real Cloud Storage JSON API server for tests: the `gcp-storage-emulator` package (pinned),
//! installed into a venv in the user cache on first use (under a lock, so concurrent test
//! binaries share it), started on a free 127.0.0.1 port and killed when dropped (also when a
//! test fails).
#![allow(dead_code)] // each test file uses a different subset

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../python_env/mod.rs"]
mod python_env;

const REQUIREMENT: &str = "gcp-storage-emulator==2026.7.19";
const START_DEADLINE: Duration = Duration::from_secs(60);

/// The emulator's command, from the cache's venv (created once, under a lock).
fn emulator_program() -> PathBuf {
    python_env::venv_python("gcs-emulator-venv", &[REQUIREMENT])
        .with_file_name("gcp-storage-emulator")
}

/// A running emulator, killed on drop.
pub struct Emulator {
    child: Child,
    pub port: u16,
}

impl Emulator {
    pub fn start() -> Emulator {
        let program = emulator_program();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(program)
            .args([
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--in-memory",
                "-q",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let emulator = Emulator { child, port };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < START_DEADLINE,
                "emulator did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        emulator
    }

    /// One plain HTTP/1.1 request; the status code and body.
    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        let kind = if path.starts_with("/upload/") {
            "application/octet-stream"
        } else {
            "application/json"
        };
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {kind}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .unwrap();
        stream.write_all(body).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response.split(' ').nth(1).unwrap().parse().unwrap();
        (status, response)
    }

    pub fn create_bucket(&self, name: &str) {
        let (status, response) = self.request(
            "POST",
            "/storage/v1/b",
            format!(r#"{{"name":"{name}"}}"#).as_bytes(),
        );
        assert_eq!(status, 200, "{response}");
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts an emulator and points this process's Cloud Storage client at it
/// (`STORAGE_EMULATOR_HOST`, process-wide: one emulator per test binary).
pub fn start_and_use() -> Emulator {
    let emulator = Emulator::start();
    std::env::set_var(
        effnetv2::storage::EMULATOR_HOST_VAR,
        format!("http://127.0.0.1:{}", emulator.port),
    );
    emulator
}
