//! A check that all replicas of a run start from the same point. On a multi-host slice every
//! host launches the same command on its own and reads the checkpoint it resumes from on its
//! own; a host that resumed another step, or was started with other options, would train a
//! different program and deadlock or silently diverge in the collectives. Before the first step
//! each replica contributes the values it must agree on, and the graph returns their minimum
//! and maximum over all replicas: every host sees the same two rows and fails alike when they
//! differ.

use std::collections::HashMap;

use super::signature::{Port, Signature, StepGraph};
use crate::hlo::{error::Result, ArrayShape, BinaryOp, Builder, ElementType, HloError, Module};
use crate::nn::Replicas;

/// Port names of the agreement graph.
pub mod port {
    /// This replica's values (`s32[n]`).
    pub const VALUES: &str = "values";
    /// The elementwise minimum over the replicas.
    pub const LOWEST: &str = "lowest";
    /// The elementwise maximum over the replicas.
    pub const HIGHEST: &str = "highest";
}

/// The graph that reduces `len` 32-bit values to their minimum and maximum over `replicas`.
/// 32-bit, because libtpu lowers 64-bit integer all-reduces only for sums (found by the
/// deviceless compile); callers split wider values into words.
pub fn agreement_step(replicas: usize, len: usize) -> Result<StepGraph> {
    if replicas == 0 || len == 0 {
        return Err(HloError::new(
            "agreement",
            &[],
            format!("{replicas} replicas and {len} values must be positive"),
        ));
    }
    let values = ArrayShape::new(ElementType::S32, &[len as i64]);
    let signature = Signature::new(
        format!("agreement_{len}x{replicas}"),
        vec![Port::new(port::VALUES, values.clone())],
        vec![
            Port::new(port::LOWEST, values.clone()),
            Port::new(port::HIGHEST, values),
        ],
    );
    let mut b = Builder::new("agreement");
    let x = signature.declare_parameters(&mut b)?[port::VALUES];
    let group = Replicas::new(replicas as i64);
    let lowest = group.reduce(&mut b, x, BinaryOp::Minimum)?;
    let highest = group.reduce(&mut b, x, BinaryOp::Maximum)?;
    let results = HashMap::from([(port::LOWEST, lowest), (port::HIGHEST, highest)]);
    let root = signature.result_tuple(&mut b, &results)?;
    Ok(StepGraph {
        module: Module::new(signature.graph(), b.build(root)?),
        signature,
        replicas,
    })
}
