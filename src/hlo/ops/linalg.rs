//! Convolution and dot-general: the ops that carry almost all of a network's arithmetic.

use crate::hlo::builder::{Builder, Value};
use crate::hlo::error::{HloError, Result};
use crate::hlo::op::{ConvDimensionNumbers, DotDimensionNumbers, Op, WindowDim};
use crate::hlo::shape::{ArrayShape, Shape};

/// The attributes of a convolution besides its operands.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvSpec {
    /// One entry per spatial dimension: kernel size, stride, padding, lhs (base) and rhs (window)
    /// dilation.
    pub window: Vec<WindowDim>,
    pub dimension_numbers: ConvDimensionNumbers,
    /// Splits input features into groups (channels for a depthwise convolution).
    pub feature_group_count: i64,
    /// Splits the batch into groups (used by the gradient of grouped convolutions).
    pub batch_group_count: i64,
}

impl Builder {
    pub fn convolution(&mut self, lhs: Value, rhs: Value, spec: &ConvSpec) -> Result<Value> {
        self.check("convolution", lhs)?;
        self.check("convolution", rhs)?;
        let l = self.array_shape("convolution", lhs)?.clone();
        let r = self.array_shape("convolution", rhs)?.clone();
        let fail = |msg: String| {
            Err(HloError::new(
                "convolution",
                &[&Shape::Array(l.clone()), &Shape::Array(r.clone())],
                msg,
            ))
        };
        let dn = &spec.dimension_numbers;
        let n = spec.window.len();
        let rank = n + 2;
        if l.ty() != r.ty() {
            return fail(format!("input is {} but kernel is {}", l.ty(), r.ty()));
        }
        if l.rank() != rank || r.rank() != rank {
            return fail(format!(
                "{n} spatial window dimensions need rank-{rank} input and kernel"
            ));
        }
        if dn.input_spatial.len() != n
            || dn.kernel_spatial.len() != n
            || dn.output_spatial.len() != n
        {
            return fail(format!(
                "dimension numbers must list {n} spatial dimensions for input, kernel and output"
            ));
        }
        let perm_ok = |dims: Vec<i64>| {
            let mut d = dims;
            d.sort_unstable();
            d == (0..rank as i64).collect::<Vec<_>>()
        };
        let input_roles = [&[dn.input_batch, dn.input_feature][..], &dn.input_spatial].concat();
        let kernel_roles = [
            &[dn.kernel_input_feature, dn.kernel_output_feature][..],
            &dn.kernel_spatial,
        ]
        .concat();
        let output_roles = [
            &[dn.output_batch, dn.output_feature][..],
            &dn.output_spatial,
        ]
        .concat();
        if !perm_ok(input_roles) || !perm_ok(kernel_roles) || !perm_ok(output_roles.clone()) {
            return fail(format!(
                "dimension numbers {} do not assign each dimension exactly one role",
                dn.labels()
            ));
        }
        let (fgc, bgc) = (spec.feature_group_count, spec.batch_group_count);
        if fgc < 1 || bgc < 1 || (fgc > 1 && bgc > 1) {
            return fail(format!("feature_group_count {fgc} and batch_group_count {bgc} must be >= 1 and not both > 1"));
        }
        let in_features = l.dims()[dn.input_feature as usize];
        let kernel_in = r.dims()[dn.kernel_input_feature as usize];
        let kernel_out = r.dims()[dn.kernel_output_feature as usize];
        let batch = l.dims()[dn.input_batch as usize];
        if in_features != kernel_in * fgc {
            return fail(format!("input has {in_features} features but kernel input features {kernel_in} x feature_group_count {fgc} = {}", kernel_in * fgc));
        }
        if kernel_out % fgc != 0 || kernel_out % bgc != 0 {
            return fail(format!("kernel output features {kernel_out} must be divisible by the group counts ({fgc}, {bgc})"));
        }
        if batch % bgc != 0 {
            return fail(format!(
                "batch {batch} is not divisible by batch_group_count {bgc}"
            ));
        }
        let mut out = vec![0; rank];
        out[dn.output_batch as usize] = batch / bgc;
        out[dn.output_feature as usize] = kernel_out;
        for i in 0..n {
            let w = spec.window[i];
            let k = r.dims()[dn.kernel_spatial[i] as usize];
            if w.size != k {
                return fail(format!(
                    "window size {} of spatial dimension {i} differs from the kernel size {k}",
                    w.size
                ));
            }
            let input = l.dims()[dn.input_spatial[i] as usize];
            out[dn.output_spatial[i] as usize] = match w.output_size(input) {
                Some(o) => o,
                None => return fail(format!("window {w:?} is invalid for spatial size {input}")),
            };
        }
        let op = Op::Convolution {
            window: spec.window.clone(),
            dimension_numbers: dn.clone(),
            feature_group_count: fgc,
            batch_group_count: bgc,
        };
        self.emit(op, &[lhs, rhs], ArrayShape::new(l.ty(), &out).into())
    }

