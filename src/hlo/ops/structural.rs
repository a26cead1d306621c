//! Ops that move data between positions: iota, broadcast, reshape, transpose, slices, pad,
//! concatenate, reverse and gather.

use crate::hlo::builder::{Builder, Value};
use crate::hlo::element::ElementType;
use crate::hlo::error::{HloError, Result};
use crate::hlo::op::{GatherDimensionNumbers, Op, PadDim};
use crate::hlo::shape::{ArrayShape, Shape};

fn is_permutation(perm: &[i64], rank: usize) -> bool {
    let mut seen = vec![false; rank];
    perm.len() == rank
        && perm.iter().all(|&d| {
            let ok = d >= 0 && (d as usize) < rank && !seen[d as usize];
            if ok {
                seen[d as usize] = true;
            }
            ok
        })
}

impl Builder {
    /// An array of `shape` whose values count up along `dimension`.
    pub fn iota(&mut self, shape: &ArrayShape, dimension: i64) -> Result<Value> {
        if dimension < 0 || dimension as usize >= shape.rank() {
            return Err(HloError::new(
                "iota",
                &[],
                format!("dimension {dimension} is out of range for {shape}"),
            ));
        }
        if !shape.ty().is_numeric() {
            return Err(HloError::new(
                "iota",
                &[],
                format!("iota of element type {} is not defined", shape.ty()),
            ));
        }
        self.emit(Op::Iota { dimension }, &[], shape.clone().into())
    }

    /// Broadcasts `x` into an array of `dims`; operand dimension `i` maps to result dimension
    /// `mapping[i]` (XLA's `broadcast` with `dimensions`), mapped sizes must match.
    pub fn broadcast_in_dim(&mut self, x: Value, dims: &[i64], mapping: &[i64]) -> Result<Value> {
        self.check("broadcast", x)?;
        let s = self.array_shape("broadcast", x)?.clone();
        let err = |msg: String| Err(HloError::new("broadcast", &[&Shape::Array(s.clone())], msg));
        if mapping.len() != s.rank() {
            return err(format!(
                "{} dimension mappings for a rank-{} operand",
                mapping.len(),
                s.rank()
            ));
        }
        for (i, &m) in mapping.iter().enumerate() {
            if m < 0 || m as usize >= dims.len() || (i > 0 && m <= mapping[i - 1]) {
                return err(format!(
                    "dimension mapping {mapping:?} must be increasing and within rank {}",
                    dims.len()
                ));
            }
            if dims[m as usize] != s.dims()[i] {
                return err(format!(
                    "operand dimension {i} has size {} but result dimension {m} has size {}",
                    s.dims()[i],
                    dims[m as usize]
                ));
            }
        }
        let shape =
            ArrayShape::try_new(s.ty(), dims).map_err(|m| HloError::new("broadcast", &[], m))?;
        self.emit(
            Op::Broadcast {
                dimensions: mapping.to_vec(),
            },
            &[x],
            shape.into(),
        )
    }

    /// Broadcasts `x` to `dims` by prepending dimensions (numpy-style leading broadcast).
    pub fn broadcast(&mut self, x: Value, leading: &[i64]) -> Result<Value> {
        let s = self.array_shape("broadcast", x)?.clone();
        let dims: Vec<i64> = leading.iter().chain(s.dims()).copied().collect();
        let mapping: Vec<i64> = (leading.len() as i64..dims.len() as i64).collect();
        self.broadcast_in_dim(x, &dims, &mapping)
    }

    pub fn reshape(&mut self, x: Value, dims: &[i64]) -> Result<Value> {
        self.check("reshape", x)?;
        let s = self.array_shape("reshape", x)?.clone();
        let shape = ArrayShape::try_new(s.ty(), dims)
            .map_err(|m| HloError::new("reshape", &[self.shape(x)], m))?;
        if shape.element_count() != s.element_count() {
            return Err(HloError::new(
                "reshape",
                &[self.shape(x)],
                format!(
                    "cannot reshape {} elements into {dims:?} ({} elements)",
                    s.element_count(),
                    shape.element_count()
                ),
            ));
        }
        self.emit(Op::Reshape, &[x], shape.into())
    }

