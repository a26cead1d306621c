//! Top-1 / top-5 accuracy of model weights over an evaluation set, with a compiled eval step.

use std::sync::Arc;

use anyhow::{Context as _, Result};

use super::config::RunConfig;
use super::input::{eval_feeds, InputPipeline};
use crate::data::{AugmentSettings, EvalConfig, Loader, Source};
use crate::model::Model;
use crate::program::context::{Context, StepExecutable};
use crate::runtime::{Arg, Buffer};
use crate::step::graphs::port;

/// What an evaluation pass reads: the test set and how to batch it.
pub struct EvalSet {
    pub source: Arc<dyn Source>,
    pub batch: usize,
    pub image_size: usize,
    pub workers: usize,
    /// Evaluate on at most this many examples.
    pub limit: Option<usize>,
    pub settings: AugmentSettings,
    /// The model's pipeline: evaluation uses its crop, resize and normalisation.
    pub pipeline: InputPipeline,
}

impl EvalSet {
    /// The evaluation set of the run `config` of `model`.
    pub fn for_run(
        config: &RunConfig,
        model: &Model,
        source: Arc<dyn Source>,
        settings: AugmentSettings,
        pipeline: InputPipeline,
    ) -> EvalSet {
        EvalSet {
            source,
            batch: config.eval_batch,
            image_size: model.spec.image_size.eval,
            workers: config.workers,
            limit: config.eval_limit,
            settings,
            pipeline,
        }
    }
}

/// The accuracy of one evaluation pass.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Accuracy {
    pub top1: f64,
    pub top5: f64,
    /// Examples evaluated.
    pub examples: usize,
}

/// Evaluates `weights` (the eval step's weight inputs by name) over `set`.
pub fn evaluate(
    ctx: &Context,
    exe: &StepExecutable,
    weights: &[(&str, &Buffer)],
    set: &EvalSet,
) -> Result<Accuracy> {
    let loader = Loader::eval(
        set.source.clone(),
        EvalConfig {
            batch: set.batch,
            image_size: set.image_size,
            workers: set.workers,
            queue_depth: 4,
            preprocessing: set.pipeline.preprocessing,
            normalization: set.pipeline.normalization,
            settings: set.settings,
        },
    )?;
    let limit = set.limit.unwrap_or(usize::MAX);
    let (mut top1, mut top5, mut seen) = (0i64, 0i64, 0usize);
    for batch in loader {
        if seen >= limit {
            break;
        }
        let mut batch = batch?;
        let keep = batch.len().min(limit - seen);
        if keep < batch.len() {
            let per_image: usize = batch.image_dims()[1..].iter().product();
            batch.labels.truncate(keep);
            batch
                .images
                .normalised_mut()
                .context("an evaluation batch holds normalised images")?
                .truncate(keep * per_image);
        }
        if batch.is_empty() {
            continue;
        }
        let feeds = ctx.upload_named(eval_feeds(&batch, set.batch)?)?;
        let args = weights
            .iter()
            .map(|(name, b)| (*name, Arg::Borrowed(b)))
            .chain(feeds.iter().map(|(name, b)| (*name, Arg::Borrowed(b))));
        let mut out = exe.run(args)?;
        let count = |b: Buffer| -> Result<i64> { Ok(b.to_literal()?.to_f64_vec()[0] as i64) };
        top1 += count(out.take(port::TOP1)?)?;
        top5 += count(out.take(port::TOP5)?)?;
        seen += batch.len();
    }
    let n = seen.max(1) as f64;
    Ok(Accuracy {
        top1: top1 as f64 / n,
        top5: top5 as f64 / n,
        examples: seen,
    })
}
