//! The hand-declared XLA proto messages against encodings made by independent tools.
//!
//! `tests/fixtures/*_all_fields.pb` were encoded by `protoc` from the `.txtpb` files beside them
//! with the public XLA `.proto` files, so they pin every declared field number and wire type.
//! `tests/fixtures/jax_conv_block.pb` was serialized by XLA itself (jax 0.10.2, see
//! `jax_conv_block.py`) and shows how XLA's own frontend encodes the ops we emit.

use std::collections::BTreeMap;

use effnetv2::hlo::proto_messages::*;
use effnetv2::hlo::ElementType;
use effnetv2::runtime::options_proto::*;
use prost::Message;

const HLO_ALL_FIELDS: &[u8] = include_bytes!("fixtures/hlo_all_fields.pb");
const OPTIONS_ALL_FIELDS: &[u8] = include_bytes!("fixtures/options_all_fields.pb");
const JAX_CONV_BLOCK: &[u8] = include_bytes!("fixtures/jax_conv_block.pb");

fn array(ty: PrimitiveType, dims: &[i64], minor_to_major: &[i64]) -> ShapeProto {
    ShapeProto {
        element_type: ty as i32,
        dimensions: dims.to_vec(),
        layout: Some(LayoutProto {
            minor_to_major: minor_to_major.to_vec(),
        }),
        ..Default::default()
    }
}

/// The message `hlo_all_fields.txtpb` describes, built with our types.
fn hlo_all_fields() -> HloModuleProto {
    let instruction = HloInstructionProto {
        name: "everything".into(),
        opcode: "convolution".into(),
        shape: Some(ShapeProto {
            element_type: PrimitiveType::Tuple as i32,
            tuple_shapes: vec![ShapeProto {
                is_dynamic_dimension: vec![false, true],
                ..array(PrimitiveType::Bf16, &[3, 5], &[0, 1])
            }],
            ..Default::default()
        }),
        metadata: Some(OpMetadata {
            op_type: "type".into(),
            op_name: "jit(f)/conv".into(),
            source_file: "model.rs".into(),
            source_line: -4,
        }),
        literal: Some(LiteralProto {
            shape: Some(array(PrimitiveType::F32, &[], &[])),
            preds: vec![true, false],
            s8s: vec![0xfd],
            u8s: vec![3, 200],
            s32s: vec![-4],
            s64s: vec![-5],
            u32s: vec![6],
            u64s: vec![u64::MAX],
            f32s: vec![8.5],
            f64s: vec![-9.25],
            tuple_literals: vec![LiteralProto {
                s32s: vec![10],
                ..Default::default()
            }],
            f16s: vec![0x00, 0x42],
            bf16s: vec![0x40, 0x40],
        }),
        parameter_number: 9,
        tuple_index: 13,
        dimensions: vec![14, -1],
        window: Some(Window {
            dimensions: vec![WindowDimension {
                size: 1,
                stride: 2,
                padding_low: -3,
                padding_high: 4,
                window_dilation: 5,
                base_dilation: 6,
                window_reversal: true,
            }],
        }),
        convolution_dimension_numbers: Some(ConvolutionDimensionNumbers {
            input_batch_dimension: 7,
            input_feature_dimension: 8,
            input_spatial_dimensions: vec![11],
            kernel_input_feature_dimension: 3,
            kernel_output_feature_dimension: 4,
            kernel_spatial_dimensions: vec![6],
            output_batch_dimension: 9,
            output_feature_dimension: 10,
            output_spatial_dimensions: vec![12],
        }),
        feature_group_count: 50,
        batch_group_count: 58,
        slice_dimensions: vec![SliceDimensions {
            start: 1,
            limit: 2,
            stride: 3,
        }],
        dynamic_slice_sizes: vec![20],
        padding_config: Some(PaddingConfig {
            dimensions: vec![PaddingConfigDimension {
                edge_padding_low: -1,
                edge_padding_high: 2,
                interior_padding: 3,
            }],
        }),
        channel_id: 26,
        dot_dimension_numbers: Some(DotDimensionNumbers {
            lhs_contracting_dimensions: vec![1],
            rhs_contracting_dimensions: vec![2],
            lhs_batch_dimensions: vec![3],
            rhs_batch_dimensions: vec![4],
        }),
        // Not in the fixture (it predates gather): the CPU plugin decoding a gather correctly
        // (tests/hlo_ops_shape.rs) pins these two fields' numbers instead.
        gather_dimension_numbers: None,
        gather_slice_sizes: Vec::new(),
        comparison_direction: "GE".into(),
        id: (2 << 32) | 35,
        operand_ids: vec![36, (2 << 32) | 1],
        called_computation_ids: vec![38],
        replica_groups: vec![ReplicaGroup {
            replica_ids: vec![0, 49],
        }],
        use_global_device_ids: true,
        precision_config: Some(PrecisionConfig {
            operand_precision: vec![Precision::Highest as i32, Precision::High as i32],
        }),
        frontend_attributes: Some(FrontendAttributes {
            map: BTreeMap::from([
                ("a".to_string(), "68".to_string()),
                ("b".to_string(), "x".to_string()),
            ]),
        }),
        rng_algorithm: RandomAlgorithm::RngPhilox as i32,
        comparison_type: "TOTALORDER".into(),
        collective_device_list: Some(CollectiveDeviceListProto {
            replica_groups: vec![ReplicaGroup {
                replica_ids: vec![87],
            }],
        }),
    };
    HloModuleProto {
        name: "module".into(),
        entry_computation_name: "entry".into(),
        entry_computation_id: 6,
        computations: vec![HloComputationProto {
            name: "entry".into(),
            instructions: vec![instruction],
            program_shape: Some(ProgramShapeProto {
                parameters: vec![array(PrimitiveType::U64, &[2], &[0])],
                result: Some(array(PrimitiveType::S8, &[], &[])),
                parameter_names: vec!["p0".into()],
            }),
            id: 5,
            root_id: (2 << 32) | 35,
        }],
        host_program_shape: Some(ProgramShapeProto {
            parameters: vec![array(PrimitiveType::Pred, &[2], &[0])],
            result: Some(array(PrimitiveType::S64, &[], &[])),
            parameter_names: vec!["p0".into()],
        }),
        id: 5,
        input_output_alias: Some(HloInputOutputAliasProto {
            entries: vec![AliasEntryProto {
                output_shape_index: vec![1],
                parameter_number: 2,
                parameter_shape_index: vec![3],
                kind: AliasKind::MayAlias as i32,
            }],
        }),
        buffer_donor: Some(HloBufferDonorProto {
            entries: vec![BufferDonorEntryProto {
                parameter_number: 1,
                parameter_shape_index: vec![2],
            }],
        }),
    }
}

