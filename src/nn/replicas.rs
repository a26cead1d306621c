//! Cross-replica reductions for data-parallel graphs: every replica runs the same program on its
//! share of the batch, and these combine per-replica values over all replicas.

use crate::hlo::{error::Result, BinaryOp, Builder, Computation, Value};

/// The replicas of a data-parallel program, all in one group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Replicas {
    count: i64,
}

impl Replicas {
    /// `count` replicas (at least one).
    pub fn new(count: i64) -> Replicas {
        Replicas {
            count: count.max(1),
        }
    }

    pub fn count(&self) -> i64 {
        self.count
    }

    /// `x` combined elementwise over the replicas with `op` (`x` itself for one replica).
    pub fn reduce(&self, b: &mut Builder, x: Value, op: BinaryOp) -> Result<Value> {
        if self.count == 1 {
            return Ok(x);
        }
        let ty = b.array_shape("all-reduce", x)?.ty();
        let reducer = Computation::binary_reducer(op, ty)?;
        let group: Vec<i64> = (0..self.count).collect();
        b.all_reduce(x, &[group], &reducer)
    }

    /// The sum of `x` over the replicas (`x` itself for one replica).
    pub fn sum(&self, b: &mut Builder, x: Value) -> Result<Value> {
        self.reduce(b, x, BinaryOp::Add)
    }

    /// The mean of a floating-point `x` over the replicas.
    pub fn mean(&self, b: &mut Builder, x: Value) -> Result<Value> {
        if self.count == 1 {
            return Ok(x);
        }
        let total = self.sum(b, x)?;
        let shape = b.array_shape("replica mean", x)?.clone();
        let count = b.full(&shape, self.count as f64)?;
        b.div(total, count)
    }
}
