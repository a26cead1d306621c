//! Hand-declared `prost` messages for the subset of XLA's `HloModuleProto` that this crate emits.
//!
//! PJRT compiles a serialized `xla.HloModuleProto` (program format `"hlo"`). Declaring the
//! messages by hand keeps `protoc` and a build script out of the build. Field numbers and wire
//! types are those of the public Apache-2.0 XLA protos `xla/service/hlo.proto` and
//! `xla/xla_data.proto` (stable since 2024); every field keeps the proto's name so a message can
//! be checked against `protoc --decode=xla.HloModuleProto`. Fields XLA defines but this crate
//! never sets are left out: prost skips them when decoding and proto3 treats them as defaults.
//!
//! Enum-typed fields are `i32` on the wire, as prost represents them; the `enumeration`
//! attribute gives each a typed getter and setter (e.g. `element_type()` / `set_element_type`).

use std::collections::BTreeMap;

use super::element::ElementType;

/// `xla.PrimitiveType`: the element types this crate uses, plus the invalid default and the
/// tuple marker that tuple shapes carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum PrimitiveType {
    Invalid = 0,
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
    Tuple = 13,
    Bf16 = 16,
}

impl From<ElementType> for PrimitiveType {
    fn from(ty: ElementType) -> Self {
        match ty {
            ElementType::Pred => PrimitiveType::Pred,
            ElementType::S8 => PrimitiveType::S8,
            ElementType::S32 => PrimitiveType::S32,
            ElementType::S64 => PrimitiveType::S64,
            ElementType::U8 => PrimitiveType::U8,
            ElementType::U32 => PrimitiveType::U32,
            ElementType::U64 => PrimitiveType::U64,
            ElementType::F16 => PrimitiveType::F16,
            ElementType::Bf16 => PrimitiveType::Bf16,
            ElementType::F32 => PrimitiveType::F32,
            ElementType::F64 => PrimitiveType::F64,
        }
    }
}

/// `xla.RandomAlgorithm`, the `rng_algorithm` of a `rng-bit-generator`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum RandomAlgorithm {
    /// Backend-dependent default (`RNG_DEFAULT`).
    RngDefault = 0,
    RngThreeFry = 1,
    RngPhilox = 2,
}

/// `xla.PrecisionConfig.Precision`, one per operand of a `dot` or `convolution`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Precision {
    Default = 0,
    High = 1,
    Highest = 2,
}

/// `xla.Kind`: how an entry parameter aliases an output in `input_output_alias`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum AliasKind {
    /// The proto3 zero value; XLA reads anything but `MAY_ALIAS` as `MUST_ALIAS`.
    UndefinedAlias = 0,
    MayAlias = 1,
    MustAlias = 2,
}

/// `xla.HloModuleProto`: a whole program; computations must be listed callees first.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HloModuleProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub entry_computation_name: String,
    #[prost(int64, tag = "6")]
    pub entry_computation_id: i64,
    #[prost(message, repeated, tag = "3")]
    pub computations: Vec<HloComputationProto>,
    /// Required by XLA, including `parameter_names` (one per parameter).
    #[prost(message, optional, tag = "4")]
    pub host_program_shape: Option<ProgramShapeProto>,
    #[prost(int64, tag = "5")]
    pub id: i64,
    #[prost(message, optional, tag = "8")]
    pub input_output_alias: Option<HloInputOutputAliasProto>,
    #[prost(message, optional, tag = "18")]
    pub buffer_donor: Option<HloBufferDonorProto>,
}

/// `xla.HloComputationProto`: instructions in def-before-use order.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HloComputationProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, repeated, tag = "2")]
    pub instructions: Vec<HloInstructionProto>,
    #[prost(message, optional, tag = "4")]
    pub program_shape: Option<ProgramShapeProto>,
    #[prost(int64, tag = "5")]
    pub id: i64,
    #[prost(int64, tag = "6")]
    pub root_id: i64,
}

