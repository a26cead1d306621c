//! Raw declarations of the PJRT C API (`xla/pjrt/c/pjrt_c_api.h`), only the parts this crate calls.
//!
//! Every struct is laid out as in PJRT C API 0.114 (field order and sizes checked below against
//! the 0.114 header tables) and carries `struct_size` = `PJRT_STRUCT_SIZE` (the offset just past
//! its last field), so a plugin can tell how much of the struct we know. Pointer-to-opaque
//! handles are `*mut c_void`; enums are their C `int` values. The function table is not declared
//! as a struct: functions are addressed by slot index (`PJRT_Api` only ever appends slots), and
//! [`super::api::Api`] checks that a slot lies inside the plugin's table before reading it.
//!
//! Nothing here is safe to use directly; the safe wrappers live in the sibling modules.

use std::ffi::{c_char, c_void};
use std::mem::{offset_of, size_of};

/// A PJRT function taking an args struct: its name (for errors) and its slot in `PJRT_Api`.
///
/// # Safety
/// `SLOT` must be the slot of a function whose single parameter is a pointer to `Self` and that
/// returns `PJRT_Error*`.
pub(crate) unsafe trait ApiFunction {
    const NAME: &'static str;
    const SLOT: usize;
}

/// The first bytes of `PJRT_Api`: `struct_size`, `extension_start`, `pjrt_api_version`. The
/// function pointers follow at [`FUNCTION_TABLE_OFFSET`].
#[repr(C)]
pub(crate) struct ApiHeader {
    pub struct_size: usize,
    pub extension_start: *mut c_void,
    pub version: ApiVersionRaw,
}

/// `PJRT_Api_Version`.
#[repr(C)]
pub(crate) struct ApiVersionRaw {
    pub struct_size: usize,
    pub extension_start: *mut c_void,
    pub major_version: i32,
    pub minor_version: i32,
}

/// Offset of slot 0 of the function table inside `PJRT_Api`.
pub(crate) const FUNCTION_TABLE_OFFSET: usize = size_of::<ApiHeader>();

/// The signature every slot except the three error helpers has.
pub(crate) type RawFunction = unsafe extern "C" fn(*mut c_void) -> *mut c_void;

/// The largest of the field end offsets: `PJRT_STRUCT_SIZE` of a struct.
const fn last_field_end(field_ends: &[usize]) -> usize {
    let mut end = 0;
    let mut i = 0;
    while i < field_ends.len() {
        if field_ends[i] > end {
            end = field_ends[i];
        }
        i += 1;
    }
    end
}

/// Declares a PJRT struct that starts with `struct_size` and `extension_start`, computes its
/// `PJRT_STRUCT_SIZE` and gives it a `Default` that is all zeroes with `struct_size` set.
/// `=> "PJRT_X" @ n` ties an args struct to the function in slot `n`.
macro_rules! pjrt_struct {
    ($(#[doc = $doc:literal])* $name:ident $(=> $function:literal @ $slot:literal)? {
        $($field:ident : $ty:ty,)*
    }) => {
        $(#[doc = $doc])*
        #[repr(C)]
        // Fields this crate never touches still fix the offsets of the ones it does.
        #[allow(dead_code)]
        pub(crate) struct $name {
            pub struct_size: usize,
            pub extension_start: *mut c_void,
            $(pub $field: $ty,)*
        }

        impl $name {
            /// `PJRT_STRUCT_SIZE`: the end of the last declared field, without tail padding.
            pub const STRUCT_SIZE: usize = last_field_end(&[
                offset_of!($name, extension_start) + size_of::<*mut c_void>(),
                $(offset_of!($name, $field) + size_of::<$ty>(),)*
            ]);
        }

        impl Default for $name {
            fn default() -> Self {
                // SAFETY: every field is an integer, a bool, a raw pointer or a union of those,
                // for all of which the all-zero bit pattern is a valid value.
                let mut value: Self = unsafe { std::mem::zeroed() };
                value.struct_size = Self::STRUCT_SIZE;
                value
            }
        }

        $(
            // SAFETY: slot index and name are those of the 0.114 `PJRT_Api` table, and the
            // function takes a pointer to exactly this args struct.
            unsafe impl ApiFunction for $name {
                const NAME: &'static str = $function;
                const SLOT: usize = $slot;
            }
        )?
    };
}

// ------------------------------------------------------------------ errors

pjrt_struct!(
    /// `PJRT_Error_Destroy_Args` (the function returns `void`).
    ErrorDestroyArgs => "PJRT_Error_Destroy" @ 0 { error: *mut c_void, }
);
pjrt_struct!(
    /// `PJRT_Error_Message_Args` (the function returns `void`; the message lives in the error).
    ErrorMessageArgs => "PJRT_Error_Message" @ 1 {
        error: *const c_void,
        message: *const c_char,
        message_size: usize,
    }
);
pjrt_struct!(
    /// `PJRT_Error_GetCode_Args`.
    ErrorGetCodeArgs => "PJRT_Error_GetCode" @ 2 { error: *const c_void, code: u32, }
);

// ------------------------------------------------------------------ named values, plugin

/// Value member of `PJRT_NamedValue` (an anonymous union in C).
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) union NamedValueUnion {
    pub string_value: *const c_char,
    pub int64_value: i64,
    pub int64_array_value: *const i64,
    pub float_value: f32,
    pub bool_value: bool,
}

