//! The proto forms of shapes and literals, shared by the module encoder ([`super::encode`]) and
//! the attribute descriptions ([`super::attribute`]: a constant's value). Kept apart from the
//! encoder so that an op's attributes need nothing that knows about computations and modules.

use super::element::{from_bytes, ElementType};
use super::literal::Literal;
use super::proto_messages as pb;
use super::shape::Shape;

/// A shape with its layout (XLA rejects array shapes without one).
pub fn shape_proto(shape: &Shape) -> pb::ShapeProto {
    match shape {
        Shape::Array(a) => pb::ShapeProto {
            element_type: pb::PrimitiveType::from(a.ty()) as i32,
            dimensions: a.dims().to_vec(),
            tuple_shapes: Vec::new(),
            layout: Some(pb::LayoutProto {
                minor_to_major: a.minor_to_major().to_vec(),
            }),
            is_dynamic_dimension: vec![false; a.rank()],
        },
        Shape::Tuple(elems) => pb::ShapeProto {
            element_type: pb::PrimitiveType::Tuple as i32,
            tuple_shapes: elems.iter().map(shape_proto).collect(),
            ..Default::default()
        },
    }
}

/// A literal in the typed field XLA reads for its element type (half types as raw bytes).
pub fn literal_proto(lit: &Literal) -> pb::LiteralProto {
    let b = lit.bytes();
    let mut p = pb::LiteralProto {
        shape: Some(shape_proto(&Shape::Array(lit.shape().clone()))),
        ..Default::default()
    };
    match lit.ty() {
        ElementType::Pred => p.preds = from_bytes(b),
        ElementType::S8 => p.s8s = b.to_vec(),
        ElementType::U8 => p.u8s = b.to_vec(),
        ElementType::S32 => p.s32s = from_bytes(b),
        ElementType::S64 => p.s64s = from_bytes(b),
        ElementType::U32 => p.u32s = from_bytes(b),
        ElementType::U64 => p.u64s = from_bytes(b),
        ElementType::F32 => p.f32s = from_bytes(b),
        ElementType::F64 => p.f64s = from_bytes(b),
        ElementType::F16 => p.f16s = b.to_vec(),
        ElementType::Bf16 => p.bf16s = b.to_vec(),
    }
    p
}
