//! Element types of HLO arrays and the Rust types that carry them on the host.

use std::fmt;

/// An XLA primitive element type. The discriminants are the `xla.PrimitiveType` enum values of
/// `xla_data.proto`, so `ty as i32` is the proto encoding.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ElementType {
    Pred = 1,
    S8 = 2,
    S32 = 4,
    S64 = 5,
    U8 = 6,
    U32 = 8,
    U64 = 9,
    F16 = 10,
    F32 = 11,
    F64 = 12,
    Bf16 = 16,
}

impl ElementType {
    pub const ALL: [ElementType; 11] = [
        ElementType::Pred,
        ElementType::S8,
        ElementType::S32,
        ElementType::S64,
        ElementType::U8,
        ElementType::U32,
        ElementType::U64,
        ElementType::F16,
        ElementType::Bf16,
        ElementType::F32,
        ElementType::F64,
    ];

    /// Bytes one element occupies in a dense host buffer.
    pub fn byte_size(self) -> usize {
        match self {
            ElementType::Pred | ElementType::S8 | ElementType::U8 => 1,
            ElementType::F16 | ElementType::Bf16 => 2,
            ElementType::S32 | ElementType::U32 | ElementType::F32 => 4,
            ElementType::S64 | ElementType::U64 | ElementType::F64 => 8,
        }
    }

    /// The lowercase name XLA uses in HLO text (`f32`, `bf16`, `pred`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ElementType::Pred => "pred",
            ElementType::S8 => "s8",
            ElementType::S32 => "s32",
            ElementType::S64 => "s64",
            ElementType::U8 => "u8",
            ElementType::U32 => "u32",
            ElementType::U64 => "u64",
            ElementType::F16 => "f16",
            ElementType::Bf16 => "bf16",
            ElementType::F32 => "f32",
            ElementType::F64 => "f64",
        }
    }

    pub fn from_name(name: &str) -> Option<ElementType> {
        ElementType::ALL.into_iter().find(|t| t.name() == name)
    }

    pub fn is_float(self) -> bool {
        matches!(
            self,
            ElementType::F16 | ElementType::Bf16 | ElementType::F32 | ElementType::F64
        )
    }

    pub fn is_signed_int(self) -> bool {
        matches!(self, ElementType::S8 | ElementType::S32 | ElementType::S64)
    }

    pub fn is_unsigned_int(self) -> bool {
        matches!(self, ElementType::U8 | ElementType::U32 | ElementType::U64)
    }

    pub fn is_integer(self) -> bool {
        self.is_signed_int() || self.is_unsigned_int()
    }

    /// Element types that support arithmetic (everything but `pred`).
    pub fn is_numeric(self) -> bool {
        self != ElementType::Pred
    }
}

impl fmt::Display for ElementType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A Rust type that is the host representation of one [`ElementType`].
///
/// Values are stored little-endian in literals and host buffers (the layout every PJRT plugin
/// we target uses).
pub trait NativeType: Copy + Send + Sync + 'static + fmt::Debug + PartialEq {
    const TYPE: ElementType;
    fn write_le(self, out: &mut Vec<u8>);
    fn read_le(bytes: &[u8]) -> Self;
}

macro_rules! native_le {
    ($($t:ty => $e:ident),* $(,)?) => {$(
        impl NativeType for $t {
            const TYPE: ElementType = ElementType::$e;
            fn write_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn read_le(bytes: &[u8]) -> Self {
                <$t>::from_le_bytes(bytes.try_into().expect("caller passes exactly one element"))
            }
        }
    )*};
}

native_le!(i8 => S8, i32 => S32, i64 => S64, u8 => U8, u32 => U32, u64 => U64,
    f32 => F32, f64 => F64, half::f16 => F16, half::bf16 => Bf16);

impl NativeType for bool {
    const TYPE: ElementType = ElementType::Pred;
    fn write_le(self, out: &mut Vec<u8>) {
        out.push(self as u8);
    }
    fn read_le(bytes: &[u8]) -> Self {
        bytes[0] != 0
    }
}

/// Encodes a slice of native values as little-endian bytes.
pub fn to_bytes<T: NativeType>(values: &[T]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * T::TYPE.byte_size());
    for v in values {
        v.write_le(&mut out);
    }
    out
}

/// Decodes little-endian bytes into native values; `bytes.len()` must be a multiple of the size.
pub fn from_bytes<T: NativeType>(bytes: &[u8]) -> Vec<T> {
    bytes
        .chunks_exact(T::TYPE.byte_size())
        .map(T::read_le)
        .collect()
}
