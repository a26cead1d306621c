//! `PJRT_NamedValue`: the (name, value) pairs of plugin attributes and client create options.

use std::fmt;

use super::api::{slice_from_raw, string_from_raw};
use super::ffi;

/// The value of a plugin attribute or client create option.
#[derive(Clone, Debug, PartialEq)]
pub enum PjrtValue {
    String(String),
    Int64(i64),
    Int64List(Vec<i64>),
    Float(f32),
    Bool(bool),
}

impl fmt::Display for PjrtValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PjrtValue::String(s) => write!(f, "{s:?}"),
            PjrtValue::Int64(v) => write!(f, "{v}"),
            PjrtValue::Int64List(v) => write!(f, "{v:?}"),
            PjrtValue::Float(v) => write!(f, "{v}"),
            PjrtValue::Bool(v) => write!(f, "{v}"),
        }
    }
}

/// Builds the C view of `(name, value)`. The result points into `name` and `value`, which must
/// outlive every use of it.
fn to_ffi(name: &str, value: &PjrtValue) -> ffi::NamedValue {
    let (value_type, raw, value_size) = match value {
        PjrtValue::String(s) => (
            ffi::NAMED_VALUE_STRING,
            ffi::NamedValueUnion {
                string_value: s.as_ptr().cast(),
            },
            s.len(),
        ),
        PjrtValue::Int64(v) => (
            ffi::NAMED_VALUE_INT64,
            ffi::NamedValueUnion { int64_value: *v },
            1,
        ),
        PjrtValue::Int64List(v) => (
            ffi::NAMED_VALUE_INT64_LIST,
            ffi::NamedValueUnion {
                int64_array_value: v.as_ptr(),
            },
            v.len(),
        ),
        PjrtValue::Float(v) => (
            ffi::NAMED_VALUE_FLOAT,
            ffi::NamedValueUnion { float_value: *v },
            1,
        ),
        PjrtValue::Bool(v) => (
            ffi::NAMED_VALUE_BOOL,
            ffi::NamedValueUnion { bool_value: *v },
            1,
        ),
    };
    ffi::NamedValue {
        name: name.as_ptr().cast(),
        name_size: name.len(),
        value_type,
        value: raw,
        value_size,
        ..Default::default()
    }
}

/// The C view of a list of named values; it points into `values`, which must outlive it.
pub(crate) fn to_ffi_list(values: &[(String, PjrtValue)]) -> Vec<ffi::NamedValue> {
    values
        .iter()
        .map(|(name, value)| to_ffi(name, value))
        .collect()
}

/// Copies a named value the plugin returned; `None` for a value type this crate does not know.
///
/// # Safety
/// The pointers in `raw` must be valid as the C API documents for its `type`.
pub(crate) unsafe fn from_ffi(raw: &ffi::NamedValue) -> Option<(String, PjrtValue)> {
    // SAFETY (whole block): the caller guarantees the pointers; the union member read is the
    // one `value_type` names.
    unsafe {
        let name = string_from_raw(raw.name, raw.name_size);
        let value = match raw.value_type {
            ffi::NAMED_VALUE_STRING => {
                PjrtValue::String(string_from_raw(raw.value.string_value, raw.value_size))
            }
            ffi::NAMED_VALUE_INT64 => PjrtValue::Int64(raw.value.int64_value),
            ffi::NAMED_VALUE_INT64_LIST => PjrtValue::Int64List(
                slice_from_raw(raw.value.int64_array_value, raw.value_size).to_vec(),
            ),
            ffi::NAMED_VALUE_FLOAT => PjrtValue::Float(raw.value.float_value),
            ffi::NAMED_VALUE_BOOL => PjrtValue::Bool(raw.value.bool_value),
            _ => return None,
        };
        Some((name, value))
    }
}
