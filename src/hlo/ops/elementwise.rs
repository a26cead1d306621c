//! Elementwise ops: constants, unary and binary math, comparisons, select, clamp and conversions.

use crate::hlo::builder::{Builder, Value};
use crate::hlo::element::{ElementType, NativeType};
use crate::hlo::error::{HloError, Result};
use crate::hlo::literal::Literal;
use crate::hlo::op::{BinaryOp, ComparisonDirection, Op, UnaryOp};
use crate::hlo::shape::{ArrayShape, Shape};

impl Builder {
    pub fn constant(&mut self, literal: Literal) -> Result<Value> {
        let shape = Shape::Array(literal.shape().clone());
        self.emit(Op::Constant(literal), &[], shape)
    }

    /// A scalar constant of a native Rust type.
    pub fn scalar<T: NativeType>(&mut self, value: T) -> Result<Value> {
        self.constant(Literal::scalar(value))
    }

    /// A scalar constant of element type `ty` holding `value` (rounded/truncated as a cast would).
    pub fn scalar_of(&mut self, ty: ElementType, value: f64) -> Result<Value> {
        self.constant(scalar_literal(ty, value))
    }

    /// An array of `shape`'s dimensions and element type filled with `value`.
    pub fn full(&mut self, shape: &ArrayShape, value: f64) -> Result<Value> {
        let s = self.scalar_of(shape.ty(), value)?;
        self.broadcast_in_dim(s, shape.dims(), &[])
    }

    /// An array shaped like `v` filled with `value`.
    pub fn full_like(&mut self, v: Value, value: f64) -> Result<Value> {
        let shape = self.array_shape("full_like", v)?.clone();
        self.full(&shape, value)
    }

    pub fn unary(&mut self, op: UnaryOp, x: Value) -> Result<Value> {
        self.check(op.opcode(), x)?;
        let shape = self.array_shape(op.opcode(), x)?.clone();
        let ty = shape.ty();
        if !op.domain().contains(ty) {
            return Err(HloError::new(
                op.opcode(),
                &[self.shape(x)],
                format!("not defined for element type {ty}"),
            ));
        }
        let result = shape.with_ty(op.result_type(ty));
        self.emit(Op::Unary(op), &[x], result.into())
    }

    pub fn binary(&mut self, op: BinaryOp, lhs: Value, rhs: Value) -> Result<Value> {
        self.check(op.opcode(), lhs)?;
        self.check(op.opcode(), rhs)?;
        let shape = self.same_shapes(op.opcode(), &[lhs, rhs])?;
        let ty = shape.ty();
        if !op.domain().contains(ty) {
            return Err(HloError::new(
                op.opcode(),
                &[self.shape(lhs), self.shape(rhs)],
                format!("not defined for element type {ty}"),
            ));
        }
        self.emit(Op::Binary(op), &[lhs, rhs], shape.into())
    }

    pub fn compare(
        &mut self,
        direction: ComparisonDirection,
        lhs: Value,
        rhs: Value,
    ) -> Result<Value> {
        self.check("compare", lhs)?;
        self.check("compare", rhs)?;
        let shape = self.same_shapes("compare", &[lhs, rhs])?;
        self.emit(
            Op::Compare { direction },
            &[lhs, rhs],
            shape.with_ty(ElementType::Pred).into(),
        )
    }

    /// `pred ? on_true : on_false` elementwise; `pred` is a pred array of the same dimensions (or a
    /// pred scalar).
    pub fn select(&mut self, pred: Value, on_true: Value, on_false: Value) -> Result<Value> {
        for v in [pred, on_true, on_false] {
            self.check("select", v)?;
        }
        let shape = self.same_shapes("select", &[on_true, on_false])?;
        let p = self.array_shape("select", pred)?;
        if p.ty() != ElementType::Pred || (!p.is_scalar() && p.dims() != shape.dims()) {
            return Err(HloError::new(
                "select",
                &[self.shape(pred), self.shape(on_true), self.shape(on_false)],
                "the predicate must be a pred array with the dimensions of the other operands (or a pred scalar)",
            ));
        }
        self.emit(Op::Select, &[pred, on_true, on_false], shape.into())
    }

