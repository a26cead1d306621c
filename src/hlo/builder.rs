//! The graph builder: creates one computation at a time and hands out typed value handles.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::error::{HloError, Result};
use super::op::{ComputationId, Metadata, Op};
use super::shape::{ArrayShape, Shape};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn fresh_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// A handle to a value produced by an instruction of one [`Builder`].
///
/// Handles are cheap `Copy` indices; each remembers its builder so that using a value in another
/// computation is an error instead of a silently wrong graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Value {
    builder: u64,
    index: u32,
}

impl Value {
    /// Position of the producing instruction in its computation (definition order).
    pub fn index(self) -> usize {
        self.index as usize
    }
}

/// One instruction: opcode with attributes, operands (indices into the same computation), the
/// inferred result shape and readable provenance.
#[derive(Clone, Debug, PartialEq)]
pub struct Instruction {
    pub op: Op,
    pub operands: Vec<usize>,
    pub shape: Shape,
    pub metadata: Metadata,
}

/// A finished computation: instructions in definition order, a root, and the computations it calls.
/// Cloning is cheap (shared).
#[derive(Clone, Debug)]
pub struct Computation(pub(crate) Arc<ComputationData>);

#[derive(Debug)]
pub(crate) struct ComputationData {
    pub id: ComputationId,
    pub name: String,
    pub instructions: Vec<Instruction>,
    pub root: usize,
    /// Parameter instruction indices ordered by parameter number.
    pub parameters: Vec<usize>,
    pub callees: Vec<Computation>,
}

impl Computation {
    pub fn id(&self) -> ComputationId {
        self.0.id
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }

    pub fn instructions(&self) -> &[Instruction] {
        &self.0.instructions
    }

    pub fn root(&self) -> &Instruction {
        &self.0.instructions[self.0.root]
    }

    pub fn root_index(&self) -> usize {
        self.0.root
    }

    pub fn result_shape(&self) -> &Shape {
        &self.root().shape
    }

    pub fn parameter_shapes(&self) -> Vec<&Shape> {
        self.0
            .parameters
            .iter()
            .map(|&i| &self.0.instructions[i].shape)
            .collect()
    }

    pub fn parameter_names(&self) -> Vec<&str> {
        self.0
            .parameters
            .iter()
            .map(|&i| match &self.0.instructions[i].op {
                Op::Parameter { name, .. } => name.as_str(),
                _ => unreachable!("parameter list holds parameters only"),
            })
            .collect()
    }

    pub fn parameter_indices(&self) -> &[usize] {
        &self.0.parameters
    }

    /// The computations this one calls directly.
    pub fn callees(&self) -> &[Computation] {
        &self.0.callees
    }
}

/// Builds one HLO computation.
///
/// Every op method infers the result shape and returns `Err` naming the op and its operand shapes
/// when the operands do not fit. Ops are recorded in definition order, so operands always precede
/// their users (what XLA requires of a serialized module).
#[derive(Debug)]
pub struct Builder {
    id: u64,
    name: String,
    instructions: Vec<Instruction>,
    parameters: Vec<Option<usize>>,
    callees: Vec<Computation>,
    scopes: Vec<String>,
    op_type: Option<String>,
    /// Instructions that autodiff treats as constants (see `autodiff::stop_gradient`).
    gradient_stops: HashSet<usize>,
    /// Instructions whose gradient a rule gives instead of autodiff (see `autodiff::custom_vjp`).
    custom_gradients: HashMap<usize, CustomGradient>,
}

/// Given a value's cotangent and which of its [`CustomGradient::inputs`] need one, the cotangent
/// of each input (`None` where not needed, or zero).
pub type GradientRule =
    Arc<dyn Fn(&mut Builder, Value, &[bool]) -> Result<Vec<Option<Value>>> + Send + Sync>;

/// A gradient rule attached to one value: reverse-mode autodiff applies it to the value's
/// cotangent instead of differentiating the instructions between `inputs` and the value.
#[derive(Clone)]
pub struct CustomGradient {
    /// Names the rule in the metadata of the ops it emits (`grad/<name>`).
    pub name: String,
    pub inputs: Vec<Value>,
    pub rule: GradientRule,
}

impl fmt::Debug for CustomGradient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomGradient")
            .field("name", &self.name)
            .field("inputs", &self.inputs)
            .finish_non_exhaustive()
    }
}