/// The message `options_all_fields.txtpb` describes, built with our types.
fn options_all_fields() -> CompileOptionsProto {
    let value = |v| OptionOverrideProto { value: Some(v) };
    CompileOptionsProto {
        argument_layouts: vec![array(PrimitiveType::F32, &[2, 3], &[1, 0])],
        parameter_is_tupled_arguments: true,
        executable_build_options: Some(ExecutableBuildOptionsProto {
            device_ordinal: -1,
            result_layout: Some(array(PrimitiveType::F16, &[3], &[0])),
            num_replicas: 4,
            num_partitions: 5,
            use_spmd_partitioning: true,
            use_auto_spmd_partitioning: true,
            device_assignment: Some(DeviceAssignmentProto {
                replica_count: 1,
                computation_count: 2,
                computation_devices: vec![
                    ComputationDevice {
                        replica_device_ids: vec![1],
                    },
                    ComputationDevice {
                        replica_device_ids: vec![0],
                    },
                ],
            }),
            alias_passthrough_params: true,
            run_backend_only: true,
            allow_spmd_sharding_propagation_to_output: vec![true],
            allow_spmd_sharding_propagation_to_parameters: vec![false, true],
            use_shardy_partitioner: true,
        }),
        compile_portable_executable: true,
        profile_version: 5,
        env_option_overrides: BTreeMap::from([
            (
                "xla_dump_to".to_string(),
                value(OptionOverrideValue::StringField("/tmp/dump".into())),
            ),
            (
                "xla_dump_hlo_as_text".to_string(),
                value(OptionOverrideValue::BoolField(true)),
            ),
            (
                "xla_cpu_parallel_codegen_split_count".to_string(),
                value(OptionOverrideValue::IntField(-3)),
            ),
            (
                "some_double".to_string(),
                value(OptionOverrideValue::DoubleField(0.25)),
            ),
        ]),
    }
}

#[test]
fn hlo_messages_decode_protoc_encoding_of_every_field() {
    let decoded = HloModuleProto::decode(HLO_ALL_FIELDS).expect("fixture decodes");
    assert_eq!(decoded, hlo_all_fields());
}

