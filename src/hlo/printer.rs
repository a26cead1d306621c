//! HLO text in XLA's own syntax, deterministic and readable (`Module::to_text`). Each op's
//! attributes print from their description ([`super::Op::attributes`]), so this file has no
//! per-op code.

use std::fmt::Write;

use super::attribute::AttributeText;
use super::builder::{Computation, Instruction};
use super::module::Module;
use super::shape::{join, Shape};

impl Module {
    /// The module as HLO text, e.g. `HloModule m, entry_computation_layout={...}` followed by one
    /// block per computation, callees first and the entry marked `ENTRY`.
    pub fn to_text(&self) -> String {
        let entry = self.entry();
        let params: Vec<String> = entry
            .parameter_shapes()
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut out = format!(
            "HloModule {}, entry_computation_layout={{({})->{}}}",
            self.name(),
            params.join(", "),
            entry.result_shape()
        );
        if !self.aliases().is_empty() {
            let entries: Vec<String> = self
                .aliases()
                .iter()
                .map(|a| {
                    format!(
                        "{{{}}}: ({}, {{{}}}, may-alias)",
                        join(&a.output_index),
                        a.parameter,
                        join(&a.parameter_index)
                    )
                })
                .collect();
            let _ = write!(out, ", input_output_alias={{ {} }}", entries.join(", "));
        }
        out.push_str("\n\n");
        for c in self.computations() {
            self.print_computation(c, c.id() == entry.id(), &mut out);
            out.push('\n');
        }
        out
    }

    fn print_computation(&self, c: &Computation, is_entry: bool, out: &mut String) {
        let params: Vec<String> = c
            .parameter_indices()
            .iter()
            .map(|&i| {
                format!(
                    "{}: {}",
                    self.instruction_name(c.id(), i),
                    c.instructions()[i].shape
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "{}%{} ({}) -> {} {{",
            if is_entry { "ENTRY " } else { "" },
            self.computation_name(c.id()),
            params.join(", "),
            c.result_shape()
        );
        for (i, inst) in c.instructions().iter().enumerate() {
            let root = if i == c.root_index() { "ROOT " } else { "" };
            let _ = writeln!(out, "  {root}{}", self.instruction_text(c, i, inst));
        }
        out.push_str("}\n");
    }

    fn instruction_text(&self, c: &Computation, index: usize, inst: &Instruction) -> String {
        let shapes: Vec<&Shape> = inst
            .operands
            .iter()
            .map(|&o| &c.instructions()[o].shape)
            .collect();
        let callee = |id| format!("%{}", self.computation_name(id));
        let mut inner = None;
        let mut attributes = Vec::new();
        for attribute in inst.op.attributes() {
            match attribute.text(&shapes, &callee) {
                AttributeText::InParentheses(text) => inner = Some(text),
                AttributeText::Named(entries) => attributes.extend(entries),
            }
        }
        let inner = inner.unwrap_or_else(|| {
            let operands: Vec<String> = inst
                .operands
                .iter()
                .zip(&shapes)
                .map(|(&o, shape)| format!("{shape} %{}", self.instruction_name(c.id(), o)))
                .collect();
            operands.join(", ")
        });
        let mut text = format!(
            "%{} = {} {}({inner})",
            self.instruction_name(c.id(), index),
            inst.shape,
            inst.op.opcode()
        );
        for attr in attributes {
            let _ = write!(text, ", {attr}");
        }
        let m = &inst.metadata;
        if !m.op_type.is_empty() || !m.op_name.is_empty() {
            let mut fields = Vec::new();
            if !m.op_type.is_empty() {
                fields.push(format!("op_type={:?}", m.op_type));
            }
            if !m.op_name.is_empty() {
                fields.push(format!("op_name={:?}", m.op_name));
            }
            let _ = write!(text, ", metadata={{{}}}", fields.join(" "));
        }
        text
    }
}
