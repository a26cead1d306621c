//! Reductions: reduce (multi-operand), reduce-window (pooling), select-and-scatter (the
//! gradient of max pooling) and all-reduce (across replicas).

use crate::hlo::builder::{Builder, Computation, Value};
use crate::hlo::element::ElementType;
use crate::hlo::error::{HloError, Result};
use crate::hlo::op::{BinaryOp, Op, WindowDim};
use crate::hlo::shape::{ArrayShape, Shape};

impl Computation {
    /// The scalar computation `(a, b) -> op(a, b)` over `ty`, e.g. the `sum` reducer.
    pub fn binary_reducer(op: BinaryOp, ty: ElementType) -> Result<Computation> {
        let mut b = Builder::new(format!("{}_{}", op.opcode(), ty));
        let x = b.parameter(0, Shape::scalar(ty), "lhs")?;
        let y = b.parameter(1, Shape::scalar(ty), "rhs")?;
        let r = b.binary(op, x, y)?;
        b.build(r)
    }
}

impl Builder {
    /// Checks that `reducer` takes `2n` scalars of the given types and returns them (a scalar
    /// for `n == 1`, else an `n`-tuple).
    fn check_reducer(
        &self,
        op: &str,
        reducer: &Computation,
        types: &[ElementType],
        operands: &[&Shape],
    ) -> Result<()> {
        let expected: Vec<Shape> = types
            .iter()
            .chain(types)
            .map(|&t| Shape::scalar(t))
            .collect();
        let params: Vec<Shape> = reducer.parameter_shapes().into_iter().cloned().collect();
        let result = if types.len() == 1 {
            Shape::scalar(types[0])
        } else {
            Shape::Tuple(types.iter().map(|&t| Shape::scalar(t)).collect())
        };
        let params_ok = params.len() == expected.len()
            && params.iter().zip(&expected).all(|(a, b)| a.compatible(b));
        if !params_ok || !reducer.result_shape().compatible(&result) {
            let got: Vec<String> = params.iter().map(|s| s.to_string()).collect();
            return Err(HloError::new(
                op,
                operands,
                format!(
                    "reducer '{}' has signature ({}) -> {}, expected ({}) -> {}",
                    reducer.name(),
                    got.join(", "),
                    reducer.result_shape(),
                    expected
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    result
                ),
            ));
        }
        Ok(())
    }

    /// Reduces `operands` (same dimensions) over `dimensions` with `reducer`, starting from the
    /// scalar `inits`. One operand gives an array; several give a tuple.
    pub fn reduce(
        &mut self,
        operands: &[Value],
        inits: &[Value],
        dimensions: &[i64],
        reducer: &Computation,
    ) -> Result<Value> {
        if operands.is_empty() || operands.len() != inits.len() {
            return Err(HloError::new(
                "reduce",
                &[],
                "needs one scalar init value per operand (at least one operand)",
            ));
        }
        for &v in operands.iter().chain(inits) {
            self.check("reduce", v)?;
        }
        let all: Vec<&Shape> = operands
            .iter()
            .chain(inits)
            .map(|&v| self.shape(v))
            .collect();
        let first = self.array_shape("reduce", operands[0])?.clone();
        let mut types = Vec::new();
        for (&v, &init) in operands.iter().zip(inits) {
            let s = self.array_shape("reduce", v)?;
            let i = self.array_shape("reduce", init)?;
            if s.dims() != first.dims() || !i.is_scalar() || i.ty() != s.ty() {
                return Err(HloError::new("reduce", &all, "operands must share dimensions and each init must be a scalar of its operand's type"));
            }
            types.push(s.ty());
        }
        let mut sorted = dimensions.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != dimensions.len()
            || sorted.iter().any(|&d| d < 0 || d as usize >= first.rank())
        {
            return Err(HloError::new(
                "reduce",
                &all,
                format!(
                    "reduced dimensions {dimensions:?} must be distinct and below rank {}",
                    first.rank()
                ),
            ));
        }
        self.check_reducer("reduce", reducer, &types, &all)?;
        let kept: Vec<i64> = (0..first.rank())
            .filter(|d| !sorted.contains(&(*d as i64)))
            .map(|d| first.dims()[d])
            .collect();
        let shape = if types.len() == 1 {
            Shape::array(types[0], &kept)
        } else {
            Shape::Tuple(types.iter().map(|&t| Shape::array(t, &kept)).collect())
        };
        let reducer = self.call(reducer);
        let values: Vec<Value> = operands.iter().chain(inits).copied().collect();
        self.emit(
            Op::Reduce {
                dimensions: dimensions.to_vec(),
                reducer,
            },
            &values,
            shape,
        )
    }

    /// Reduces `x` over `dimensions` with a binary op (sum, max, ...) from `init`.
    pub fn reduce_binary(
        &mut self,
        x: Value,
        op: BinaryOp,
        init: f64,
        dimensions: &[i64],
    ) -> Result<Value> {
        let ty = self.array_shape("reduce", x)?.ty();
        let reducer = Computation::binary_reducer(op, ty)?;
        let init = self.scalar_of(ty, init)?;
        self.reduce(&[x], &[init], dimensions, &reducer)
    }