    /// Permutes dimensions: result dimension `i` is operand dimension `permutation[i]`.
    pub fn transpose(&mut self, x: Value, permutation: &[i64]) -> Result<Value> {
        self.check("transpose", x)?;
        let s = self.array_shape("transpose", x)?.clone();
        if !is_permutation(permutation, s.rank()) {
            return Err(HloError::new(
                "transpose",
                &[self.shape(x)],
                format!(
                    "{permutation:?} is not a permutation of {} dimensions",
                    s.rank()
                ),
            ));
        }
        let dims: Vec<i64> = permutation.iter().map(|&p| s.dims()[p as usize]).collect();
        self.emit(
            Op::Transpose {
                permutation: permutation.to_vec(),
            },
            &[x],
            ArrayShape::new(s.ty(), &dims).into(),
        )
    }

    /// Static slice `[start, limit)` with `stride` per dimension.
    pub fn slice(
        &mut self,
        x: Value,
        start: &[i64],
        limit: &[i64],
        stride: &[i64],
    ) -> Result<Value> {
        self.check("slice", x)?;
        let s = self.array_shape("slice", x)?.clone();
        let r = s.rank();
        if start.len() != r || limit.len() != r || stride.len() != r {
            return Err(HloError::new(
                "slice",
                &[self.shape(x)],
                format!("start/limit/stride need {r} entries each"),
            ));
        }
        let mut dims = Vec::with_capacity(r);
        for d in 0..r {
            if start[d] < 0 || start[d] > limit[d] || limit[d] > s.dims()[d] || stride[d] < 1 {
                return Err(HloError::new(
                    "slice",
                    &[self.shape(x)],
                    format!(
                        "dimension {d}: slice [{}:{}:{}] does not fit size {}",
                        start[d],
                        limit[d],
                        stride[d],
                        s.dims()[d]
                    ),
                ));
            }
            dims.push((limit[d] - start[d] + stride[d] - 1) / stride[d]);
        }
        let op = Op::Slice {
            start: start.to_vec(),
            limit: limit.to_vec(),
            stride: stride.to_vec(),
        };
        self.emit(op, &[x], ArrayShape::new(s.ty(), &dims).into())
    }

    /// Slice of `sizes` starting at runtime scalar indices (clamped into range by XLA).
    pub fn dynamic_slice(&mut self, x: Value, starts: &[Value], sizes: &[i64]) -> Result<Value> {
        self.check("dynamic-slice", x)?;
        let s = self.array_shape("dynamic-slice", x)?.clone();
        self.check_start_indices("dynamic-slice", x, starts, s.rank())?;
        if sizes.len() != s.rank() || sizes.iter().zip(s.dims()).any(|(&z, &d)| z < 0 || z > d) {
            return Err(HloError::new(
                "dynamic-slice",
                &[self.shape(x)],
                format!("slice sizes {sizes:?} do not fit the operand"),
            ));
        }
        let operands: Vec<Value> = std::iter::once(x).chain(starts.iter().copied()).collect();
        self.emit(
            Op::DynamicSlice {
                sizes: sizes.to_vec(),
            },
            &operands,
            ArrayShape::new(s.ty(), sizes).into(),
        )
    }

    /// Writes `update` into `x` at runtime scalar start indices.
    pub fn dynamic_update_slice(
        &mut self,
        x: Value,
        update: Value,
        starts: &[Value],
    ) -> Result<Value> {
        self.check("dynamic-update-slice", x)?;
        self.check("dynamic-update-slice", update)?;
        let s = self.array_shape("dynamic-update-slice", x)?.clone();
        let u = self.array_shape("dynamic-update-slice", update)?.clone();
        self.check_start_indices("dynamic-update-slice", x, starts, s.rank())?;
        if u.ty() != s.ty()
            || u.rank() != s.rank()
            || u.dims().iter().zip(s.dims()).any(|(a, b)| a > b)
        {
            return Err(HloError::new(
                "dynamic-update-slice",
                &[self.shape(x), self.shape(update)],
                "the update must have the operand's element type and rank and fit inside it",
            ));
        }
        let operands: Vec<Value> = [x, update]
            .into_iter()
            .chain(starts.iter().copied())
            .collect();
        self.emit(Op::DynamicUpdateSlice, &operands, s.into())
    }