pub(crate) const NAMED_VALUE_STRING: u32 = 0;
pub(crate) const NAMED_VALUE_INT64: u32 = 1;
pub(crate) const NAMED_VALUE_INT64_LIST: u32 = 2;
pub(crate) const NAMED_VALUE_FLOAT: u32 = 3;
pub(crate) const NAMED_VALUE_BOOL: u32 = 4;

pjrt_struct!(
    /// `PJRT_NamedValue`: `value_size` is the element count for strings and lists, 1 otherwise.
    NamedValue {
        name: *const c_char,
        name_size: usize,
        value_type: u32,
        value: NamedValueUnion,
        value_size: usize,
    }
);
pjrt_struct!(
    /// `PJRT_Plugin_Initialize_Args`.
    PluginInitializeArgs => "PJRT_Plugin_Initialize" @ 3 {}
);
pjrt_struct!(
    /// `PJRT_Plugin_Attributes_Args`; the attributes live as long as the process.
    PluginAttributesArgs => "PJRT_Plugin_Attributes" @ 4 {
        attributes: *const NamedValue,
        num_attributes: usize,
    }
);

// ------------------------------------------------------------------ events

pjrt_struct!(
    /// `PJRT_Event_Destroy_Args`.
    EventDestroyArgs => "PJRT_Event_Destroy" @ 5 { event: *mut c_void, }
);
pjrt_struct!(
    /// `PJRT_Event_Await_Args`: blocks until the event is ready, returns its error if any.
    EventAwaitArgs => "PJRT_Event_Await" @ 8 { event: *mut c_void, }
);

// ------------------------------------------------------------------ client

