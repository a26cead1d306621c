//! Array and tuple shapes with explicit layouts.

use std::fmt;

use super::element::ElementType;

/// An array shape: element type, dimension sizes and a layout.
///
/// The layout is XLA's `minor_to_major` permutation. Every shape built by this crate defaults to
/// the dense row-major layout (`[rank-1, ..., 0]`), which is what host buffers use; XLA requires a
/// layout on every shape of a serialized module, so it is never left implicit.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ArrayShape {
    ty: ElementType,
    dims: Vec<i64>,
    minor_to_major: Vec<i64>,
}

impl ArrayShape {
    /// A row-major array shape. Panics never: negative sizes are rejected by [`ArrayShape::try_new`];
    /// this constructor is for sizes the caller already knows to be valid.
    pub fn new(ty: ElementType, dims: &[i64]) -> ArrayShape {
        let rank = dims.len() as i64;
        ArrayShape {
            ty,
            dims: dims.to_vec(),
            minor_to_major: (0..rank).rev().collect(),
        }
    }

    /// Like [`ArrayShape::new`] but checks that every size is non-negative.
    pub fn try_new(ty: ElementType, dims: &[i64]) -> Result<ArrayShape, String> {
        if let Some(d) = dims.iter().find(|d| **d < 0) {
            return Err(format!("negative dimension size {d} in {dims:?}"));
        }
        Ok(ArrayShape::new(ty, dims))
    }

    /// An array shape with an explicit `minor_to_major` layout (a permutation of `0..rank`).
    pub fn with_layout(
        ty: ElementType,
        dims: &[i64],
        minor_to_major: &[i64],
    ) -> Result<ArrayShape, String> {
        let mut sorted = minor_to_major.to_vec();
        sorted.sort_unstable();
        if sorted != (0..dims.len() as i64).collect::<Vec<_>>() {
            return Err(format!(
                "layout {minor_to_major:?} is not a permutation of the {} dimensions",
                dims.len()
            ));
        }
        let mut shape = ArrayShape::try_new(ty, dims)?;
        shape.minor_to_major = minor_to_major.to_vec();
        Ok(shape)
    }

    pub fn scalar(ty: ElementType) -> ArrayShape {
        ArrayShape::new(ty, &[])
    }

    pub fn ty(&self) -> ElementType {
        self.ty
    }

    pub fn dims(&self) -> &[i64] {
        &self.dims
    }

    pub fn rank(&self) -> usize {
        self.dims.len()
    }

    pub fn minor_to_major(&self) -> &[i64] {
        &self.minor_to_major
    }

    pub fn element_count(&self) -> i64 {
        self.dims.iter().product()
    }

    pub fn byte_size(&self) -> usize {
        self.element_count() as usize * self.ty.byte_size()
    }

    pub fn is_scalar(&self) -> bool {
        self.dims.is_empty()
    }

    /// The same dimensions with another element type (layout kept).
    pub fn with_ty(&self, ty: ElementType) -> ArrayShape {
        ArrayShape { ty, ..self.clone() }
    }

    /// Whether dims and element type agree (layouts are ignored, as XLA's compatibility check does).
    pub fn compatible(&self, other: &ArrayShape) -> bool {
        self.ty == other.ty && self.dims == other.dims
    }
}

impl fmt::Display for ArrayShape {
    /// XLA's text form: `f32[2,3]{1,0}`; scalars print as `f32[]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.ty, join(&self.dims))?;
        if !self.dims.is_empty() {
            write!(f, "{{{}}}", join(&self.minor_to_major))?;
        }
        Ok(())
    }
}

/// The shape of an HLO value: an array or a (possibly nested) tuple.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Shape {
    Array(ArrayShape),
    Tuple(Vec<Shape>),
}

impl Shape {
    pub fn array(ty: ElementType, dims: &[i64]) -> Shape {
        Shape::Array(ArrayShape::new(ty, dims))
    }

    pub fn scalar(ty: ElementType) -> Shape {
        Shape::Array(ArrayShape::scalar(ty))
    }

    pub fn as_array(&self) -> Option<&ArrayShape> {
        match self {
            Shape::Array(a) => Some(a),
            Shape::Tuple(_) => None,
        }
    }

    pub fn tuple_elements(&self) -> Option<&[Shape]> {
        match self {
            Shape::Tuple(t) => Some(t),
            Shape::Array(_) => None,
        }
    }

    /// Shape equality ignoring layouts.
    pub fn compatible(&self, other: &Shape) -> bool {
        match (self, other) {
            (Shape::Array(a), Shape::Array(b)) => a.compatible(b),
            (Shape::Tuple(a), Shape::Tuple(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.compatible(y))
            }
            _ => false,
        }
    }

    /// The array leaves in depth-first order (an array shape is its own single leaf).
    pub fn leaves(&self) -> Vec<&ArrayShape> {
        match self {
            Shape::Array(a) => vec![a],
            Shape::Tuple(t) => t.iter().flat_map(Shape::leaves).collect(),
        }
    }
}

impl From<ArrayShape> for Shape {
    fn from(a: ArrayShape) -> Shape {
        Shape::Array(a)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Array(a) => a.fmt(f),
            Shape::Tuple(elems) => {
                f.write_str("(")?;
                for (i, e) in elems.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    e.fmt(f)?;
                }
                f.write_str(")")
            }
        }
    }
}

pub(crate) fn join<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(",")
}