#[test]
fn hlo_messages_encode_every_field_like_protoc() {
    // protoc writes fields in field-number order, as prost does, so the bytes agree exactly.
    assert_eq!(hlo_all_fields().encode_to_vec(), HLO_ALL_FIELDS);
}

#[test]
fn compile_options_decode_protoc_encoding_of_every_field() {
    let decoded = CompileOptionsProto::decode(OPTIONS_ALL_FIELDS).expect("fixture decodes");
    assert_eq!(decoded, options_all_fields());
}

#[test]
fn compile_options_encode_every_field_like_protoc() {
    assert_eq!(options_all_fields().encode_to_vec(), OPTIONS_ALL_FIELDS);
}

#[test]
fn minimal_compile_options_have_the_expected_wire_bytes() {
    // Hand-derived: field 3 (executable_build_options), length-delimited, 15 bytes:
    //   field 1 varint -1 (ten bytes: ff ff ff ff ff ff ff ff ff 01), field 4 varint 1, field 5 varint 1.
    let options = CompileOptionsProto {
        executable_build_options: Some(ExecutableBuildOptionsProto {
            device_ordinal: -1,
            num_replicas: 1,
            num_partitions: 1,
            ..Default::default()
        }),
        ..Default::default()
    };
    let expected = [
        0x1a, 15, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x20, 0x01,
        0x28, 0x01,
    ];
    assert_eq!(options.encode_to_vec(), expected);
}

#[test]
fn primitive_type_numbers_match_element_type_discriminants() {
    for ty in ElementType::ALL {
        let primitive = PrimitiveType::from(ty);
        assert_eq!(primitive as i32, ty as i32, "{ty:?}");
        assert_eq!(format!("{primitive:?}").to_lowercase(), ty.name(), "{ty:?}");
    }
}

fn jax_module() -> HloModuleProto {
    HloModuleProto::decode(JAX_CONV_BLOCK).expect("jax fixture decodes")
}

fn computation(module: &HloModuleProto, id: i64) -> &HloComputationProto {
    module
        .computations
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no computation {id}"))
}

fn instruction<'c>(computation: &'c HloComputationProto, opcode: &str) -> &'c HloInstructionProto {
    computation
        .instructions
        .iter()
        .find(|i| i.opcode == opcode)
        .unwrap_or_else(|| panic!("no {opcode} in {}", computation.name))
}

fn root(computation: &HloComputationProto) -> &HloInstructionProto {
    computation
        .instructions
        .iter()
        .find(|i| i.id == computation.root_id)
        .expect("root instruction exists")
}

#[test]
fn jax_module_layout_ids_and_program_shape() {
    let module = jax_module();
    assert_eq!(module.name, "jit_block");
    let entry = computation(&module, module.entry_computation_id);
    assert_eq!(entry.name, module.entry_computation_name);
    // Callees come before callers, and instruction ids are (computation id << 32) | local id.
    for (position, c) in module.computations.iter().enumerate() {
        for i in &c.instructions {
            assert_eq!(i.id >> 32, c.id, "{}", i.name);
            for callee in &i.called_computation_ids {
                let callee_position = module
                    .computations
                    .iter()
                    .position(|c| c.id == *callee)
                    .unwrap();
                assert!(
                    callee_position < position,
                    "{} calls a later computation",
                    i.name
                );
            }
        }
    }
    let host = module.host_program_shape.as_ref().unwrap();
    assert_eq!(host.parameter_names, ["p0", "p1", "p2"]);
    assert_eq!(host.parameters[0].element_type(), PrimitiveType::Bf16);
    assert_eq!(host.parameters[0].dimensions, [1, 4, 4, 3]);
    assert_eq!(
        host.parameters[0].layout.as_ref().unwrap().minor_to_major,
        [3, 2, 1, 0]
    );
    assert_eq!(host.parameters[0].is_dynamic_dimension, [false; 4]);
    let result = host.result.as_ref().unwrap();
    assert_eq!(result.element_type(), PrimitiveType::Tuple);
    assert_eq!(result.tuple_shapes.len(), 3);
}

