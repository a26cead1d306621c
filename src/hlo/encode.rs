//! Serialized `HloModuleProto` bytes for PJRT's `"hlo"` program format. Each op's attributes
//! are encoded from their description ([`super::Op::attributes`]), so this file has no per-op
//! code.
//!
//! Follows the rules XLA checks when it loads a module (see `shared/spec/pjrt.md`): layouts on
//! every array shape and literal, `parameter_names` in every program shape, callees listed
//! before their callers, operands defined before use, unique names and ids.

use prost::Message;

use super::builder::{Computation, Instruction};
use super::module::Module;
use super::op::ComputationId;
use super::proto_messages as pb;
use super::proto_values::shape_proto;
use super::shape::Shape;

impl Module {
    /// The module as a serialized `xla.HloModuleProto`.
    pub fn to_proto_bytes(&self) -> Vec<u8> {
        self.to_proto().encode_to_vec()
    }

    /// The module as a `xla.HloModuleProto` message.
    pub fn to_proto(&self) -> pb::HloModuleProto {
        let mut next_instruction_id = 1i64;
        let computation_ids: std::collections::HashMap<_, _> = self
            .computations()
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id(), i as i64 + 1))
            .collect();
        let computations: Vec<pb::HloComputationProto> = self
            .computations()
            .iter()
            .map(|c| {
                let first_id = next_instruction_id;
                next_instruction_id += c.instructions().len() as i64;
                let instructions = c
                    .instructions()
                    .iter()
                    .enumerate()
                    .map(|(i, inst)| {
                        let mut proto =
                            self.instruction_proto(c, i, inst, |id| computation_ids[&id]);
                        proto.id = first_id + i as i64;
                        proto.operand_ids =
                            inst.operands.iter().map(|&o| first_id + o as i64).collect();
                        proto
                    })
                    .collect();
                pb::HloComputationProto {
                    name: self.computation_name(c.id()).to_string(),
                    instructions,
                    program_shape: Some(program_shape(c)),
                    id: computation_ids[&c.id()],
                    root_id: first_id + c.root_index() as i64,
                }
            })
            .collect();
        let entry = self.entry();
        let input_output_alias =
            (!self.aliases().is_empty()).then(|| pb::HloInputOutputAliasProto {
                entries: self
                    .aliases()
                    .iter()
                    .map(|a| pb::AliasEntryProto {
                        output_shape_index: a.output_index.clone(),
                        parameter_number: a.parameter,
                        parameter_shape_index: a.parameter_index.clone(),
                        kind: pb::AliasKind::MayAlias as i32,
                    })
                    .collect(),
            });
        pb::HloModuleProto {
            name: self.name().to_string(),
            entry_computation_name: self.computation_name(entry.id()).to_string(),
            entry_computation_id: computation_ids[&entry.id()],
            computations,
            host_program_shape: Some(program_shape(entry)),
            id: 1,
            input_output_alias,
            buffer_donor: None,
        }
    }

    fn instruction_proto(
        &self,
        c: &Computation,
        index: usize,
        inst: &Instruction,
        computation_id: impl Fn(ComputationId) -> i64,
    ) -> pb::HloInstructionProto {
        let mut p = pb::HloInstructionProto {
            name: self.instruction_name(c.id(), index).to_string(),
            opcode: inst.op.opcode().to_string(),
            shape: Some(shape_proto(&inst.shape)),
            ..Default::default()
        };
        if !inst.metadata.op_type.is_empty() || !inst.metadata.op_name.is_empty() {
            p.metadata = Some(pb::OpMetadata {
                op_type: inst.metadata.op_type.clone(),
                op_name: inst.metadata.op_name.clone(),
                ..Default::default()
            });
        }
        let shapes: Vec<&Shape> = inst
            .operands
            .iter()
            .map(|&o| &c.instructions()[o].shape)
            .collect();
        for attribute in inst.op.attributes() {
            attribute.encode(&mut p, &shapes, &computation_id);
        }
        p
    }
}

fn program_shape(c: &Computation) -> pb::ProgramShapeProto {
    pb::ProgramShapeProto {
        parameters: c.parameter_shapes().into_iter().map(shape_proto).collect(),
        result: Some(shape_proto(c.result_shape())),
        parameter_names: c
            .parameter_names()
            .into_iter()
            .map(str::to_string)
            .collect(),
    }
}