/// `xla.HloInstructionProto`, restricted to the attributes of the opcodes this crate emits.
///
/// Which attribute an opcode reads: `parameter_number` (parameter), `literal` (constant),
/// `dimensions` (iota, broadcast, transpose, reduce, concatenate, reverse), `slice_dimensions`
/// (slice), `dynamic_slice_sizes` (dynamic-slice), `padding_config` (pad), `window`
/// (convolution, reduce-window, select-and-scatter), `gather_dimension_numbers`/
/// `gather_slice_sizes` (gather), `tuple_index` (get-tuple-element),
/// `comparison_direction`/`comparison_type` (compare), `rng_algorithm` (rng-bit-generator),
/// `replica_groups`/`collective_device_list`/`channel_id`/`use_global_device_ids` (all-reduce).
/// `called_computation_ids` is `[body, condition]` for while; for conditional it is
/// `[true, false]` with a `pred` selector and the branches in index order with an `s32` one
/// (operands: selector, then one argument per branch); `[to_apply]` for
/// reduce/reduce-window/all-reduce/call and `[select, scatter]` for select-and-scatter.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HloInstructionProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub opcode: String,
    #[prost(message, optional, tag = "3")]
    pub shape: Option<ShapeProto>,
    #[prost(message, optional, tag = "7")]
    pub metadata: Option<OpMetadata>,
    #[prost(message, optional, tag = "8")]
    pub literal: Option<LiteralProto>,
    #[prost(int64, tag = "9")]
    pub parameter_number: i64,
    #[prost(int64, tag = "13")]
    pub tuple_index: i64,
    #[prost(int64, repeated, tag = "14")]
    pub dimensions: Vec<i64>,
    #[prost(message, optional, tag = "15")]
    pub window: Option<Window>,
    #[prost(message, optional, tag = "16")]
    pub convolution_dimension_numbers: Option<ConvolutionDimensionNumbers>,
    #[prost(int64, tag = "50")]
    pub feature_group_count: i64,
    #[prost(int64, tag = "58")]
    pub batch_group_count: i64,
    #[prost(message, repeated, tag = "17")]
    pub slice_dimensions: Vec<SliceDimensions>,
    #[prost(int64, repeated, tag = "20")]
    pub dynamic_slice_sizes: Vec<i64>,
    #[prost(message, optional, tag = "21")]
    pub padding_config: Option<PaddingConfig>,
    /// Non-positive means "no channel".
    #[prost(int64, tag = "26")]
    pub channel_id: i64,
    #[prost(message, optional, tag = "30")]
    pub dot_dimension_numbers: Option<DotDimensionNumbers>,
    #[prost(message, optional, tag = "33")]
    pub gather_dimension_numbers: Option<GatherDimensionNumbers>,
    #[prost(int64, repeated, tag = "34")]
    pub gather_slice_sizes: Vec<i64>,
    /// `"EQ"`, `"NE"`, `"LT"`, `"LE"`, `"GT"` or `"GE"`.
    #[prost(string, tag = "63")]
    pub comparison_direction: String,
    #[prost(int64, tag = "35")]
    pub id: i64,
    #[prost(int64, repeated, tag = "36")]
    pub operand_ids: Vec<i64>,
    #[prost(int64, repeated, tag = "38")]
    pub called_computation_ids: Vec<i64>,
    /// Deprecated in XLA in favour of `collective_device_list`, still read when present.
    #[prost(message, repeated, tag = "49")]
    pub replica_groups: Vec<ReplicaGroup>,
    #[prost(bool, tag = "71")]
    pub use_global_device_ids: bool,
    #[prost(message, optional, tag = "51")]
    pub precision_config: Option<PrecisionConfig>,
    #[prost(message, optional, tag = "68")]
    pub frontend_attributes: Option<FrontendAttributes>,
    #[prost(enumeration = "RandomAlgorithm", tag = "70")]
    pub rng_algorithm: i32,
    /// `"FLOAT"`, `"TOTALORDER"`, `"SIGNED"` or `"UNSIGNED"`.
    #[prost(string, tag = "72")]
    pub comparison_type: String,
    #[prost(message, optional, tag = "87")]
    pub collective_device_list: Option<CollectiveDeviceListProto>,
}

/// `xla.HloInstructionProto.SliceDimensions`: the `[start, limit)` range and stride of one
/// dimension of a `slice`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SliceDimensions {
    #[prost(int64, tag = "1")]
    pub start: i64,
    #[prost(int64, tag = "2")]
    pub limit: i64,
    #[prost(int64, tag = "3")]
    pub stride: i64,
}