#[test]
fn jax_convolution_attributes() {
    let module = jax_module();
    let conv = instruction(
        computation(&module, module.entry_computation_id),
        "convolution",
    );
    // window={size=3x3 stride=2x2 pad=0_1x0_1}: trivial dilations are written out as 1.
    let expected_dim = WindowDimension {
        size: 3,
        stride: 2,
        padding_low: 0,
        padding_high: 1,
        window_dilation: 1,
        base_dilation: 1,
        window_reversal: false,
    };
    assert_eq!(
        conv.window.as_ref().unwrap().dimensions,
        [expected_dim.clone(), expected_dim]
    );
    // dim_labels=b01f_01io->b01f
    assert_eq!(
        conv.convolution_dimension_numbers.as_ref().unwrap(),
        &ConvolutionDimensionNumbers {
            input_batch_dimension: 0,
            input_feature_dimension: 3,
            input_spatial_dimensions: vec![1, 2],
            kernel_input_feature_dimension: 2,
            kernel_output_feature_dimension: 3,
            kernel_spatial_dimensions: vec![0, 1],
            output_batch_dimension: 0,
            output_feature_dimension: 3,
            output_spatial_dimensions: vec![1, 2],
        }
    );
    assert_eq!((conv.feature_group_count, conv.batch_group_count), (1, 1));
    assert_eq!(
        conv.precision_config.as_ref().unwrap().operand_precision,
        [Precision::Default as i32; 2]
    );
    // bf16 operands, f32 result: the conv itself widens (preferred_element_type).
    assert_eq!(
        conv.shape.as_ref().unwrap().element_type(),
        PrimitiveType::F32
    );
}

#[test]
fn jax_reduce_window_reduce_and_compare() {
    let module = jax_module();
    let entry = computation(&module, module.entry_computation_id);
    let window = instruction(entry, "reduce-window");
    let sizes: Vec<_> = window
        .window
        .as_ref()
        .unwrap()
        .dimensions
        .iter()
        .map(|d| (d.size, d.stride, d.padding_low, d.padding_high))
        .collect();
    assert_eq!(
        sizes,
        [(1, 1, 0, 0), (3, 1, 1, 1), (3, 1, 1, 1), (1, 1, 0, 0)]
    );
    assert_eq!(
        root(computation(&module, window.called_computation_ids[0])).opcode,
        "maximum"
    );

    let reduce = instruction(entry, "reduce");
    assert_eq!(reduce.dimensions, [1, 2]);
    assert_eq!(reduce.operand_ids.len(), 2, "operand and init value");
    assert_eq!(
        root(computation(&module, reduce.called_computation_ids[0])).opcode,
        "add"
    );

    let compare = instruction(entry, "compare");
    assert_eq!(
        (
            compare.comparison_direction.as_str(),
            compare.comparison_type.as_str()
        ),
        ("GT", "FLOAT")
    );
}

#[test]
fn jax_bf16_literal_is_little_endian_bytes() {
    let module = jax_module();
    let entry = computation(&module, module.entry_computation_id);
    let literal = entry
        .instructions
        .iter()
        .filter_map(|i| i.literal.as_ref())
        .find(|l| !l.bf16s.is_empty() && l.shape.as_ref().unwrap().dimensions == [1, 4])
        .expect("the bf16[1,4] constant");
    let expected: Vec<u8> = [1.5f32, -2.0, 0.25, 3.0]
        .iter()
        .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
        .collect();
    assert_eq!(literal.bf16s, expected);
    assert_eq!(
        literal
            .shape
            .as_ref()
            .unwrap()
            .layout
            .as_ref()
            .unwrap()
            .minor_to_major,
        [1, 0]
    );
}

#[test]
fn jax_rng_and_while() {
    let module = jax_module();
    let entry = computation(&module, module.entry_computation_id);
    let rng = instruction(entry, "rng-bit-generator");
    assert_eq!(rng.rng_algorithm(), RandomAlgorithm::RngThreeFry);
    // Its tuple result is taken apart by get-tuple-element with tuple_index 0 and 1.
    let mut indices: Vec<_> = entry
        .instructions
        .iter()
        .filter(|i| i.opcode == "get-tuple-element" && i.operand_ids == [rng.id])
        .map(|i| i.tuple_index)
        .collect();
    indices.sort_unstable();
    assert_eq!(indices, [0, 1]);

    // while: called_computation_ids = [body, condition].
    let while_op = instruction(entry, "while");
    let [body, condition] = while_op.called_computation_ids[..] else {
        panic!("while calls two computations")
    };
    assert_eq!(root(computation(&module, body)).opcode, "add");
    let condition_root = root(computation(&module, condition));
    assert_eq!(condition_root.opcode, "compare");
    assert_eq!(
        (
            condition_root.comparison_direction.as_str(),
            condition_root.comparison_type.as_str()
        ),
        ("LT", "SIGNED")
    );
}

#[test]
fn jax_module_round_trips() {
    let module = jax_module();
    assert_eq!(
        HloModuleProto::decode(module.encode_to_vec().as_slice()).unwrap(),
        module
    );
}