impl Builder {
    pub fn new(name: impl Into<String>) -> Builder {
        Builder {
            id: fresh_id(),
            name: name.into(),
            instructions: Vec::new(),
            parameters: Vec::new(),
            callees: Vec::new(),
            scopes: Vec::new(),
            op_type: None,
            gradient_stops: HashSet::new(),
            custom_gradients: HashMap::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of instructions recorded so far.
    pub fn len(&self) -> usize {
        self.instructions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.instructions.is_empty()
    }

    /// Declares parameter `number` of this computation.
    pub fn parameter(
        &mut self,
        number: i64,
        shape: impl Into<Shape>,
        name: impl Into<String>,
    ) -> Result<Value> {
        let shape = shape.into();
        let slot = usize::try_from(number).map_err(|_| {
            HloError::new(
                "parameter",
                &[],
                format!("parameter number {number} is negative"),
            )
        })?;
        if self.parameters.get(slot).copied().flatten().is_some() {
            return Err(HloError::new(
                "parameter",
                &[],
                format!("parameter {number} is declared twice"),
            ));
        }
        let value = self.push(
            Op::Parameter {
                number,
                name: name.into(),
            },
            Vec::new(),
            shape,
        );
        if self.parameters.len() <= slot {
            self.parameters.resize(slot + 1, None);
        }
        self.parameters[slot] = Some(value.index());
        Ok(value)
    }

    /// The shape of a value of this builder.
    pub fn shape(&self, v: Value) -> &Shape {
        &self.instructions[v.index()].shape
    }

    /// The array shape of a value; an error naming `op` when the value is a tuple.
    pub fn array_shape(&self, op: &str, v: Value) -> Result<&ArrayShape> {
        let shape = self.shape(v);
        shape
            .as_array()
            .ok_or_else(|| HloError::new(op, &[shape], "expected an array operand, got a tuple"))
    }

    /// The instruction that produced `v`.
    pub fn instruction(&self, v: Value) -> &Instruction {
        &self.instructions[v.index()]
    }

    /// The operands of `v` as handles.
    pub fn operands(&self, v: Value) -> Vec<Value> {
        self.instructions[v.index()]
            .operands
            .iter()
            .map(|&i| self.value(i))
            .collect()
    }

    /// Every value in definition order.
    pub fn values(&self) -> impl Iterator<Item = Value> + '_ {
        (0..self.instructions.len()).map(|i| self.value(i))
    }

    /// Parameter handles by parameter number (`None` for numbers not declared yet).
    pub fn parameters(&self) -> Vec<Option<Value>> {
        self.parameters
            .iter()
            .map(|p| p.map(|i| self.value(i)))
            .collect()
    }

    /// Looks up a computation this builder already calls.
    pub fn callee(&self, id: ComputationId) -> Option<&Computation> {
        self.callees.iter().find(|c| c.id() == id)
    }

    fn value(&self, index: usize) -> Value {
        Value {
            builder: self.id,
            index: index as u32,
        }
    }

    /// Checks that `v` belongs to this builder; `op` names the caller in the error.
    pub(crate) fn check(&self, op: &str, v: Value) -> Result<()> {
        if v.builder != self.id || v.index() >= self.instructions.len() {
            return Err(HloError::new(
                op,
                &[],
                format!(
                    "operand {v:?} belongs to another computation than '{}'",
                    self.name
                ),
            ));
        }
        Ok(())
    }

    /// Records an instruction whose shape the caller has inferred.
    pub(crate) fn push(&mut self, op: Op, operands: Vec<Value>, shape: Shape) -> Value {
        let op_name = self.scopes.join("/");
        let op_type = self.op_type.clone().unwrap_or_default();
        self.instructions.push(Instruction {
            op,
            operands: operands.iter().map(|v| v.index()).collect(),
            shape,
            metadata: Metadata { op_type, op_name },
        });
        self.value(self.instructions.len() - 1)
    }

    /// Validates that operands belong to this builder, then records the instruction.
    pub(crate) fn emit(&mut self, op: Op, operands: &[Value], shape: Shape) -> Result<Value> {
        for &v in operands {
            self.check(op.opcode(), v)?;
        }
        Ok(self.push(op, operands.to_vec(), shape))
    }

    /// Registers a computation called by an op of this builder.
    pub(crate) fn call(&mut self, computation: &Computation) -> ComputationId {
        if self.callee(computation.id()).is_none() {
            self.callees.push(computation.clone());
        }
        computation.id()
    }

    /// Enters a named scope: ops recorded until the matching [`Builder::pop_scope`] carry
    /// `scope/.../name` as their metadata `op_name`.
    pub fn push_scope(&mut self, name: impl Into<String>) {
        self.scopes.push(name.into());
    }

    pub fn pop_scope(&mut self) {
        self.scopes.pop();
    }

    /// Runs `f` inside a named scope.
    pub fn scoped<T>(&mut self, name: impl Into<String>, f: impl FnOnce(&mut Builder) -> T) -> T {
        self.push_scope(name);
        let out = f(self);
        self.pop_scope();
        out
    }

    /// Sets the metadata `op_type` (which layer or rule emits ops) until changed; returns the previous one.
    pub fn set_op_type(&mut self, op_type: Option<String>) -> Option<String> {
        std::mem::replace(&mut self.op_type, op_type)
    }

    /// The current scope path (`a/b/c`).
    pub fn scope_path(&self) -> String {
        self.scopes.join("/")
    }

    /// Marks `v` as a constant for differentiation: no gradient flows from `v` into its operands.
    /// Only the marked instruction is affected, so mark a fresh identity of a value (what
    /// `autodiff::stop_gradient` does) rather than a value that has other uses.
    pub fn mark_gradient_stop(&mut self, v: Value) -> Result<()> {
        self.check("stop_gradient", v)?;
        self.gradient_stops.insert(v.index());
        Ok(())
    }

    /// Whether [`Builder::mark_gradient_stop`] marked `v`.
    pub fn is_gradient_stop(&self, v: Value) -> bool {
        v.builder == self.id && self.gradient_stops.contains(&v.index())
    }

    /// Attaches a gradient rule to `v` (see `autodiff::custom_vjp`, which checks its inputs).
    pub fn set_custom_gradient(&mut self, v: Value, gradient: CustomGradient) -> Result<()> {
        self.check("custom_vjp", v)?;
        for &input in &gradient.inputs {
            self.check("custom_vjp", input)?;
        }
        self.custom_gradients.insert(v.index(), gradient);
        Ok(())
    }

    /// The rule [`Builder::set_custom_gradient`] attached to `v`, if any.
    pub fn custom_gradient(&self, v: Value) -> Option<&CustomGradient> {
        if v.builder != self.id {
            return None;
        }
        self.custom_gradients.get(&v.index())
    }

    /// Finishes the computation with `root` as its result.
    ///
    /// Instructions that the root does not depend on are dropped (parameters are always kept, since
    /// they define the signature). Parameter numbers must be contiguous from 0.
    pub fn build(&self, root: Value) -> Result<Computation> {
        self.check("build", root)?;
        let parameters: Vec<usize> = self
            .parameters
            .iter()
            .enumerate()
            .map(|(n, p)| {
                p.ok_or_else(|| {
                    HloError::new(
                        "build",
                        &[],
                        format!("computation '{}' has no parameter {n}", self.name),
                    )
                })
            })
            .collect::<Result<_>>()?;
        let mut live = vec![false; self.instructions.len()];
        live[root.index()] = true;
        for &p in &parameters {
            live[p] = true;
        }
        for i in (0..self.instructions.len()).rev() {
            if live[i] {
                for &o in &self.instructions[i].operands {
                    live[o] = true;
                }
            }
        }
        let mut remap = vec![usize::MAX; self.instructions.len()];
        let mut instructions = Vec::new();
        for (i, inst) in self.instructions.iter().enumerate() {
            if live[i] {
                remap[i] = instructions.len();
                let mut inst = inst.clone();
                inst.operands.iter_mut().for_each(|o| *o = remap[*o]);
                instructions.push(inst);
            }
        }
        let used: Vec<ComputationId> = instructions
            .iter()
            .flat_map(|i| i.op.called_computations())
            .collect();
        let callees = self
            .callees
            .iter()
            .filter(|c| used.contains(&c.id()))
            .cloned()
            .collect();
        Ok(Computation(Arc::new(ComputationData {
            id: ComputationId(fresh_id()),
            name: self.name.clone(),
            root: remap[root.index()],
            parameters: parameters.iter().map(|&p| remap[p]).collect(),
            instructions,
            callees,
        })))
    }
}
