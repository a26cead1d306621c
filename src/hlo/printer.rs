//! HLO text in XLA's own syntax, deterministic and readable (`Module::to_text`).

use std::fmt::Write;

use super::builder::{Computation, Instruction};
use super::element::ElementType;
use super::literal::Literal;
use super::module::Module;
use super::op::{Op, WindowDim};
use super::shape::{join, Shape};

/// Literals with more elements than this print as `{...}` (XLA does the same for big constants).
const MAX_PRINTED_ELEMENTS: usize = 64;

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
        let operands: Vec<String> = inst
            .operands
            .iter()
            .map(|&o| {
                format!(
                    "{} %{}",
                    c.instructions()[o].shape,
                    self.instruction_name(c.id(), o)
                )
            })
            .collect();
        let inner = match &inst.op {
            Op::Parameter { number, .. } => number.to_string(),
            Op::Constant(lit) => literal_text(lit),
            _ => operands.join(", "),
        };
        let mut text = format!(
            "%{} = {} {}({inner})",
            self.instruction_name(c.id(), index),
            inst.shape,
            inst.op.opcode()
        );
        for attr in self.attributes(c, inst) {
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

    /// The `name=value` attributes that follow the operand list.
    fn attributes(&self, c: &Computation, inst: &Instruction) -> Vec<String> {
        let callee = |id| format!("%{}", self.computation_name(id));
        match &inst.op {
            Op::Iota { dimension } => vec![format!("iota_dimension={dimension}")],
            Op::Broadcast { dimensions } | Op::Reverse { dimensions } => {
                vec![format!("dimensions={{{}}}", join(dimensions))]
            }
            Op::Transpose { permutation } => vec![format!("dimensions={{{}}}", join(permutation))],
            Op::Concatenate { dimension } => vec![format!("dimensions={{{dimension}}}")],
            Op::Slice {
                start,
                limit,
                stride,
            } => {
                let dims: Vec<String> = (0..start.len())
                    .map(|d| format!("[{}:{}:{}]", start[d], limit[d], stride[d]))
                    .collect();
                vec![format!("slice={{{}}}", dims.join(", "))]
            }
            Op::DynamicSlice { sizes } => vec![format!("dynamic_slice_sizes={{{}}}", join(sizes))],
            Op::Pad { config } => {
                let dims: Vec<String> = config
                    .iter()
                    .map(|p| {
                        if p.interior == 0 {
                            format!("{}_{}", p.low, p.high)
                        } else {
                            format!("{}_{}_{}", p.low, p.high, p.interior)
                        }
                    })
                    .collect();
                vec![format!("padding={}", dims.join("x"))]
            }
            Op::Compare { direction } => vec![format!("direction={}", direction.name())],
            Op::Reduce {
                dimensions,
                reducer,
            } => vec![
                format!("dimensions={{{}}}", join(dimensions)),
                format!("to_apply={}", callee(*reducer)),
            ],
            Op::ReduceWindow { window, reducer } => vec![
                window_text(window),
                format!("to_apply={}", callee(*reducer)),
            ],
            Op::SelectAndScatter {
                window,
                select,
                scatter,
            } => {
                vec![
                    window_text(window),
                    format!("select={}", callee(*select)),
                    format!("scatter={}", callee(*scatter)),
                ]
            }
            Op::Convolution {
                window,
                dimension_numbers,
                feature_group_count,
                batch_group_count,
            } => {
                let mut attrs = Vec::new();
                if !window.is_empty() {
                    attrs.push(window_text(window));
                }
                attrs.push(format!("dim_labels={}", dimension_numbers.labels()));
                if *feature_group_count != 1 {
                    attrs.push(format!("feature_group_count={feature_group_count}"));
                }
                if *batch_group_count != 1 {
                    attrs.push(format!("batch_group_count={batch_group_count}"));
                }
                attrs
            }
            Op::Dot {
                dimension_numbers: dn,
            } => {
                let mut attrs = Vec::new();
                if !dn.lhs_batch.is_empty() {
                    attrs.push(format!("lhs_batch_dims={{{}}}", join(&dn.lhs_batch)));
                }
                attrs.push(format!(
                    "lhs_contracting_dims={{{}}}",
                    join(&dn.lhs_contracting)
                ));
                if !dn.rhs_batch.is_empty() {
                    attrs.push(format!("rhs_batch_dims={{{}}}", join(&dn.rhs_batch)));
                }
                attrs.push(format!(
                    "rhs_contracting_dims={{{}}}",
                    join(&dn.rhs_contracting)
                ));
                attrs
            }
            Op::GetTupleElement { index } => vec![format!("index={index}")],
            Op::RngBitGenerator { algorithm } => vec![format!("algorithm={}", algorithm.name())],
            Op::While { condition, body } => vec![
                format!("condition={}", callee(*condition)),
                format!("body={}", callee(*body)),
            ],
            // XLA's parser takes a pred-selected conditional only in its true/false form.
            Op::Conditional { branches } if is_pred(&c.instructions()[inst.operands[0]].shape) => {
                vec![
                    format!("true_computation={}", callee(branches[0])),
                    format!("false_computation={}", callee(branches[1])),
                ]
            }
            Op::Conditional { branches } => {
                let names: Vec<String> = branches.iter().map(|&b| callee(b)).collect();
                vec![format!("branch_computations={{{}}}", names.join(", "))]
            }
            Op::AllReduce {
                replica_groups,
                reducer,
            } => {
                let groups: Vec<String> = replica_groups
                    .iter()
                    .map(|g| format!("{{{}}}", join(g)))
                    .collect();
                vec![
                    format!("replica_groups={{{}}}", groups.join(",")),
                    format!("to_apply={}", callee(*reducer)),
                ]
            }
            Op::Parameter { .. }
            | Op::ReplicaId
            | Op::Constant(_)
            | Op::Convert
            | Op::BitcastConvert
            | Op::Reshape
            | Op::DynamicUpdateSlice
            | Op::Select
            | Op::Clamp
            | Op::Unary(_)
            | Op::Binary(_)
            | Op::Tuple => Vec::new(),
        }
    }
}