    /// Sum of `x` over `dimensions`.
    pub fn reduce_sum(&mut self, x: Value, dimensions: &[i64]) -> Result<Value> {
        self.reduce_binary(x, BinaryOp::Add, 0.0, dimensions)
    }

    /// Maximum of `x` over `dimensions`.
    pub fn reduce_max(&mut self, x: Value, dimensions: &[i64]) -> Result<Value> {
        self.reduce_binary(x, BinaryOp::Maximum, f64::NEG_INFINITY, dimensions)
    }

    fn window_output(&self, op: &str, operand: Value, window: &[WindowDim]) -> Result<Vec<i64>> {
        let s = self.array_shape(op, operand)?;
        if window.len() != s.rank() {
            return Err(HloError::new(
                op,
                &[self.shape(operand)],
                format!(
                    "window has {} dimensions, operand rank is {}",
                    window.len(),
                    s.rank()
                ),
            ));
        }
        s.dims()
            .iter()
            .zip(window)
            .enumerate()
            .map(|(d, (&n, w))| {
                w.output_size(n).ok_or_else(|| {
                    HloError::new(
                        op,
                        &[self.shape(operand)],
                        format!("window dimension {d} {w:?} is invalid for size {n}"),
                    )
                })
            })
            .collect()
    }

    /// Sliding-window reduction (pooling) of one operand; `window` has one entry per dimension.
    pub fn reduce_window(
        &mut self,
        x: Value,
        init: Value,
        window: &[WindowDim],
        reducer: &Computation,
    ) -> Result<Value> {
        self.check("reduce-window", x)?;
        self.check("reduce-window", init)?;
        let s = self.array_shape("reduce-window", x)?.clone();
        let i = self.array_shape("reduce-window", init)?;
        if !i.is_scalar() || i.ty() != s.ty() {
            return Err(HloError::new(
                "reduce-window",
                &[self.shape(x), self.shape(init)],
                "init must be a scalar of the operand's type",
            ));
        }
        self.check_reducer("reduce-window", reducer, &[s.ty()], &[self.shape(x)])?;
        let dims = self.window_output("reduce-window", x, window)?;
        let reducer = self.call(reducer);
        self.emit(
            Op::ReduceWindow {
                window: window.to_vec(),
                reducer,
            },
            &[x, init],
            ArrayShape::new(s.ty(), &dims).into(),
        )
    }

    /// For each window of `operand`, picks one element with `select` and scatter-adds (with
    /// `scatter`) the matching element of `source` into it; the result has `operand`'s shape.
    pub fn select_and_scatter(
        &mut self,
        operand: Value,
        select: &Computation,
        window: &[WindowDim],
        source: Value,
        init: Value,
        scatter: &Computation,
    ) -> Result<Value> {
        for v in [operand, source, init] {
            self.check("select-and-scatter", v)?;
        }
        let all = [self.shape(operand), self.shape(source), self.shape(init)];
        let s = self.array_shape("select-and-scatter", operand)?.clone();
        let src = self.array_shape("select-and-scatter", source)?.clone();
        let out = self.window_output("select-and-scatter", operand, window)?;
        if src.dims() != out.as_slice() || src.ty() != s.ty() {
            return Err(HloError::new(
                "select-and-scatter",
                &all,
                format!(
                    "source must have the windowed output shape {:?} and the operand's type",
                    out
                ),
            ));
        }
        let sel_ok = select.parameter_shapes().len() == 2
            && select
                .parameter_shapes()
                .iter()
                .all(|p| p.compatible(&Shape::scalar(s.ty())))
            && select
                .result_shape()
                .compatible(&Shape::scalar(ElementType::Pred));
        if !sel_ok {
            return Err(HloError::new(
                "select-and-scatter",
                &all,
                format!(
                    "select '{}' must map two {} scalars to pred",
                    select.name(),
                    s.ty()
                ),
            ));
        }
        self.check_reducer("select-and-scatter", scatter, &[s.ty()], &all)?;
        let (select, scatter) = (self.call(select), self.call(scatter));
        self.emit(
            Op::SelectAndScatter {
                window: window.to_vec(),
                select,
                scatter,
            },
            &[operand, source, init],
            s.into(),
        )
    }

    /// Reduces `x` across the replicas of each group (e.g. summing gradients for data parallelism).
    pub fn all_reduce(
        &mut self,
        x: Value,
        replica_groups: &[Vec<i64>],
        reducer: &Computation,
    ) -> Result<Value> {
        self.check("all-reduce", x)?;
        let s = self.array_shape("all-reduce", x)?.clone();
        let scalar = Shape::scalar(s.ty());
        let ok = reducer.parameter_shapes().len() == 2
            && reducer
                .parameter_shapes()
                .iter()
                .all(|p| p.compatible(&scalar))
            && reducer.result_shape().compatible(&scalar);
        if !ok {
            return Err(HloError::new(
                "all-reduce",
                &[self.shape(x)],
                format!(
                    "reducer '{}' must combine two {} scalars",
                    reducer.name(),
                    s.ty()
                ),
            ));
        }
        let reducer = self.call(reducer);
        self.emit(
            Op::AllReduce {
                replica_groups: replica_groups.to_vec(),
                reducer,
            },
            &[x],
            s.into(),
        )
    }
}