    fn check_start_indices(&self, op: &str, x: Value, starts: &[Value], rank: usize) -> Result<()> {
        if starts.len() != rank {
            return Err(HloError::new(
                op,
                &[self.shape(x)],
                format!("{} start indices for rank {rank}", starts.len()),
            ));
        }
        let ty = self.array_shape(op, starts[0])?.ty();
        for &i in starts {
            self.check(op, i)?;
            let s = self.array_shape(op, i)?;
            if !s.is_scalar() || !s.ty().is_integer() || s.ty() != ty {
                return Err(HloError::new(
                    op,
                    &[self.shape(x), self.shape(i)],
                    "start indices must be integer scalars of one type",
                ));
            }
        }
        Ok(())
    }

    /// Pads with `value` (a scalar); negative low/high padding crops.
    pub fn pad(&mut self, x: Value, value: Value, config: &[PadDim]) -> Result<Value> {
        self.check("pad", x)?;
        self.check("pad", value)?;
        let s = self.array_shape("pad", x)?.clone();
        let v = self.array_shape("pad", value)?;
        if !v.is_scalar() || v.ty() != s.ty() {
            return Err(HloError::new(
                "pad",
                &[self.shape(x), self.shape(value)],
                "the padding value must be a scalar of the operand's type",
            ));
        }
        if config.len() != s.rank() {
            return Err(HloError::new(
                "pad",
                &[self.shape(x)],
                format!("{} padding entries for rank {}", config.len(), s.rank()),
            ));
        }
        let mut dims = Vec::with_capacity(s.rank());
        for (d, p) in config.iter().enumerate() {
            let size = s.dims()[d];
            let interior = if size > 0 { (size - 1) * p.interior } else { 0 };
            let out = size + interior + p.low + p.high;
            if p.interior < 0 || out < 0 {
                return Err(HloError::new(
                    "pad",
                    &[self.shape(x)],
                    format!("dimension {d}: padding {p:?} gives a negative size"),
                ));
            }
            dims.push(out);
        }
        self.emit(
            Op::Pad {
                config: config.to_vec(),
            },
            &[x, value],
            ArrayShape::new(s.ty(), &dims).into(),
        )
    }

    pub fn concatenate(&mut self, values: &[Value], dimension: i64) -> Result<Value> {
        if values.is_empty() {
            return Err(HloError::new(
                "concatenate",
                &[],
                "needs at least one operand",
            ));
        }
        for &v in values {
            self.check("concatenate", v)?;
        }
        let first = self.array_shape("concatenate", values[0])?.clone();
        let shapes: Vec<&Shape> = values.iter().map(|&v| self.shape(v)).collect();
        if dimension < 0 || dimension as usize >= first.rank() {
            return Err(HloError::new(
                "concatenate",
                &shapes,
                format!("dimension {dimension} is out of range"),
            ));
        }
        let mut dims = first.dims().to_vec();
        dims[dimension as usize] = 0;
        for &v in values {
            let s = self.array_shape("concatenate", v)?;
            let same_other = s.rank() == first.rank()
                && (0..s.rank()).all(|d| d == dimension as usize || s.dims()[d] == first.dims()[d]);
            if s.ty() != first.ty() || !same_other {
                return Err(HloError::new(
                    "concatenate",
                    &shapes,
                    format!("operands must agree in type and in every dimension but {dimension}"),
                ));
            }
            dims[dimension as usize] += s.dims()[dimension as usize];
        }
        self.emit(
            Op::Concatenate { dimension },
            values,
            ArrayShape::new(first.ty(), &dims).into(),
        )
    }

    pub fn reverse(&mut self, x: Value, dimensions: &[i64]) -> Result<Value> {
        self.check("reverse", x)?;
        let s = self.array_shape("reverse", x)?.clone();
        if dimensions.iter().any(|&d| d < 0 || d as usize >= s.rank()) {
            return Err(HloError::new(
                "reverse",
                &[self.shape(x)],
                format!("dimensions {dimensions:?} out of range"),
            ));
        }
        self.emit(
            Op::Reverse {
                dimensions: dimensions.to_vec(),
            },
            &[x],
            s.into(),
        )
    }