pjrt_struct!(
    /// `PJRT_Client_Create_Args` (the key-value store callbacks are for multi-process setups).
    ClientCreateArgs => "PJRT_Client_Create" @ 10 {
        create_options: *const NamedValue,
        num_options: usize,
        kv_get_callback: *mut c_void,
        kv_get_user_arg: *mut c_void,
        kv_put_callback: *mut c_void,
        kv_put_user_arg: *mut c_void,
        client: *mut c_void,
        kv_try_get_callback: *mut c_void,
        kv_try_get_user_arg: *mut c_void,
    }
);
pjrt_struct!(
    /// `PJRT_Client_Destroy_Args`.
    ClientDestroyArgs => "PJRT_Client_Destroy" @ 11 { client: *mut c_void, }
);
pjrt_struct!(
    /// `PJRT_Client_PlatformName_Args`; the name lives as long as the client.
    ClientPlatformNameArgs => "PJRT_Client_PlatformName" @ 12 {
        client: *mut c_void,
        platform_name: *const c_char,
        platform_name_size: usize,
    }
);
pjrt_struct!(
    /// `PJRT_Client_ProcessIndex_Args`: which process of a multi-host job this client is.
    ClientProcessIndexArgs => "PJRT_Client_ProcessIndex" @ 13 {
        client: *mut c_void,
        process_index: i32,
    }
);
pjrt_struct!(
    /// `PJRT_Client_PlatformVersion_Args`; the version lives as long as the client.
    ClientPlatformVersionArgs => "PJRT_Client_PlatformVersion" @ 14 {
        client: *mut c_void,
        platform_version: *const c_char,
        platform_version_size: usize,
    }
);
pjrt_struct!(
    /// `PJRT_Client_Devices_Args`; the device list lives as long as the client.
    ClientDevicesArgs => "PJRT_Client_Devices" @ 15 {
        client: *mut c_void,
        devices: *const *mut c_void,
        num_devices: usize,
    }
);
pjrt_struct!(
    /// `PJRT_Client_AddressableDevices_Args`; the list lives as long as the client.
    ClientAddressableDevicesArgs => "PJRT_Client_AddressableDevices" @ 16 {
        client: *mut c_void,
        addressable_devices: *const *mut c_void,
        num_addressable_devices: usize,
    }
);
pjrt_struct!(
    /// `PJRT_Program`: code plus its format name (`"hlo"`, `"hlo_with_config"`, `"mlir"`).
    Program {
        code: *mut c_char,
        code_size: usize,
        format: *const c_char,
        format_size: usize,
    }
);
pjrt_struct!(
    /// `PJRT_Client_Compile_Args`; `compile_options` is a serialized `xla.CompileOptionsProto`.
    ClientCompileArgs => "PJRT_Client_Compile" @ 20 {
        client: *mut c_void,
        program: *const Program,
        compile_options: *const c_char,
        compile_options_size: usize,
        executable: *mut c_void,
    }
);

pub(crate) const HOST_BUFFER_IMMUTABLE_UNTIL_TRANSFER_COMPLETES: u32 = 1;

pjrt_struct!(
    /// `PJRT_Client_DefaultDeviceAssignment_Args`: the caller's `default_assignment` array
    /// (`default_assignment_size` ints) receives the device ids replica-major.
    ClientDefaultDeviceAssignmentArgs => "PJRT_Client_DefaultDeviceAssignment" @ 21 {
        client: *mut c_void,
        num_replicas: i32,
        num_partitions: i32,
        default_assignment_size: usize,
        default_assignment: *mut i32,
    }
);
pjrt_struct!(
    /// `PJRT_Client_BufferFromHostBuffer_Args`; `byte_strides` null means dense major-to-minor.
    ClientBufferFromHostBufferArgs => "PJRT_Client_BufferFromHostBuffer" @ 22 {
        client: *mut c_void,
        data: *const c_void,
        buffer_type: u32,
        dims: *const i64,
        num_dims: usize,
        byte_strides: *const i64,
        num_byte_strides: usize,
        host_buffer_semantics: u32,
        device: *mut c_void,
        memory: *mut c_void,
        device_layout: *mut BufferMemoryLayout,
        done_with_host_buffer: *mut c_void,
        buffer: *mut c_void,
    }
);

// ------------------------------------------------------------------ devices

pjrt_struct!(
    /// `PJRT_DeviceDescription_Id_Args`.
    DeviceDescriptionIdArgs => "PJRT_DeviceDescription_Id" @ 23 {
        device_description: *mut c_void,
        id: i32,
    }
);
pjrt_struct!(
    /// `PJRT_DeviceDescription_ProcessIndex_Args`.
    DeviceDescriptionProcessIndexArgs => "PJRT_DeviceDescription_ProcessIndex" @ 24 {
        device_description: *mut c_void,
        process_index: i32,
    }
);
pjrt_struct!(
    /// `PJRT_DeviceDescription_Kind_Args`; the string lives as long as the device.
    DeviceDescriptionKindArgs => "PJRT_DeviceDescription_Kind" @ 26 {
        device_description: *mut c_void,
        device_kind: *const c_char,
        device_kind_size: usize,
    }
);
pjrt_struct!(
    /// `PJRT_DeviceDescription_DebugString_Args`; the string lives as long as the device.
    DeviceDescriptionDebugStringArgs => "PJRT_DeviceDescription_DebugString" @ 27 {
        device_description: *mut c_void,
        debug_string: *const c_char,
        debug_string_size: usize,
    }
);
pjrt_struct!(
    /// `PJRT_Device_GetDescription_Args`.
    DeviceGetDescriptionArgs => "PJRT_Device_GetDescription" @ 29 {
        device: *mut c_void,
        device_description: *mut c_void,
    }
);