    /// `min(max(x, lo), hi)`; `lo` and `hi` are scalars or arrays shaped like `x`.
    pub fn clamp(&mut self, lo: Value, x: Value, hi: Value) -> Result<Value> {
        for v in [lo, x, hi] {
            self.check("clamp", v)?;
        }
        let shape = self.array_shape("clamp", x)?.clone();
        for bound in [lo, hi] {
            let b = self.array_shape("clamp", bound)?;
            if b.ty() != shape.ty() || (!b.is_scalar() && b.dims() != shape.dims()) {
                return Err(HloError::new(
                    "clamp",
                    &[self.shape(lo), self.shape(x), self.shape(hi)],
                    "bounds must be scalars or arrays with the operand's shape and element type",
                ));
            }
        }
        self.emit(Op::Clamp, &[lo, x, hi], shape.into())
    }

    /// Converts element values to another type (a cast, not a reinterpretation).
    pub fn convert(&mut self, x: Value, ty: ElementType) -> Result<Value> {
        self.check("convert", x)?;
        let shape = self.array_shape("convert", x)?.with_ty(ty);
        self.emit(Op::Convert, &[x], shape.into())
    }

    /// Reinterprets the bits of each element as another type of the same width.
    pub fn bitcast_convert(&mut self, x: Value, ty: ElementType) -> Result<Value> {
        self.check("bitcast-convert", x)?;
        let shape = self.array_shape("bitcast-convert", x)?.clone();
        if shape.ty().byte_size() != ty.byte_size() {
            return Err(HloError::new(
                "bitcast-convert",
                &[self.shape(x)],
                format!(
                    "cannot reinterpret {} as {ty}: element widths differ",
                    shape.ty()
                ),
            ));
        }
        self.emit(Op::BitcastConvert, &[x], shape.with_ty(ty).into())
    }

    /// The common array shape of `values`; an error when element types or dimensions differ.
    pub(crate) fn same_shapes(&self, op: &str, values: &[Value]) -> Result<ArrayShape> {
        let first = self.array_shape(op, values[0])?.clone();
        for &v in &values[1..] {
            let s = self.array_shape(op, v)?;
            if !s.compatible(&first) {
                let shapes: Vec<&Shape> = values.iter().map(|&v| self.shape(v)).collect();
                return Err(HloError::new(
                    op,
                    &shapes,
                    "operands must have the same element type and dimensions",
                ));
            }
        }
        Ok(first)
    }
}

macro_rules! unary_methods {
    ($($name:ident => $op:ident),* $(,)?) => {
        impl Builder {$(
            #[doc = concat!("Elementwise `", stringify!($name), "`.")]
            pub fn $name(&mut self, x: Value) -> Result<Value> {
                self.unary(UnaryOp::$op, x)
            }
        )*}
    };
}

unary_methods!(neg => Negate, abs => Abs, sign => Sign, exp => Exp, expm1 => Expm1, log => Log,
    log1p => Log1p, sqrt => Sqrt, rsqrt => Rsqrt, tanh => Tanh, logistic => Logistic, floor => Floor,
    ceil => Ceil, round => Round, is_finite => IsFinite, not => Not, cos => Cos, sin => Sin);

macro_rules! binary_methods {
    ($($name:ident => $op:ident),* $(,)?) => {
        impl Builder {$(
            #[doc = concat!("Elementwise `", stringify!($name), "` of two arrays of the same shape.")]
            pub fn $name(&mut self, lhs: Value, rhs: Value) -> Result<Value> {
                self.binary(BinaryOp::$op, lhs, rhs)
            }
        )*}
    };
}

binary_methods!(add => Add, sub => Subtract, mul => Multiply, div => Divide, max => Maximum,
    min => Minimum, pow => Power, rem => Remainder, atan2 => Atan2, and => And, or => Or, xor => Xor,
    shift_left => ShiftLeft, shift_right_logical => ShiftRightLogical);

/// A scalar literal of `ty` holding `value` converted as `as` would.
pub fn scalar_literal(ty: ElementType, value: f64) -> Literal {
    match ty {
        ElementType::Pred => Literal::scalar(value != 0.0),
        ElementType::S8 => Literal::scalar(value as i8),
        ElementType::S32 => Literal::scalar(value as i32),
        ElementType::S64 => Literal::scalar(value as i64),
        ElementType::U8 => Literal::scalar(value as u8),
        ElementType::U32 => Literal::scalar(value as u32),
        ElementType::U64 => Literal::scalar(value as u64),
        ElementType::F16 => Literal::scalar(half::f16::from_f64(value)),
        ElementType::Bf16 => Literal::scalar(half::bf16::from_f64(value)),
        ElementType::F32 => Literal::scalar(value as f32),
        ElementType::F64 => Literal::scalar(value),
    }
}