    /// XLA's `gather`: for every index vector of `indices` (integers), the slice of `slice_sizes`
    /// of `x` starting there (starts clamped into range by XLA), laid out as `dn` says: the
    /// result's dimensions are the indices' dimensions but `index_vector_dim`, with the slice's
    /// dimensions not in `collapsed_slice_dims` inserted at `offset_dims`.
    pub fn gather(
        &mut self,
        x: Value,
        indices: Value,
        dn: &GatherDimensionNumbers,
        slice_sizes: &[i64],
    ) -> Result<Value> {
        self.check("gather", x)?;
        self.check("gather", indices)?;
        let s = self.array_shape("gather", x)?.clone();
        let i = self.array_shape("gather", indices)?.clone();
        let shapes = [self.shape(x), self.shape(indices)];
        let err = |msg: String| Err(HloError::new("gather", &shapes, msg));
        if !i.ty().is_integer() {
            return err("the indices must be integers".into());
        }
        let rank = s.rank() as i64;
        let index_vector_dim = dn.index_vector_dim;
        if index_vector_dim < 0 || index_vector_dim > i.rank() as i64 {
            return err(format!(
                "index_vector_dim {index_vector_dim} is out of range"
            ));
        }
        let vector_len = i
            .dims()
            .get(index_vector_dim as usize)
            .copied()
            .unwrap_or(1);
        if dn.start_index_map.len() as i64 != vector_len {
            return err(format!(
                "start_index_map {:?} needs one entry per index vector element ({vector_len})",
                dn.start_index_map
            ));
        }
        let sorted_unique_in_range = |dims: &[i64], bound: i64| {
            dims.windows(2).all(|w| w[0] < w[1]) && dims.iter().all(|&d| d >= 0 && d < bound)
        };
        let mut mapped = dn.start_index_map.clone();
        mapped.sort_unstable();
        if !sorted_unique_in_range(&mapped, rank) {
            return err(format!(
                "start_index_map {:?} must name distinct operand dimensions",
                dn.start_index_map
            ));
        }
        if !sorted_unique_in_range(&dn.collapsed_slice_dims, rank) {
            return err(format!(
                "collapsed_slice_dims {:?} must be increasing operand dimensions",
                dn.collapsed_slice_dims
            ));
        }
        if slice_sizes.len() != s.rank()
            || slice_sizes
                .iter()
                .zip(s.dims())
                .any(|(&z, &d)| z < 0 || z > d)
        {
            return err(format!(
                "slice sizes {slice_sizes:?} do not fit the operand"
            ));
        }
        if dn
            .collapsed_slice_dims
            .iter()
            .any(|&d| slice_sizes[d as usize] > 1)
        {
            return err("collapsed slice dimensions must have size 1 (or 0)".into());
        }
        let kept: Vec<i64> = (0..rank)
            .filter(|d| !dn.collapsed_slice_dims.contains(d))
            .map(|d| slice_sizes[d as usize])
            .collect();
        let batch: Vec<i64> = i
            .dims()
            .iter()
            .enumerate()
            .filter(|&(d, _)| d as i64 != index_vector_dim)
            .map(|(_, &size)| size)
            .collect();
        let out_rank = (batch.len() + kept.len()) as i64;
        if dn.offset_dims.len() != kept.len() || !sorted_unique_in_range(&dn.offset_dims, out_rank)
        {
            return err(format!(
                "offset_dims {:?} must be {} increasing result dimensions",
                dn.offset_dims,
                kept.len()
            ));
        }
        let (mut kept, mut batch) = (kept.into_iter(), batch.into_iter());
        let dims: Vec<i64> = (0..out_rank)
            .map(|d| {
                let from = if dn.offset_dims.contains(&d) {
                    kept.next()
                } else {
                    batch.next()
                };
                from.expect("offset and batch dimensions add up to the result's rank")
            })
            .collect();
        self.emit(
            Op::Gather {
                dimension_numbers: dn.clone(),
                slice_sizes: slice_sizes.to_vec(),
            },
            &[x, indices],
            ArrayShape::new(s.ty(), &dims).into(),
        )
    }

    /// Iota of `ty` counting along `dimension` of `dims` (a convenience over [`Builder::iota`]).
    pub fn iota_of(&mut self, ty: ElementType, dims: &[i64], dimension: i64) -> Result<Value> {
        self.iota(&ArrayShape::new(ty, dims), dimension)
    }
}
