//! Progressive learning with adaptive regularisation: the per-stage image size and regularisation
//! strengths, by either the official code's rule (spec section 4.2) or the paper's (section 4.1).

use std::ops::Range;

use super::error::SpecError;
use super::spec::{MinMax, ModelSpec, ScheduleVariant, StageRanges};

/// Settings of one progressive stage.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressiveStage {
    pub index: usize,
    pub image_size: usize,
    /// `None` when the model does not use RandAugment.
    pub randaug_magnitude: Option<f64>,
    pub mixup_alpha: f64,
    pub cutmix_alpha: f64,
    pub dropout: f64,
    /// Global training steps of this stage; the step counter runs on across stages.
    pub steps: Range<u64>,
}

/// `numpy.linspace(min, max, stages)[i]`: `min + i * step` with `step = (max - min) / (stages - 1)` and
/// the last value exactly `max`. One stage yields `max` (numpy would give `min`; a single stage means
/// training at the final settings).
fn linspace(r: MinMax<f64>, i: usize, stages: usize) -> f64 {
    if i + 1 == stages {
        return r.max;
    }
    let step = (r.max - r.min) / (stages - 1) as f64;
    i as f64 * step + r.min
}

/// Official image size: `int(min + (max - min) * (i + 1) / stages)` (the first stage is above `min`).
fn official_size(r: MinMax<usize>, i: usize, stages: usize) -> usize {
    let ratio = (i + 1) as f64 / stages as f64;
    (r.min as f64 + (r.max - r.min) as f64 * ratio) as usize
}

/// Paper image size: linear from `min` (stage 0) to `max` (last stage), truncated to an integer.
fn paper_size(r: MinMax<usize>, i: usize, stages: usize) -> usize {
    linspace(
        MinMax {
            min: r.min as f64,
            max: r.max as f64,
        },
        i,
        stages,
    ) as usize
}

impl ModelSpec {
    /// The stage ranges of `variant`, or an error naming the model if it has none for that variant.
    pub fn stage_ranges(&self, variant: ScheduleVariant) -> Result<&StageRanges, SpecError> {
        match variant {
            ScheduleVariant::Official => Ok(&self.progressive.official),
            ScheduleVariant::Paper => self.progressive.paper.as_ref().ok_or_else(|| SpecError::Unsupported {
                origin: self.name.clone(),
                message: "no paper progressive schedule (the paper's Table 6 gives values for S, M and L only); \
                          use the official variant or add `progressive.paper` to the spec"
                    .into(),
            }),
        }
    }

    /// The progressive stages of `variant` over `total_steps` training steps. Stage `i` ends at
    /// `int((i + 1) / stages * total_steps)`, as in the official trainer.
    pub fn progressive_stages(
        &self,
        variant: ScheduleVariant,
        total_steps: u64,
    ) -> Result<Vec<ProgressiveStage>, SpecError> {
        self.validate().map_err(|e| e.at(&self.name))?;
        let r = self.stage_ranges(variant)?;
        let n = self.progressive.stages;
        let mut start = 0;
        let stages = (0..n)
            .map(|i| {
                let end = ((i + 1) as f64 / n as f64 * total_steps as f64) as u64;
                let image_size = match variant {
                    ScheduleVariant::Official => official_size(r.image_size, i, n),
                    ScheduleVariant::Paper => paper_size(r.image_size, i, n),
                };
                let stage = ProgressiveStage {
                    index: i,
                    image_size,
                    randaug_magnitude: r.randaug_magnitude.map(|m| linspace(m, i, n)),
                    mixup_alpha: linspace(r.mixup_alpha, i, n),
                    cutmix_alpha: linspace(r.cutmix_alpha, i, n),
                    dropout: r.dropout.map_or(self.dropout, |d| linspace(d, i, n)),
                    steps: start..end,
                };
                start = end;
                stage
            })
            .collect();
        Ok(stages)
    }
}
