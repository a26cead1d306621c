//! Running the agreement graph (see [`crate::step::agreement`]): before the first step of a
//! data-parallel run every replica checks that all replicas start from the same step, data
//! position, configuration and data set, so that a host that resumed another checkpoint or got
//! other options fails with a message instead of hanging in a collective.

use anyhow::{bail, ensure, Context as _, Result};

use crate::hlo::Literal;
use crate::program::context::Context;
use crate::runtime::{Arg, Buffer};
use crate::step::agreement_graph::{agreement_step, port};

/// One value every replica must hold, and what it is (for the error).
#[derive(Clone, Copy, Debug)]
pub struct Shared {
    pub what: &'static str,
    pub value: i64,
}

/// Fails, naming the first value that differs, unless every replica of the run (on every host)
/// holds the same `values`. One-replica runs have nothing to compare.
pub fn check_agreement(ctx: &Context, values: &[Shared]) -> Result<()> {
    if ctx.placement().replicas() == 1 {
        return Ok(());
    }
    let mine: Vec<i64> = values.iter().map(|s| s.value).collect();
    let (lowest, highest) = extremes(ctx, vec![mine; ctx.local_devices()])?;
    compare(values, &lowest, &highest)
}

/// The error for the first of `values` whose extremes over the replicas differ.
fn compare(values: &[Shared], lowest: &[i64], highest: &[i64]) -> Result<()> {
    let differs = values
        .iter()
        .zip(lowest.iter().zip(highest))
        .find(|(_, (low, high))| low != high);
    if let Some((shared, (low, high))) = differs {
        bail!(
            "the hosts of this run disagree on the {} (from {low} to {high}): every host must run \
             the same command, and a resumed run must find the same checkpoint on every host \
             (put --out on a file system all hosts share, or copy the checkpoint to each)",
            shared.what
        );
    }
    Ok(())
}

/// The elementwise minimum and maximum over all replicas of `per_replica[r]`, the values of
/// this process's `r`-th replica (all of equal length). Each value travels as two 32-bit words
/// (see [`agreement_step`]), so the extremes are exact for values below 2^31 in magnitude and,
/// beyond, equal exactly when all replicas hold the same value.
pub fn extremes(ctx: &Context, per_replica: Vec<Vec<i64>>) -> Result<(Vec<i64>, Vec<i64>)> {
    ensure!(
        per_replica.len() == ctx.local_devices(),
        "{} value lists for {} local replicas",
        per_replica.len(),
        ctx.local_devices()
    );
    let words = |values: &[i64]| -> Vec<i32> {
        values
            .iter()
            .flat_map(|&v| [(v >> 32) as i32, v as i32])
            .collect()
    };
    let len = per_replica.first().map_or(0, Vec::len);
    let graph = agreement_step(ctx.placement().replicas(), 2 * len)?;
    let (exe, _) = ctx.compile(&graph)?;
    let buffers = per_replica
        .iter()
        .enumerate()
        .map(|(r, values)| {
            let words = words(values);
            let literal = Literal::from_vec(&[words.len() as i64], &words)
                .map_err(anyhow::Error::msg)
                .context("the values to agree on")?;
            ctx.upload_to(r, &literal)
        })
        .collect::<Result<Vec<_>>>()?;
    let args = buffers
        .iter()
        .map(|b| vec![(port::VALUES, Arg::Borrowed(b))])
        .collect();
    let mut outputs = exe.run_replicated(args)?;
    let first = &mut outputs[0];
    let read = |b: Buffer| -> Result<Vec<i64>> {
        let words: Vec<i32> = b.to_literal()?.to_vec().map_err(anyhow::Error::msg)?;
        Ok(words
            .chunks_exact(2)
            .map(|w| (i64::from(w[0]) << 32) | i64::from(w[1] as u32))
            .collect())
    };
    Ok((
        read(first.take(port::LOWEST)?)?,
        read(first.take(port::HIGHEST)?)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_differing_value_is_named() {
        let values = [
            Shared {
                what: "starting step",
                value: 40,
            },
            Shared {
                what: "run configuration",
                value: 7,
            },
        ];
        assert!(compare(&values, &[40, 7], &[40, 7]).is_ok());
        let message = compare(&values, &[0, 7], &[40, 7]).unwrap_err().to_string();
        assert!(
            message.contains("starting step (from 0 to 40)"),
            "{message}"
        );
        let message = compare(&values, &[40, 3], &[40, 7])
            .unwrap_err()
            .to_string();
        assert!(message.contains("run configuration"), "{message}");
    }
}
