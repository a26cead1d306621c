//! Hand-declared `prost` messages for `xla.CompileOptionsProto`, the serialized options that
//! `PJRT_Client_Compile` takes next to the program.
//!
//! Field numbers and types are those of the public Apache-2.0 XLA protos
//! `xla/pjrt/proto/compile_options.proto` and `xla/xla_data.proto`. Only fields this crate may
//! set are declared; proto3 gives every other field its default.
//!
//! Never send an empty message: XLA copies `num_replicas` verbatim and both CPU plugins abort
//! the process on 0 replicas. The minimum is `executable_build_options { device_ordinal: -1,
//! num_replicas: 1, num_partitions: 1 }`.

use std::collections::BTreeMap;

use crate::hlo::proto_messages::ShapeProto;

/// `xla.CompileOptionsProto`. `serialized_multi_slice_config` (rejected by PJRT) and the GPU
/// `target_config` are deliberately absent.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CompileOptionsProto {
    /// Layouts for the arguments; empty lets the compiler use the module's parameter layouts.
    #[prost(message, repeated, tag = "1")]
    pub argument_layouts: Vec<ShapeProto>,
    #[prost(bool, tag = "2")]
    pub parameter_is_tupled_arguments: bool,
    #[prost(message, optional, tag = "3")]
    pub executable_build_options: Option<ExecutableBuildOptionsProto>,
    #[prost(bool, tag = "4")]
    pub compile_portable_executable: bool,
    #[prost(int64, tag = "5")]
    pub profile_version: i64,
    /// XLA debug flags for this compile only (e.g. `xla_dump_to`), keyed by flag name. A
    /// `BTreeMap` keeps the encoding deterministic, so equal options give equal cache keys.
    #[prost(btree_map = "string, message", tag = "7")]
    pub env_option_overrides: BTreeMap<String, OptionOverrideProto>,
}

/// `xla.ExecutableBuildOptionsProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExecutableBuildOptionsProto {
    /// -1 means "unset"; 0 would pin the executable to device 0.
    #[prost(int64, tag = "1")]
    pub device_ordinal: i64,
    #[prost(message, optional, tag = "2")]
    pub result_layout: Option<ShapeProto>,
    /// Must be at least 1 (see the module docs).
    #[prost(int64, tag = "4")]
    pub num_replicas: i64,
    /// Must be at least 1.
    #[prost(int64, tag = "5")]
    pub num_partitions: i64,
    #[prost(bool, tag = "6")]
    pub use_spmd_partitioning: bool,
    #[prost(bool, tag = "7")]
    pub use_auto_spmd_partitioning: bool,
    #[prost(message, optional, tag = "9")]
    pub device_assignment: Option<DeviceAssignmentProto>,
    #[prost(bool, tag = "10")]
    pub alias_passthrough_params: bool,
    #[prost(bool, tag = "11")]
    pub run_backend_only: bool,
    #[prost(bool, repeated, tag = "12")]
    pub allow_spmd_sharding_propagation_to_output: Vec<bool>,
    #[prost(bool, repeated, tag = "18")]
    pub allow_spmd_sharding_propagation_to_parameters: Vec<bool>,
    #[prost(bool, tag = "19")]
    pub use_shardy_partitioner: bool,
}

/// `xla.DeviceAssignmentProto`: which device runs each (replica, computation) pair.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeviceAssignmentProto {
    #[prost(int32, tag = "1")]
    pub replica_count: i32,
    #[prost(int32, tag = "2")]
    pub computation_count: i32,
    /// One entry per computation (partition), each listing a device id per replica.
    #[prost(message, repeated, tag = "3")]
    pub computation_devices: Vec<ComputationDevice>,
}

/// `xla.DeviceAssignmentProto.ComputationDevice`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ComputationDevice {
    #[prost(int64, repeated, tag = "1")]
    pub replica_device_ids: Vec<i64>,
}

/// `xla.OptionOverrideProto`: one typed debug-option value.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OptionOverrideProto {
    #[prost(oneof = "OptionOverrideValue", tags = "1, 2, 3, 4")]
    pub value: Option<OptionOverrideValue>,
}

/// The `value` oneof of `xla.OptionOverrideProto`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum OptionOverrideValue {
    #[prost(string, tag = "1")]
    StringField(String),
    #[prost(bool, tag = "2")]
    BoolField(bool),
    #[prost(int64, tag = "3")]
    IntField(i64),
    #[prost(double, tag = "4")]
    DoubleField(f64),
}
