//! Shared helpers of the op tests: one CPU client per test binary, a `run` that compiles and
//! executes a module on it, exact and tolerance comparisons, and seeded random arrays.
//!
//! Every test binary that includes this module uses a different subset of it.
#![allow(dead_code)]

use std::fmt::Debug;
use std::sync::OnceLock;

use effnetv2::hlo::{Builder, Computation, HloError, Literal, Module, NativeType, Shape, Value};
use effnetv2::runtime::provision::{self, PluginKind};
use effnetv2::runtime::{Arg, Client, ClientOptions, CompileOptions, LoadedExecutable, Plugin};
use ndarray::{ArrayD, Dimension, IxDyn};
use rand::distributions::uniform::SampleUniform;
use rand::distributions::{Distribution, Uniform};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// CPU devices of the shared client: two, so that replicated programs (all-reduce) can run.
pub const DEVICES: usize = 2;

/// The process-wide client of the official CPU plugin (installed on first use).
///
/// Created once because loading the 260 MB plugin and creating a client dominate a small test.
pub fn client() -> &'static Client {
    static CLIENT: OnceLock<Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let path =
            provision::resolve(PluginKind::Cpu).unwrap_or_else(|e| panic!("no CPU plugin: {e:#}"));
        let plugin = Plugin::load(&path).unwrap_or_else(|e| panic!("{e}"));
        Client::new(
            plugin,
            &ClientOptions::new().cpu_device_count(DEVICES as i64),
        )
        .unwrap_or_else(|e| panic!("CPU client with {DEVICES} devices: {e}"))
    })
}

/// A computation named `name` whose parameters are one per shape in `params`, returning what
/// `body` computes from them (for entry computations, reducers, loop bodies and branches).
pub fn computation(
    name: &str,
    params: &[Shape],
    body: impl FnOnce(&mut Builder, &[Value]) -> Result<Value, HloError>,
) -> Computation {
    let mut b = Builder::new(name);
    let values: Vec<Value> = params
        .iter()
        .enumerate()
        .map(|(i, s)| b.parameter(i as i64, s.clone(), format!("p{i}")).unwrap())
        .collect();
    let root = body(&mut b, &values).unwrap_or_else(|e| panic!("building {name}: {e}"));
    b.build(root).unwrap()
}

/// A module named `name` whose entry is [`computation`]`(name, params, body)`.
pub fn module(
    name: &str,
    params: &[Shape],
    body: impl FnOnce(&mut Builder, &[Value]) -> Result<Value, HloError>,
) -> Module {
    Module::new(name, computation(name, params, body))
}

/// The shape of a literal, for declaring the parameter that receives it.
pub fn shape_of(literal: &Literal) -> Shape {
    Shape::Array(literal.shape().clone())
}

/// Shapes of arguments, in order.
pub fn shapes_of(literals: &[Literal]) -> Vec<Shape> {
    literals.iter().map(shape_of).collect()
}

/// Compiles `module` for one device, runs it on `args` and returns its outputs (the elements of a
/// tuple result separately). Panics with XLA's message on a compile or run error.
pub fn run(module: &Module, args: &[Literal]) -> Vec<Literal> {
    run_with(module, args, &CompileOptions::default())
}

/// [`run`] with explicit compile options (e.g. an XLA debug option override).
pub fn run_with(module: &Module, args: &[Literal], options: &CompileOptions) -> Vec<Literal> {
    execute(&compile_with(module, options), args)
}

/// Compiles `module` for one device, to run it several times with [`execute`].
pub fn compile(module: &Module) -> LoadedExecutable {
    compile_with(module, &CompileOptions::default())
}

fn compile_with(module: &Module, options: &CompileOptions) -> LoadedExecutable {
    client()
        .compile_module(module, options)
        .unwrap_or_else(|e| panic!("compiling {}: {e}\n{}", module.name(), module.to_text()))
}

/// Runs a single-device executable on `args` and returns its outputs (the elements of a tuple
/// result separately).
pub fn execute(exe: &LoadedExecutable, args: &[Literal]) -> Vec<Literal> {
    let device = exe.addressable_devices()[0];
    let buffers: Vec<_> = args
        .iter()
        .map(|a| client().buffer_from_literal(a, device).unwrap())
        .collect();
    let outputs = exe
        .execute(buffers.iter().map(Arg::from).collect())
        .unwrap_or_else(|e| panic!("execute: {e}"));
    outputs.iter().map(|b| b.to_literal().unwrap()).collect()
}