/// `xla.ShapeProto`: an array shape (element type, dims, layout) or a tuple of shapes.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ShapeProto {
    #[prost(enumeration = "PrimitiveType", tag = "2")]
    pub element_type: i32,
    #[prost(int64, repeated, tag = "3")]
    pub dimensions: Vec<i64>,
    #[prost(message, repeated, tag = "4")]
    pub tuple_shapes: Vec<ShapeProto>,
    /// XLA requires a layout on every array shape, literal shapes included.
    #[prost(message, optional, tag = "5")]
    pub layout: Option<LayoutProto>,
    #[prost(bool, repeated, tag = "6")]
    pub is_dynamic_dimension: Vec<bool>,
}

/// `xla.LayoutProto`: only the dense `minor_to_major` order is used here.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LayoutProto {
    #[prost(int64, repeated, tag = "1")]
    pub minor_to_major: Vec<i64>,
}

/// `xla.ProgramShapeProto`: a computation's signature; XLA insists on one name per parameter.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProgramShapeProto {
    #[prost(message, repeated, tag = "1")]
    pub parameters: Vec<ShapeProto>,
    #[prost(message, optional, tag = "2")]
    pub result: Option<ShapeProto>,
    #[prost(string, repeated, tag = "3")]
    pub parameter_names: Vec<String>,
}

/// `xla.LiteralProto`: a constant. Exactly one value field matching `shape.element_type` is
/// set; the byte-typed fields (`s8s`, `u8s`, `f16s`, `bf16s`) hold the elements little-endian
/// in row-major order.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LiteralProto {
    #[prost(message, optional, tag = "1")]
    pub shape: Option<ShapeProto>,
    #[prost(bool, repeated, tag = "2")]
    pub preds: Vec<bool>,
    #[prost(bytes = "vec", tag = "15")]
    pub s8s: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub u8s: Vec<u8>,
    #[prost(int32, repeated, tag = "4")]
    pub s32s: Vec<i32>,
    #[prost(int64, repeated, tag = "5")]
    pub s64s: Vec<i64>,
    #[prost(uint32, repeated, tag = "6")]
    pub u32s: Vec<u32>,
    #[prost(uint64, repeated, tag = "7")]
    pub u64s: Vec<u64>,
    #[prost(float, repeated, tag = "8")]
    pub f32s: Vec<f32>,
    #[prost(double, repeated, tag = "9")]
    pub f64s: Vec<f64>,
    #[prost(message, repeated, tag = "10")]
    pub tuple_literals: Vec<LiteralProto>,
    #[prost(bytes = "vec", tag = "11")]
    pub f16s: Vec<u8>,
    #[prost(bytes = "vec", tag = "13")]
    pub bf16s: Vec<u8>,
}

/// `xla.Window`: one entry per operand dimension of a windowed op.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Window {
    #[prost(message, repeated, tag = "1")]
    pub dimensions: Vec<WindowDimension>,
}

/// `xla.WindowDimension`. Stride and both dilations must be written as 1 when trivial: proto3
/// drops zeros, and XLA reads a missing stride or dilation as 0.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WindowDimension {
    #[prost(int64, tag = "1")]
    pub size: i64,
    #[prost(int64, tag = "2")]
    pub stride: i64,
    #[prost(int64, tag = "3")]
    pub padding_low: i64,
    #[prost(int64, tag = "4")]
    pub padding_high: i64,
    #[prost(int64, tag = "5")]
    pub window_dilation: i64,
    #[prost(int64, tag = "6")]
    pub base_dilation: i64,
    #[prost(bool, tag = "7")]
    pub window_reversal: bool,
}

/// `xla.ConvolutionDimensionNumbers`: which operand dimension plays which role.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ConvolutionDimensionNumbers {
    #[prost(int64, tag = "7")]
    pub input_batch_dimension: i64,
    #[prost(int64, tag = "8")]
    pub input_feature_dimension: i64,
    #[prost(int64, repeated, tag = "11")]
    pub input_spatial_dimensions: Vec<i64>,
    #[prost(int64, tag = "3")]
    pub kernel_input_feature_dimension: i64,
    #[prost(int64, tag = "4")]
    pub kernel_output_feature_dimension: i64,
    #[prost(int64, repeated, tag = "6")]
    pub kernel_spatial_dimensions: Vec<i64>,
    #[prost(int64, tag = "9")]
    pub output_batch_dimension: i64,
    #[prost(int64, tag = "10")]
    pub output_feature_dimension: i64,
    #[prost(int64, repeated, tag = "12")]
    pub output_spatial_dimensions: Vec<i64>,
}

