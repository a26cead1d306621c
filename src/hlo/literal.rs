//! Host-side arrays: the values of HLO constants and of buffers moved to and from a device.

use ndarray::{ArrayD, IxDyn};

use super::element::{from_bytes, to_bytes, ElementType, NativeType};
use super::shape::ArrayShape;

/// A dense, row-major array on the host: an array shape plus its little-endian bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Literal {
    shape: ArrayShape,
    bytes: Vec<u8>,
}

impl Literal {
    /// Wraps raw bytes; fails when their length does not match the shape.
    pub fn from_bytes(shape: ArrayShape, bytes: Vec<u8>) -> Result<Literal, String> {
        if bytes.len() != shape.byte_size() {
            return Err(format!(
                "literal of shape {shape} needs {} bytes, got {}",
                shape.byte_size(),
                bytes.len()
            ));
        }
        Ok(Literal { shape, bytes })
    }

    /// A literal from values in row-major order; fails when the count does not match `dims`.
    pub fn from_vec<T: NativeType>(dims: &[i64], values: &[T]) -> Result<Literal, String> {
        let shape = ArrayShape::try_new(T::TYPE, dims)?;
        if shape.element_count() as usize != values.len() {
            return Err(format!("{} values do not fill shape {shape}", values.len()));
        }
        Ok(Literal {
            shape,
            bytes: to_bytes(values),
        })
    }

    pub fn scalar<T: NativeType>(value: T) -> Literal {
        Literal {
            shape: ArrayShape::scalar(T::TYPE),
            bytes: to_bytes(&[value]),
        }
    }

    /// A literal whose every element is `value`.
    pub fn filled<T: NativeType>(dims: &[i64], value: T) -> Literal {
        let shape = ArrayShape::new(T::TYPE, dims);
        let n = shape.element_count() as usize;
        Literal {
            shape,
            bytes: to_bytes(&vec![value; n]),
        }
    }

    pub fn from_ndarray<T: NativeType>(array: &ArrayD<T>) -> Literal {
        let dims: Vec<i64> = array.shape().iter().map(|&d| d as i64).collect();
        let values: Vec<T> = array.iter().copied().collect();
        Literal {
            shape: ArrayShape::new(T::TYPE, &dims),
            bytes: to_bytes(&values),
        }
    }

    pub fn shape(&self) -> &ArrayShape {
        &self.shape
    }

    pub fn ty(&self) -> ElementType {
        self.shape.ty()
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The values as `T`; fails when `T` is not this literal's element type.
    pub fn to_vec<T: NativeType>(&self) -> Result<Vec<T>, String> {
        if T::TYPE != self.ty() {
            return Err(format!("literal holds {}, not {}", self.ty(), T::TYPE));
        }
        Ok(from_bytes(&self.bytes))
    }

    pub fn to_ndarray<T: NativeType>(&self) -> Result<ArrayD<T>, String> {
        let dims: Vec<usize> = self.shape.dims().iter().map(|&d| d as usize).collect();
        ArrayD::from_shape_vec(IxDyn(&dims), self.to_vec()?).map_err(|e| e.to_string())
    }

    /// Converts a numeric literal to `f64` values (for comparisons in tests and reports).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        use half::{bf16, f16};
        let b = &self.bytes;
        match self.ty() {
            ElementType::Pred => from_bytes::<bool>(b)
                .into_iter()
                .map(|x| x as u8 as f64)
                .collect(),
            ElementType::S8 => from_bytes::<i8>(b).into_iter().map(f64::from).collect(),
            ElementType::S32 => from_bytes::<i32>(b).into_iter().map(f64::from).collect(),
            ElementType::S64 => from_bytes::<i64>(b).into_iter().map(|x| x as f64).collect(),
            ElementType::U8 => from_bytes::<u8>(b).into_iter().map(f64::from).collect(),
            ElementType::U32 => from_bytes::<u32>(b).into_iter().map(f64::from).collect(),
            ElementType::U64 => from_bytes::<u64>(b).into_iter().map(|x| x as f64).collect(),
            ElementType::F16 => from_bytes::<f16>(b).into_iter().map(f64::from).collect(),
            ElementType::Bf16 => from_bytes::<bf16>(b).into_iter().map(f64::from).collect(),
            ElementType::F32 => from_bytes::<f32>(b).into_iter().map(f64::from).collect(),
            ElementType::F64 => from_bytes::<f64>(b),
        }
    }
}
