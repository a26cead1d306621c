//! The "infeed-bound" figure of a run: the share of wall time the device waited for its input,
//! the number people read in a TPU profile as "input-bound %".
//!
//! In the run loop one call of the train step goes: take the call's K batches from the loader
//! (blocking while its prefetch queue is empty), build the feeds and copy them to the device,
//! run the step, read its losses back. PJRT executes asynchronously, but reading the losses
//! waits for the execution, so when a call returns the device has finished it and nothing else
//! is queued on it (the next stage's compile in the background does not use the device). The
//! time from the start of a call until its inputs are on the device is therefore time the
//! device sat idle for want of input, not host time overlapped with device work: the loader
//! runs ahead in its own threads, so that time is near zero when the loader keeps up, and it is
//! most of the wall time when it does not. Building the feeds and copying them to the device
//! are counted with it: each upload returns once the plugin is done with the host data, and
//! the device waits for them just the same.
//!
//! The figure is `waiting / wall` over a stretch of training: for a call, its wall time from
//! the request for its first batch until its losses are back; for a stage, the stage's training
//! loop (checkpoints written in between included, the evaluation after it not).

use super::events::StepRecord;

/// Seconds the device waited for input within a stretch of training, and the stretch's wall
/// seconds. Stretches add up, so a window of steps or a whole stage is the sum of its parts.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct InfeedTime {
    pub waiting: f64,
    pub wall: f64,
}

impl InfeedTime {
    /// The time a step record accounts for: its call's share per step, `wall_seconds` of which
    /// `infeed_bound` was waiting. Records written before the figure existed account for none.
    pub fn of_step(record: &StepRecord) -> InfeedTime {
        InfeedTime {
            waiting: record.infeed_bound * record.wall_seconds,
            wall: record.wall_seconds,
        }
    }

    /// The share of the wall time spent waiting for input, in [0, 1]; `None` for a stretch
    /// without measured time (an old log, or nothing trained yet).
    pub fn share(&self) -> Option<f64> {
        (self.wall > 0.0).then(|| (self.waiting / self.wall).clamp(0.0, 1.0))
    }
}

impl std::ops::AddAssign for InfeedTime {
    fn add_assign(&mut self, other: InfeedTime) {
        self.waiting += other.waiting;
        self.wall += other.wall;
    }
}

impl std::iter::Sum for InfeedTime {
    fn sum<I: Iterator<Item = InfeedTime>>(iter: I) -> InfeedTime {
        iter.fold(InfeedTime::default(), |mut total, t| {
            total += t;
            total
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(infeed_bound: f64, wall_seconds: f64) -> StepRecord {
        StepRecord {
            step: 1,
            stage: 0,
            image_size: 8,
            loss: 1.0,
            accuracy: 0.5,
            lr: 0.1,
            images_per_sec: 10.0,
            infeed_bound,
            wall_seconds,
        }
    }

    #[test]
    fn a_window_weights_each_step_by_its_wall_time() {
        // A 10 ms step that did not wait and a 110 ms step that waited 100 ms: 100 of 120 ms,
        // not the mean of the two shares.
        let total: InfeedTime = [record(0.0, 0.010), record(100.0 / 110.0, 0.110)]
            .iter()
            .map(InfeedTime::of_step)
            .sum();
        assert!((total.share().unwrap() - 100.0 / 120.0).abs() < 1e-12);
    }

    #[test]
    fn a_stretch_without_measured_time_has_no_share() {
        assert_eq!(InfeedTime::of_step(&record(0.0, 0.0)).share(), None);
        assert_eq!(InfeedTime::default().share(), None);
    }
}
