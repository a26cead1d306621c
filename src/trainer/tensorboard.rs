//! The run's curves for TensorBoard: scalar event files under `<out>/tensorboard/`, written as
//! the run goes, from the same events as `metrics.jsonl`.
//!
//! An event file is TFRecord framing (shared with the TFRecord input) around `Event` protos
//! (`tensorboard/compat/proto/event.proto` and `summary.proto`), declared by hand for `prost`
//! with the fields this writer sets. Scalars are `simple_value`s, which every TensorBoard
//! version reads. A resumed run starts a new file with a `SessionLog` START at its first new
//! step, so TensorBoard drops the points the interrupted run logged after its last checkpoint.

use std::fs::{File, OpenOptions};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use prost::Message;

use super::events::{Event, EventSink};
use crate::data::tfrecord::RecordWriter;

/// The folder under the run directory that holds the event files.
pub const TENSORBOARD_DIR: &str = "tensorboard";

/// `tensorboard.Event`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TbEvent {
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    #[prost(int64, tag = "2")]
    pub step: i64,
    #[prost(oneof = "What", tags = "3, 5, 6")]
    pub what: Option<What>,
}

/// `tensorboard.Event.what`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum What {
    #[prost(string, tag = "3")]
    FileVersion(String),
    #[prost(message, tag = "5")]
    Summary(Summary),
    #[prost(message, tag = "6")]
    SessionLog(SessionLog),
}

/// `tensorboard.Summary`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// `tensorboard.Summary.Value`: `simple_value` is a member of a oneof, so it is written even
/// when it is 0 (hence `optional`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryValue {
    #[prost(string, tag = "1")]
    pub tag: String,
    #[prost(float, optional, tag = "2")]
    pub simple_value: Option<f32>,
}

/// `tensorboard.SessionLog`; `status` 1 is START.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionLog {
    #[prost(int32, tag = "1")]
    pub status: i32,
}

const SESSION_START: i32 = 1;

/// The scalars one run event shows in TensorBoard, with their step: per step the training loss,
/// accuracy, learning rate, throughput, the share of time the device waited for input and the
/// image size; per evaluation top-1 and top-5; per stage its image size, regularisation and
/// input wait. `last_step` dates a stage summary, which has no
/// step of its own.
fn scalars(event: &Event, last_step: u64) -> Option<(u64, Vec<(&'static str, f64)>)> {
    Some(match event {
        Event::Step { record, .. } => (
            record.step,
            vec![
                ("train/loss", record.loss as f64),
                ("train/accuracy", record.accuracy as f64),
                ("train/learning_rate", record.lr),
                ("train/images_per_sec", record.images_per_sec),
                ("train/infeed_bound", record.infeed_bound),
                ("train/image_size", record.image_size as f64),
            ],
        ),
        Event::Evaluated(record) => (
            record.step,
            vec![("eval/top1", record.top1), ("eval/top5", record.top5)],
        ),
        Event::StageDone(stage) => (
            last_step,
            vec![
                ("stage/image_size", stage.image_size as f64),
                ("stage/randaug", stage.randaug),
                ("stage/mixup", stage.mixup),
                ("stage/cutmix", stage.cutmix),
                ("stage/dropout", stage.dropout),
                ("stage/infeed_bound", stage.infeed_bound),
            ],
        ),
        _ => return None,
    })
}

/// One event file of a run, appended to and flushed event by event.
pub struct TensorBoardLog {
    path: PathBuf,
    writer: RecordWriter<BufWriter<File>>,
    last_step: u64,
}

impl TensorBoardLog {
    /// Starts a new event file in `dir` (created if needed):
    /// `events.out.tfevents.<unix seconds>.<host>.<pid>.<n>`, `n` the first number that names no
    /// file yet (a run resumed in the same second by the same process, or a copied run
    /// directory, keeps its earlier files), beginning with its file version.
    pub fn create(dir: &Path) -> Result<TensorBoardLog> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let seconds = now().floor() as u64;
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty() && !h.contains('/'))
            .unwrap_or_else(|| "localhost".into());
        let stem = format!(
            "events.out.tfevents.{seconds}.{host}.{}",
            std::process::id()
        );
        let (path, file) = (0..)
            .map(|n| dir.join(format!("{stem}.{n}")))
            .find_map(
                |path| match OpenOptions::new().write(true).create_new(true).open(&path) {
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => None,
                    opened => Some((path, opened)),
                },
            )
            .expect("an unbounded range of names");
        let file = file.with_context(|| format!("creating {}", path.display()))?;
        let mut log = TensorBoardLog {
            path,
            writer: RecordWriter::new(BufWriter::new(file)),
            last_step: 0,
        };
        log.write(0, What::FileVersion("brain.Event:2".into()))?;
        Ok(log)
    }

    fn write(&mut self, step: u64, what: What) -> Result<()> {
        let event = TbEvent {
            wall_time: now(),
            step: step as i64,
            what: Some(what),
        };
        let written = self
            .writer
            .write(&event.encode_to_vec())
            .and_then(|()| self.writer.flush());
        written.with_context(|| format!("writing {}", self.path.display()))
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl EventSink for TensorBoardLog {
    fn emit(&mut self, event: &Event) -> Result<()> {
        if let Event::Resumed { step, .. } = event {
            self.last_step = *step;
            return self.write(
                step + 1,
                What::SessionLog(SessionLog {
                    status: SESSION_START,
                }),
            );
        }
        let Some((step, values)) = scalars(event, self.last_step) else {
            return Ok(());
        };
        self.last_step = self.last_step.max(step);
        let value = values
            .into_iter()
            .map(|(tag, value)| SummaryValue {
                tag: tag.into(),
                simple_value: Some(value as f32),
            })
            .collect();
        self.write(step, What::Summary(Summary { value }))
    }
}