/// `xla.DotDimensionNumbers`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DotDimensionNumbers {
    #[prost(int64, repeated, tag = "1")]
    pub lhs_contracting_dimensions: Vec<i64>,
    #[prost(int64, repeated, tag = "2")]
    pub rhs_contracting_dimensions: Vec<i64>,
    #[prost(int64, repeated, tag = "3")]
    pub lhs_batch_dimensions: Vec<i64>,
    #[prost(int64, repeated, tag = "4")]
    pub rhs_batch_dimensions: Vec<i64>,
}

/// `xla.GatherDimensionNumbers` (the batching dimensions, fields 5 and 6, are never set).
#[derive(Clone, PartialEq, prost::Message)]
pub struct GatherDimensionNumbers {
    #[prost(int64, repeated, tag = "1")]
    pub offset_dims: Vec<i64>,
    #[prost(int64, repeated, tag = "2")]
    pub collapsed_slice_dims: Vec<i64>,
    #[prost(int64, repeated, tag = "3")]
    pub start_index_map: Vec<i64>,
    #[prost(int64, tag = "4")]
    pub index_vector_dim: i64,
}

/// `xla.PaddingConfig`: one entry per operand dimension of a `pad`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PaddingConfig {
    #[prost(message, repeated, tag = "1")]
    pub dimensions: Vec<PaddingConfigDimension>,
}

/// `xla.PaddingConfig.PaddingConfigDimension`; negative edge padding crops.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PaddingConfigDimension {
    #[prost(int64, tag = "1")]
    pub edge_padding_low: i64,
    #[prost(int64, tag = "2")]
    pub edge_padding_high: i64,
    #[prost(int64, tag = "3")]
    pub interior_padding: i64,
}

/// `xla.ReplicaGroup`: the replica (or global device) ids that reduce together.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReplicaGroup {
    #[prost(int64, repeated, tag = "1")]
    pub replica_ids: Vec<i64>,
}

/// `xla.CollectiveDeviceListProto`: the current home of a collective's replica groups (the
/// iota form of the proto is not used here).
#[derive(Clone, PartialEq, prost::Message)]
pub struct CollectiveDeviceListProto {
    #[prost(message, repeated, tag = "1")]
    pub replica_groups: Vec<ReplicaGroup>,
}

/// `xla.PrecisionConfig`: one `Precision` per operand.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PrecisionConfig {
    #[prost(enumeration = "Precision", repeated, tag = "1")]
    pub operand_precision: Vec<i32>,
}

/// `xla.FrontendAttributes`: free-form string attributes. A `BTreeMap` keeps the encoding
/// deterministic, so equal modules serialize to equal bytes (cache keys depend on that).
#[derive(Clone, PartialEq, prost::Message)]
pub struct FrontendAttributes {
    #[prost(btree_map = "string, string", tag = "1")]
    pub map: BTreeMap<String, String>,
}

/// `xla.OpMetadata`: provenance XLA carries into dumps and profiles.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OpMetadata {
    #[prost(string, tag = "1")]
    pub op_type: String,
    #[prost(string, tag = "2")]
    pub op_name: String,
    #[prost(string, tag = "3")]
    pub source_file: String,
    #[prost(int32, tag = "4")]
    pub source_line: i32,
}

/// `xla.HloInputOutputAliasProto`: entry parameters whose buffers may become outputs.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HloInputOutputAliasProto {
    #[prost(message, repeated, tag = "1")]
    pub entries: Vec<AliasEntryProto>,
}

/// `xla.HloInputOutputAliasProto.AliasEntryProto`: output `{output_shape_index}` reuses the
/// buffer of parameter `parameter_number` at `{parameter_shape_index}`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AliasEntryProto {
    #[prost(int64, repeated, tag = "1")]
    pub output_shape_index: Vec<i64>,
    #[prost(int64, tag = "2")]
    pub parameter_number: i64,
    #[prost(int64, repeated, tag = "3")]
    pub parameter_shape_index: Vec<i64>,
    #[prost(enumeration = "AliasKind", tag = "4")]
    pub kind: i32,
}

/// `xla.HloBufferDonorProto`: parameters XLA may reuse for any output.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HloBufferDonorProto {
    #[prost(message, repeated, tag = "1")]
    pub entries: Vec<BufferDonorEntryProto>,
}

/// `xla.HloBufferDonorProto.BufferDonorEntryProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BufferDonorEntryProto {
    #[prost(int64, tag = "1")]
    pub parameter_number: i64,
    #[prost(int64, repeated, tag = "2")]
    pub parameter_shape_index: Vec<i64>,
}
