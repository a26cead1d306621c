//! The search's record: one JSON line per evaluated candidate in `candidates.jsonl`, appended
//! and synced as each finishes, so a killed search resumes after the last complete line.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use super::space::Candidate;

/// One evaluated candidate (index 0 is the backbone itself, the reference of the reward).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub index: usize,
    pub name: String,
    pub candidate: Candidate,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Wall-clock seconds the evaluation took.
    pub seconds: f64,
    /// The earlier search whose proxy run of the same candidate gave the accuracy (none when
    /// this search trained it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_from: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    Scored(Score),
    /// The candidate could not be built, compiled, fitted or trained; the search went on.
    Failed {
        reason: String,
    },
    /// Timed, but its step is over the space's limit (`max_step_ratio` times the backbone's):
    /// not trained, and not counted in the search's budget.
    Rejected {
        step_seconds: f64,
        limit_seconds: f64,
    },
}

/// What a candidate scored.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// Top-1 accuracy of the proxy run.
    pub accuracy: f64,
    /// Seconds per training step: measured on the device, or the target's roofline estimate.
    pub step_seconds: f64,
    /// The backbone's step time the reward compares this one with: timed beside it, in turns,
    /// on the device (so that a busier machine slows both alike), or the
    /// backbone's roofline for an estimate. Absent in records of earlier versions, where it
    /// is the backbone record's own step time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backbone_step_seconds: Option<f64>,
    pub params: u64,
    pub reward: f64,
}

impl Score {
    /// The step time as a multiple of the backbone's (`backbone`: the backbone's own record,
    /// for records that do not carry the time measured beside them).
    pub fn relative_step(&self, backbone: Option<&Score>) -> f64 {
        let reference = self
            .backbone_step_seconds
            .or(backbone.map(|b| b.step_seconds))
            .unwrap_or(self.step_seconds);
        self.step_seconds / reference
    }
}

impl Record {
    pub fn score(&self) -> Option<&Score> {
        match &self.outcome {
            Outcome::Scored(score) => Some(score),
            Outcome::Failed { .. } | Outcome::Rejected { .. } => None,
        }
    }

    /// Whether this record spends one candidate of the search's budget (a rejected candidate,
    /// which was only timed, does not).
    pub fn counts_toward_budget(&self) -> bool {
        !matches!(self.outcome, Outcome::Rejected { .. })
    }

    pub fn reward(&self) -> Option<f64> {
        self.score().map(|s| s.reward)
    }
}

/// The records of `path` (none when it does not exist). A last line cut short by a kill is
/// ignored; any other unreadable line is an error naming it.
pub fn read(path: &Path) -> Result<Vec<Record>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let lines: Vec<String> = BufReader::new(file)
        .lines()
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("reading {}", path.display()))?;
    let mut records = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        match serde_json::from_str(line) {
            Ok(record) => records.push(record),
            Err(_) if n + 1 == lines.len() => break,
            Err(e) => anyhow::bail!("{} line {}: {e}", path.display(), n + 1),
        }
    }
    Ok(records)
}

/// Appends `record` as one line and syncs it to disk. A last line left incomplete by a kill is
/// cut off first (its candidate was not recorded, so it is evaluated again).
pub fn append(path: &Path, record: &Record) -> Result<()> {
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    if bytes.last().is_some_and(|&b| b != b'\n') {
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        file.set_len(complete as u64)?;
    }
    let mut line = serde_json::to_string(record)?;
    line.push('\n');
    file.write_all(line.as_bytes())?;
    file.sync_data()?;
    Ok(())
}

/// The scored records with their proxy accuracy and step time relative to the backbone's, the
/// coordinates the Pareto front and the plot compare them by.
pub fn accuracy_and_relative_step(records: &[Record]) -> Vec<(&Record, f64, f64)> {
    let backbone = records
        .iter()
        .find(|r| r.index == 0)
        .and_then(Record::score);
    records
        .iter()
        .filter_map(|r| {
            let s = r.score()?;
            Some((r, s.accuracy, s.relative_step(backbone)))
        })
        .collect()
}

/// The scored records no other scored record beats on both accuracy (higher) and step time
/// relative to the backbone's (lower): the accuracy/speed Pareto front, fastest first.
pub fn pareto_front(records: &[Record]) -> Vec<&Record> {
    let scored = accuracy_and_relative_step(records);
    let dominated = |&(_, accuracy, step): &(&Record, f64, f64)| {
        scored
            .iter()
            .any(|&(_, a, s)| a >= accuracy && s <= step && (a > accuracy || s < step))
    };
    let mut front: Vec<(&Record, f64, f64)> =
        scored.iter().copied().filter(|p| !dominated(p)).collect();
    front.sort_by(|a, b| a.2.total_cmp(&b.2));
    front.into_iter().map(|(r, _, _)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::space::SearchSpace;

    fn record(index: usize, accuracy: f64, step_seconds: f64) -> Record {
        let backbone = SearchSpace::load("tiny").unwrap().backbone_spec().unwrap();
        Record {
            index,
            name: format!("c{index}"),
            candidate: Candidate::of(&backbone),
            outcome: Outcome::Scored(Score {
                accuracy,
                step_seconds,
                backbone_step_seconds: Some(1.0),
                params: 10,
                reward: accuracy,
            }),
            seconds: 1.0,
            accuracy_from: None,
        }
    }

    #[test]
    fn the_front_keeps_what_nothing_beats_on_both_axes() {
        let mut records = vec![
            record(0, 0.80, 2.0),
            record(1, 0.85, 3.0),
            record(2, 0.79, 2.5), // slower and worse than 0
            record(3, 0.70, 1.0),
            record(4, 0.85, 3.5), // as accurate as 1, slower
        ];
        records.push(Record {
            outcome: Outcome::Failed {
                reason: "does not fit".into(),
            },
            ..record(5, 0.0, 0.0)
        });
        let names: Vec<&str> = pareto_front(&records)
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(names, ["c3", "c0", "c1"]);
    }

    #[test]
    fn records_survive_a_line_cut_short() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("candidates.jsonl");
        append(&path, &record(0, 0.8, 2.0)).unwrap();
        append(&path, &record(1, 0.7, 1.0)).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.truncate(bytes.len() - 10); // a kill in the middle of the second line
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read(&path).unwrap(), [record(0, 0.8, 2.0)]);
        append(&path, &record(2, 0.9, 3.0)).unwrap();
        assert_eq!(
            read(&path).unwrap(),
            [record(0, 0.8, 2.0), record(2, 0.9, 3.0)]
        );
    }
}