/// Runs a module with exactly one (non-tuple) output.
pub fn run1(module: &Module, args: &[Literal]) -> Literal {
    let mut outputs = run(module, args);
    assert_eq!(
        outputs.len(),
        1,
        "{} has {} outputs",
        module.name(),
        outputs.len()
    );
    outputs.pop().unwrap()
}

/// Compiles `module` with one replica per argument list and runs replica `r` on `args[r]` (on
/// the `r`-th device of the executable).
pub fn run_replicated(module: &Module, args: &[Vec<Literal>]) -> Vec<Vec<Literal>> {
    let exe = compile_with(module, &CompileOptions::replicated(args.len() as u32));
    let buffers: Vec<Vec<_>> = args
        .iter()
        .zip(exe.addressable_devices())
        .map(|(list, device)| {
            list.iter()
                .map(|a| client().buffer_from_literal(a, device).unwrap())
                .collect()
        })
        .collect();
    let arguments = buffers
        .iter()
        .map(|list| list.iter().map(Arg::from).collect())
        .collect();
    let outputs = exe
        .execute_replicated(arguments)
        .unwrap_or_else(|e| panic!("running {}: {e}", module.name()));
    outputs
        .iter()
        .map(|list| list.iter().map(|b| b.to_literal().unwrap()).collect())
        .collect()
}

/// A literal from an ndarray (any dimensionality).
pub fn lit<T: NativeType, D: ndarray::Dimension>(array: &ndarray::Array<T, D>) -> Literal {
    Literal::from_ndarray(&array.clone().into_dyn())
}

/// Checks that output `what` holds exactly `expected` (element type, dimensions and values).
#[track_caller]
pub fn assert_exact<T: NativeType + PartialEq + Debug, D: ndarray::Dimension>(
    what: &str,
    actual: &Literal,
    expected: &ndarray::Array<T, D>,
) {
    let got = to_array::<T>(what, actual, expected.shape());
    if let Some(((index, g), e)) = got
        .indexed_iter()
        .zip(expected.iter())
        .find(|((_, g), e)| g != e)
    {
        panic!(
            "{what}: at {:?} got {g:?}, expected {e:?}\ngot      {got:?}\nexpected {expected:?}",
            index.slice()
        );
    }
}

/// Checks that output `what` equals `expected` bit for bit (shape, layout and bytes).
#[track_caller]
pub fn assert_same_literal(what: &str, actual: &Literal, expected: &Literal) {
    assert_eq!(actual.shape(), expected.shape(), "{what}: shape");
    assert!(
        actual.bytes() == expected.bytes(),
        "{what}: got {:?}, expected {:?}",
        actual.to_f64_vec(),
        expected.to_f64_vec()
    );
}

/// Checks `|actual - expected| <= atol + rtol * |expected|` elementwise for output `what`; NaN
/// must meet NaN and infinities must match exactly.
#[track_caller]
pub fn assert_close<T: NativeType + Into<f64>, D: ndarray::Dimension>(
    what: &str,
    actual: &Literal,
    expected: &ndarray::Array<T, D>,
    rtol: f64,
    atol: f64,
) {
    let got = to_array::<T>(what, actual, expected.shape());
    for ((index, &g), &e) in got.indexed_iter().zip(expected.iter()) {
        let (g, e): (f64, f64) = (g.into(), e.into());
        let ok = if e.is_nan() {
            g.is_nan()
        } else if e.is_infinite() {
            g == e
        } else {
            (g - e).abs() <= atol + rtol * e.abs()
        };
        assert!(
            ok,
            "{what}: at {:?} got {g}, expected {e} (rtol {rtol}, atol {atol})",
            index.slice()
        );
    }
}

/// The literal as an array of `T`, after checking its element type and dimensions.
#[track_caller]
fn to_array<T: NativeType>(what: &str, actual: &Literal, dims: &[usize]) -> ArrayD<T> {
    assert_eq!(
        actual.ty(),
        T::TYPE,
        "{what}: element type of {}",
        actual.shape()
    );
    let got = actual.to_ndarray::<T>().unwrap();
    assert_eq!(
        got.shape(),
        dims,
        "{what}: dimensions of {}",
        actual.shape()
    );
    got
}

/// Values uniform in `[low, high]`, reproducible from `seed`.
pub fn random<T: SampleUniform>(dims: &[usize], low: T, high: T, seed: u64) -> ArrayD<T> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dist = Uniform::new_inclusive(low, high);
    ArrayD::from_shape_simple_fn(IxDyn(dims), || dist.sample(&mut rng))
}

/// `f32` values uniform in `[-1, 1]`.
pub fn random_f32(dims: &[usize], seed: u64) -> ArrayD<f32> {
    random(dims, -1.0f32, 1.0, seed)
}