    /// The same convolution as [`Builder::convolution`], emitted in the canonical form
    /// (input `[batch, spatial.., feature]`, kernel `[spatial.., in, out]`, output like the
    /// input) with explicit transposes of operands and result where they are laid out
    /// otherwise. XLA:CPU runs only canonical convolutions on its fast (Eigen) path and puts
    /// other ones into that form itself only in the entry computation, so a convolution in a
    /// loop body must arrive canonical; other backends fold such transposes into the
    /// convolution's own dimension numbers.
    pub fn canonical_convolution(
        &mut self,
        lhs: Value,
        rhs: Value,
        spec: &ConvSpec,
    ) -> Result<Value> {
        let dn = &spec.dimension_numbers;
        let n = dn.input_spatial.len() as i64;
        let input_order: Vec<i64> = std::iter::once(dn.input_batch)
            .chain(dn.input_spatial.iter().copied())
            .chain([dn.input_feature])
            .collect();
        let kernel_order: Vec<i64> = dn
            .kernel_spatial
            .iter()
            .copied()
            .chain([dn.kernel_input_feature, dn.kernel_output_feature])
            .collect();
        let lhs = self.permuted(lhs, &input_order)?;
        let rhs = self.permuted(rhs, &kernel_order)?;
        let canonical = ConvSpec {
            dimension_numbers: ConvDimensionNumbers::canonical(n as usize),
            ..spec.clone()
        };
        let out = self.convolution(lhs, rhs, &canonical)?;
        // Result dimension d is canonical dimension `back[d]`.
        let mut back = vec![0; n as usize + 2];
        back[dn.output_batch as usize] = 0;
        for (i, &d) in dn.output_spatial.iter().enumerate() {
            back[d as usize] = 1 + i as i64;
        }
        back[dn.output_feature as usize] = n + 1;
        self.permuted(out, &back)
    }

    /// `x` transposed by `permutation`, or `x` itself for the identity.
    fn permuted(&mut self, x: Value, permutation: &[i64]) -> Result<Value> {
        if permutation.iter().enumerate().all(|(i, &p)| p == i as i64) {
            return Ok(x);
        }
        self.transpose(x, permutation)
    }

    /// General tensor contraction. The result lists batch dimensions, then the free dimensions of
    /// `lhs`, then those of `rhs`, each in operand order.
    pub fn dot_general(
        &mut self,
        lhs: Value,
        rhs: Value,
        dn: &DotDimensionNumbers,
    ) -> Result<Value> {
        self.check("dot", lhs)?;
        self.check("dot", rhs)?;
        let l = self.array_shape("dot", lhs)?.clone();
        let r = self.array_shape("dot", rhs)?.clone();
        let fail = |msg: String| {
            Err(HloError::new(
                "dot",
                &[&Shape::Array(l.clone()), &Shape::Array(r.clone())],
                msg,
            ))
        };
        if l.ty() != r.ty() {
            return fail(format!(
                "operands have different element types {} and {}",
                l.ty(),
                r.ty()
            ));
        }
        if dn.lhs_contracting.len() != dn.rhs_contracting.len()
            || dn.lhs_batch.len() != dn.rhs_batch.len()
        {
            return fail(
                "lhs and rhs must list the same number of contracting and batch dimensions".into(),
            );
        }
        let valid = |dims: &[i64], rank: usize| {
            let mut seen = vec![false; rank];
            dims.iter().all(|&d| {
                let ok = d >= 0 && (d as usize) < rank && !seen[d as usize];
                if ok {
                    seen[d as usize] = true;
                }
                ok
            })
        };
        let l_used = [&dn.lhs_batch[..], &dn.lhs_contracting].concat();
        let r_used = [&dn.rhs_batch[..], &dn.rhs_contracting].concat();
        if !valid(&l_used, l.rank()) || !valid(&r_used, r.rank()) {
            return fail(format!(
                "dimension numbers {dn:?} repeat a dimension or exceed the operand ranks"
            ));
        }
        for (&a, &b) in dn
            .lhs_contracting
            .iter()
            .zip(&dn.rhs_contracting)
            .chain(dn.lhs_batch.iter().zip(&dn.rhs_batch))
        {
            if l.dims()[a as usize] != r.dims()[b as usize] {
                return fail(format!(
                    "lhs dimension {a} (size {}) does not match rhs dimension {b} (size {})",
                    l.dims()[a as usize],
                    r.dims()[b as usize]
                ));
            }
        }
        let mut out: Vec<i64> = dn.lhs_batch.iter().map(|&d| l.dims()[d as usize]).collect();
        out.extend(
            (0..l.rank() as i64)
                .filter(|d| !l_used.contains(d))
                .map(|d| l.dims()[d as usize]),
        );
        out.extend(
            (0..r.rank() as i64)
                .filter(|d| !r_used.contains(d))
                .map(|d| r.dims()[d as usize]),
        );
        self.emit(
            Op::Dot {
                dimension_numbers: dn.clone(),
            },
            &[lhs, rhs],
            ArrayShape::new(l.ty(), &out).into(),
        )
    }

    /// Matrix product of `[.., m, k]` and `[k, n]` (contracting the last dimension of `lhs`).
    pub fn matmul(&mut self, lhs: Value, rhs: Value) -> Result<Value> {
        let rank = self.array_shape("dot", lhs)?.rank() as i64;
        let dn = DotDimensionNumbers {
            lhs_contracting: vec![rank - 1],
            rhs_contracting: vec![0],
            ..Default::default()
        };
        self.dot_general(lhs, rhs, &dn)
    }
}