// ------------------------------------------------------------------ executables

pjrt_struct!(
    /// `PJRT_Executable_Destroy_Args`.
    ExecutableDestroyArgs => "PJRT_Executable_Destroy" @ 40 { executable: *mut c_void, }
);
pjrt_struct!(
    /// `PJRT_Executable_NumReplicas_Args`.
    ExecutableNumReplicasArgs => "PJRT_Executable_NumReplicas" @ 42 {
        executable: *mut c_void,
        num_replicas: usize,
    }
);
pjrt_struct!(
    /// `PJRT_Executable_NumPartitions_Args`.
    ExecutableNumPartitionsArgs => "PJRT_Executable_NumPartitions" @ 43 {
        executable: *mut c_void,
        num_partitions: usize,
    }
);
pjrt_struct!(
    /// `PJRT_Executable_NumOutputs_Args`.
    ExecutableNumOutputsArgs => "PJRT_Executable_NumOutputs" @ 44 {
        executable: *mut c_void,
        num_outputs: usize,
    }
);
pjrt_struct!(
    /// `PJRT_Executable_GetCostAnalysis_Args`; the properties live as long as the executable.
    ExecutableGetCostAnalysisArgs => "PJRT_Executable_GetCostAnalysis" @ 46 {
        executable: *mut c_void,
        num_properties: usize,
        properties: *const NamedValue,
    }
);
pjrt_struct!(
    /// `PJRT_Executable_OptimizedProgram_Args`: call once with `program.code` null for the
    /// size, then again with a buffer of that size.
    ExecutableOptimizedProgramArgs => "PJRT_Executable_OptimizedProgram" @ 48 {
        executable: *mut c_void,
        program: *mut Program,
    }
);

/// `void (*serialized_executable_deleter)(PJRT_SerializedExecutable*)`.
pub(crate) type SerializedExecutableDeleter = unsafe extern "C" fn(*mut c_void);