fn is_pred(shape: &Shape) -> bool {
    shape
        .as_array()
        .is_some_and(|a| a.ty() == ElementType::Pred)
}

/// XLA's window text: `size=3x3 stride=2x2 pad=0_1x0_1 lhs_dilate=.. rhs_dilate=..`, omitting
/// fields that hold their defaults.
fn window_text(window: &[WindowDim]) -> String {
    let field =
        |f: &dyn Fn(&WindowDim) -> String| window.iter().map(f).collect::<Vec<_>>().join("x");
    let mut parts = vec![format!("size={}", field(&|w| w.size.to_string()))];
    if window.iter().any(|w| w.stride != 1) {
        parts.push(format!("stride={}", field(&|w| w.stride.to_string())));
    }
    if window
        .iter()
        .any(|w| w.padding_low != 0 || w.padding_high != 0)
    {
        parts.push(format!(
            "pad={}",
            field(&|w| format!("{}_{}", w.padding_low, w.padding_high))
        ));
    }
    if window.iter().any(|w| w.base_dilation != 1) {
        parts.push(format!(
            "lhs_dilate={}",
            field(&|w| w.base_dilation.to_string())
        ));
    }
    if window.iter().any(|w| w.window_dilation != 1) {
        parts.push(format!(
            "rhs_dilate={}",
            field(&|w| w.window_dilation.to_string())
        ));
    }
    format!("window={{{}}}", parts.join(" "))
}

/// A literal in HLO text: `1.5` for a scalar, nested braces for arrays.
fn literal_text(lit: &Literal) -> String {
    let dims = lit.shape().dims();
    let count = lit.shape().element_count() as usize;
    if count > MAX_PRINTED_ELEMENTS {
        return "{...}".into();
    }
    let values = element_texts(lit);
    if dims.is_empty() {
        return values[0].clone();
    }
    fn nest(values: &[String], dims: &[i64]) -> String {
        if dims.len() == 1 {
            return format!("{{{}}}", values.join(", "));
        }
        let inner = values.len() / dims[0].max(1) as usize;
        let parts: Vec<String> = if inner == 0 {
            Vec::new()
        } else {
            values.chunks(inner).map(|c| nest(c, &dims[1..])).collect()
        };
        format!("{{ {} }}", parts.join(", "))
    }
    nest(&values, dims)
}

/// Each element in HLO text; integers print exactly, floats in Rust's shortest round-trip form.
fn element_texts(lit: &Literal) -> Vec<String> {
    use super::element::from_bytes;
    fn ints<T: super::element::NativeType + std::fmt::Display>(b: &[u8]) -> Vec<String> {
        from_bytes::<T>(b).iter().map(T::to_string).collect()
    }
    let b = lit.bytes();
    match lit.ty() {
        ElementType::Pred => from_bytes::<bool>(b).iter().map(bool::to_string).collect(),
        ElementType::S8 => ints::<i8>(b),
        ElementType::S32 => ints::<i32>(b),
        ElementType::S64 => ints::<i64>(b),
        ElementType::U8 => ints::<u8>(b),
        ElementType::U32 => ints::<u32>(b),
        ElementType::U64 => ints::<u64>(b),
        // Half and single precision print at f32 precision so that 0.1 stays `0.1`.
        ElementType::F16 | ElementType::Bf16 | ElementType::F32 => lit
            .to_f64_vec()
            .into_iter()
            .map(|v| float_text(v, format!("{:?}", v as f32)))
            .collect(),
        ElementType::F64 => lit
            .to_f64_vec()
            .into_iter()
            .map(|v| float_text(v, format!("{v:?}")))
            .collect(),
    }
}

fn float_text(v: f64, finite: String) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        finite
    }
}