pjrt_struct!(
    /// `PJRT_Executable_Serialize_Args`; the bytes live until the deleter is called.
    ExecutableSerializeArgs => "PJRT_Executable_Serialize" @ 49 {
        executable: *mut c_void,
        serialized_bytes: *const c_char,
        serialized_bytes_size: usize,
        serialized_executable: *mut c_void,
        serialized_executable_deleter: Option<SerializedExecutableDeleter>,
    }
);
pjrt_struct!(
    /// `PJRT_LoadedExecutable_Destroy_Args`.
    LoadedExecutableDestroyArgs => "PJRT_LoadedExecutable_Destroy" @ 50 { executable: *mut c_void, }
);
pjrt_struct!(
    /// `PJRT_LoadedExecutable_GetExecutable_Args`; the result must be destroyed by the caller.
    LoadedExecutableGetExecutableArgs => "PJRT_LoadedExecutable_GetExecutable" @ 51 {
        loaded_executable: *mut c_void,
        executable: *mut c_void,
    }
);
pjrt_struct!(
    /// `PJRT_LoadedExecutable_AddressableDevices_Args`; the list lives as long as the executable.
    LoadedExecutableAddressableDevicesArgs => "PJRT_LoadedExecutable_AddressableDevices" @ 52 {
        executable: *mut c_void,
        addressable_devices: *const *mut c_void,
        num_addressable_devices: usize,
    }
);
pjrt_struct!(
    /// `PJRT_ExecuteOptions` at 0.114 (144 bytes; 0.81 plugins read the first 112).
    ExecuteOptions {
        send_callbacks: *mut c_void,
        recv_callbacks: *mut c_void,
        num_send_ops: usize,
        num_recv_ops: usize,
        launch_id: i32,
        non_donatable_input_indices: *const i64,
        num_non_donatable_input_indices: usize,
        context: *mut c_void,
        call_location: *const c_char,
        num_tasks: usize,
        task_ids: *mut i32,
        incarnation_ids: *mut i64,
        multi_slice_config: *const c_void,
        use_major_to_minor_data_layout_for_callbacks: bool,
        hlo_output_callbacks: *mut c_void,
        num_hlo_output_callbacks: usize,
    }
);
pjrt_struct!(
    /// `PJRT_LoadedExecutable_Execute_Args`: `argument_lists[num_devices][num_args]`, and the
    /// caller-allocated `output_lists[num_devices][num_outputs]`.
    LoadedExecutableExecuteArgs => "PJRT_LoadedExecutable_Execute" @ 55 {
        executable: *mut c_void,
        options: *mut ExecuteOptions,
        argument_lists: *const *const *mut c_void,
        num_devices: usize,
        num_args: usize,
        output_lists: *const *mut *mut c_void,
        device_complete_events: *mut *mut c_void,
        execute_device: *mut c_void,
    }
);
pjrt_struct!(
    /// `PJRT_Executable_DeserializeAndLoad_Args` at 0.114 (72 bytes; 64 at 0.81).
    ExecutableDeserializeAndLoadArgs => "PJRT_Executable_DeserializeAndLoad" @ 56 {
        client: *mut c_void,
        serialized_executable: *const c_char,
        serialized_executable_size: usize,
        loaded_executable: *mut c_void,
        overridden_serialized_compile_options: *const c_char,
        overridden_serialized_compile_options_size: usize,
        load_options: *mut c_void,
    }
);
pjrt_struct!(
    /// `PJRT_Executable_GetCompiledMemoryStats_Args` at 0.114 (144 bytes; 0.81 plugins fill the
    /// fields up to `peak_memory_in_bytes`).
    ExecutableGetCompiledMemoryStatsArgs => "PJRT_Executable_GetCompiledMemoryStats" @ 96 {
        executable: *mut c_void,
        generated_code_size_in_bytes: i64,
        argument_size_in_bytes: i64,
        output_size_in_bytes: i64,
        alias_size_in_bytes: i64,
        temp_size_in_bytes: i64,
        host_generated_code_size_in_bytes: i64,
        host_argument_size_in_bytes: i64,
        host_output_size_in_bytes: i64,
        host_alias_size_in_bytes: i64,
        host_temp_size_in_bytes: i64,
        peak_memory_in_bytes: i64,
        total_size_in_bytes: i64,
        total_allocation_bytes: i64,
        indefinite_allocations: i64,
        peak_unpadded_heap_bytes: i64,
    }
);

// ------------------------------------------------------------------ topologies (compile-only)

pjrt_struct!(
    /// `PJRT_TopologyDescription_Create_Args`: a device topology without a client, for compiling
    /// ahead of time (e.g. libtpu's `v5e:2x2`).
    TopologyDescriptionCreateArgs => "PJRT_TopologyDescription_Create" @ 82 {
        topology_name: *const c_char,
        topology_name_size: usize,
        create_options: *const NamedValue,
        num_options: usize,
        topology: *mut c_void,
    }
);
pjrt_struct!(
    /// `PJRT_TopologyDescription_Destroy_Args`.
    TopologyDescriptionDestroyArgs => "PJRT_TopologyDescription_Destroy" @ 83 {
        topology: *mut c_void,
    }
);
pjrt_struct!(
    /// `PJRT_TopologyDescription_PlatformName_Args`; the name lives as long as the topology.
    TopologyDescriptionPlatformNameArgs => "PJRT_TopologyDescription_PlatformName" @ 84 {
        topology: *mut c_void,
        platform_name: *const c_char,
        platform_name_size: usize,
    }
);
pjrt_struct!(
    /// `PJRT_TopologyDescription_PlatformVersion_Args`; the version lives as long as the topology.
    TopologyDescriptionPlatformVersionArgs => "PJRT_TopologyDescription_PlatformVersion" @ 85 {
        topology: *mut c_void,
        platform_version: *const c_char,
        platform_version_size: usize,
    }
);
pjrt_struct!(
    /// `PJRT_TopologyDescription_GetDeviceDescriptions_Args`; the list lives as long as the
    /// topology.
    TopologyDescriptionGetDeviceDescriptionsArgs => "PJRT_TopologyDescription_GetDeviceDescriptions" @ 86 {
        topology: *mut c_void,
        descriptions: *const *mut c_void,
        num_descriptions: usize,
    }
);
pjrt_struct!(
    /// `PJRT_Compile_Args`: compiles for a topology; `client` may be null (no device needed).
    CompileArgs => "PJRT_Compile" @ 89 {
        topology: *mut c_void,
        program: *const Program,
        compile_options: *const c_char,
        compile_options_size: usize,
        client: *mut c_void,
        executable: *mut c_void,
    }
);

// ------------------------------------------------------------------ buffers

pjrt_struct!(
    /// `PJRT_Buffer_Destroy_Args`.
    BufferDestroyArgs => "PJRT_Buffer_Destroy" @ 58 { buffer: *mut c_void, }
);
pjrt_struct!(
    /// `PJRT_Buffer_ElementType_Args`; `buffer_type` is a `PJRT_Buffer_Type`.
    BufferElementTypeArgs => "PJRT_Buffer_ElementType" @ 59 {
        buffer: *mut c_void,
        buffer_type: u32,
    }
);
pjrt_struct!(
    /// `PJRT_Buffer_Dimensions_Args`; the dims live as long as the buffer.
    BufferDimensionsArgs => "PJRT_Buffer_Dimensions" @ 60 {
        buffer: *mut c_void,
        dims: *const i64,
        num_dims: usize,
    }
);
pjrt_struct!(
    /// `PJRT_Buffer_Device_Args`.
    BufferDeviceArgs => "PJRT_Buffer_Device" @ 65 {
        buffer: *mut c_void,
        device: *mut c_void,
    }
);

pjrt_struct!(
    /// `PJRT_Buffer_MemoryLayout_Tiled`: `minor_to_major` plus optional tiles.
    BufferMemoryLayoutTiled {
        minor_to_major: *const i64,
        minor_to_major_size: usize,
        tile_dims: *const i64,
        tile_dim_sizes: *const usize,
        num_tiles: usize,
    }
);

pub(crate) const MEMORY_LAYOUT_TILED: u32 = 0;

pjrt_struct!(
    /// `PJRT_Buffer_MemoryLayout`. In C the layout member is a union of the tiled (56 bytes)
    /// and strides (32 bytes) forms; declaring only the larger, tiled member gives the same
    /// layout, and tiled is the only form this crate sends.
    BufferMemoryLayout {
        tiled: BufferMemoryLayoutTiled,
        layout_type: u32,
    }
);
pjrt_struct!(
    /// `PJRT_Buffer_ToHostBuffer_Args`: asynchronous; `dst` must outlive `event`.
    BufferToHostBufferArgs => "PJRT_Buffer_ToHostBuffer" @ 70 {
        src: *mut c_void,
        host_layout: *mut BufferMemoryLayout,
        dst: *mut c_void,
        dst_size: usize,
        event: *mut c_void,
    }
);
pjrt_struct!(
    /// `PJRT_Buffer_ReadyEvent_Args`.
    BufferReadyEventArgs => "PJRT_Buffer_ReadyEvent" @ 72 {
        buffer: *mut c_void,
        event: *mut c_void,
    }
);
pjrt_struct!(
    /// `PJRT_Buffer_OpaqueDeviceMemoryDataPointer_Args`.
    BufferOpaqueDeviceMemoryDataPointerArgs => "PJRT_Buffer_OpaqueDeviceMemoryDataPointer" @ 76 {
        buffer: *mut c_void,
        device_memory_ptr: *mut c_void,
    }
);

// Sizes and offsets from the 0.114 header (`PJRT_*_STRUCT_SIZE` and field offsets as listed by
// pypjrt's clang-generated table). A mismatch is a compile error.
const _: () = {
    assert!(FUNCTION_TABLE_OFFSET == 40);
    assert!(size_of::<ApiVersionRaw>() == 24);
    assert!(ErrorMessageArgs::STRUCT_SIZE == 40);
    assert!(ErrorGetCodeArgs::STRUCT_SIZE == 28);
    assert!(NamedValue::STRUCT_SIZE == 56 && offset_of!(NamedValue, value) == 40);
    assert!(PluginInitializeArgs::STRUCT_SIZE == 16);
    assert!(PluginAttributesArgs::STRUCT_SIZE == 32);
    assert!(ClientCreateArgs::STRUCT_SIZE == 88 && offset_of!(ClientCreateArgs, client) == 64);
    assert!(Program::STRUCT_SIZE == 48);
    assert!(ClientCompileArgs::STRUCT_SIZE == 56);
    assert!(ClientBufferFromHostBufferArgs::STRUCT_SIZE == 120);
    assert!(offset_of!(ClientBufferFromHostBufferArgs, host_buffer_semantics) == 72);
    assert!(offset_of!(ClientBufferFromHostBufferArgs, done_with_host_buffer) == 104);
    assert!(DeviceDescriptionIdArgs::STRUCT_SIZE == 28);
    assert!(DeviceGetDescriptionArgs::STRUCT_SIZE == 32);
    assert!(ExecutableOptimizedProgramArgs::STRUCT_SIZE == 32);
    assert!(ExecutableSerializeArgs::STRUCT_SIZE == 56);
    assert!(ExecuteOptions::STRUCT_SIZE == 144);
    assert!(offset_of!(ExecuteOptions, launch_id) == 48);
    assert!(offset_of!(ExecuteOptions, non_donatable_input_indices) == 56);
    assert!(offset_of!(ExecuteOptions, use_major_to_minor_data_layout_for_callbacks) == 120);
    assert!(LoadedExecutableExecuteArgs::STRUCT_SIZE == 80);
    assert!(ExecutableDeserializeAndLoadArgs::STRUCT_SIZE == 72);
    assert!(ExecutableGetCompiledMemoryStatsArgs::STRUCT_SIZE == 144);
    assert!(offset_of!(ExecutableGetCompiledMemoryStatsArgs, peak_memory_in_bytes) == 104);
    assert!(ExecutableGetCostAnalysisArgs::STRUCT_SIZE == 40);
    assert!(TopologyDescriptionCreateArgs::STRUCT_SIZE == 56);
    assert!(TopologyDescriptionDestroyArgs::STRUCT_SIZE == 24);
    assert!(TopologyDescriptionPlatformNameArgs::STRUCT_SIZE == 40);
    assert!(TopologyDescriptionPlatformVersionArgs::STRUCT_SIZE == 40);
    assert!(TopologyDescriptionGetDeviceDescriptionsArgs::STRUCT_SIZE == 40);
    assert!(CompileArgs::STRUCT_SIZE == 64 && offset_of!(CompileArgs, client) == 48);
    assert!(BufferElementTypeArgs::STRUCT_SIZE == 28);
    assert!(BufferDimensionsArgs::STRUCT_SIZE == 40);
    assert!(BufferMemoryLayoutTiled::STRUCT_SIZE == 56);
    assert!(
        BufferMemoryLayout::STRUCT_SIZE == 76 && offset_of!(BufferMemoryLayout, layout_type) == 72
    );
    assert!(BufferToHostBufferArgs::STRUCT_SIZE == 56);
    assert!(BufferOpaqueDeviceMemoryDataPointerArgs::STRUCT_SIZE == 32);
};
