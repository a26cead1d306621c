//! A small network in the style of an EfficientNet block, differentiated as a whole:
//! conv (stride 2, SAME) -> batch norm in training mode (from reduce ops) -> SiLU -> depthwise
//! conv -> squeeze-excite -> residual add -> global average pool -> dense -> softmax
//! cross-entropy with soft labels. Its full parameter gradient must match finite differences;
//! its gradient graph must not duplicate the forward pass (counted before and after CSE) and its
//! HLO text must say which layer and which rule produced each gradient op.

mod autodiff_fd;
mod common;

use std::collections::HashSet;

use autodiff_fd::{compare, finite_differences, Input};
use common::run;
use effnetv2::autodiff;
use effnetv2::hlo::passes::{eliminate_common_subexpressions, total_instructions};
use effnetv2::hlo::{
    same_padding, Builder, Computation, ConvDimensionNumbers, ConvSpec, HloError, Literal, Module,
    Op, Value, WindowDim,
};

const BATCH: i64 = 2;
const CHANNELS: i64 = 4;
const CLASSES: i64 = 5;

/// The trainable parameters: name, dimensions, value range.
const PARAMETERS: [(&str, &[i64], (f64, f64)); 10] = [
    ("stem/kernel", &[3, 3, 3, CHANNELS], (-0.5, 0.5)),
    ("bn/gamma", &[CHANNELS], (0.5, 1.5)),
    ("bn/beta", &[CHANNELS], (0.5, 1.5)),
    ("block/depthwise/kernel", &[3, 3, 1, CHANNELS], (-0.2, 0.8)),
    ("block/se/reduce/kernel", &[CHANNELS, 2], (-1.0, 1.0)),
    ("block/se/reduce/bias", &[2], (-0.5, 0.5)),
    ("block/se/expand/kernel", &[2, CHANNELS], (-1.0, 1.0)),
    ("block/se/expand/bias", &[CHANNELS], (-0.5, 0.5)),
    ("head/kernel", &[CHANNELS, CLASSES], (-1.0, 1.0)),
    ("head/bias", &[CLASSES], (-0.5, 0.5)),
];

fn parameter_inputs() -> Vec<Input> {
    PARAMETERS
        .iter()
        .enumerate()
        .map(|(i, (_, dims, (lo, hi)))| Input::uniform(dims, *lo, *hi, 100 + i as u64))
        .collect()
}

/// Runs `f` with ops labelled `op_type` under scope `scope`.
fn layer<T>(
    b: &mut Builder,
    scope: &str,
    op_type: &str,
    f: impl FnOnce(&mut Builder) -> Result<T, HloError>,
) -> Result<T, HloError> {
    b.push_scope(scope);
    let previous = b.set_op_type(Some(op_type.into()));
    let out = f(b);
    b.set_op_type(previous);
    b.pop_scope();
    out
}

fn mean(b: &mut Builder, x: Value, dims: &[i64]) -> Result<Value, HloError> {
    let shape = b.array_shape("mean", x)?.clone();
    let count: i64 = dims.iter().map(|&d| shape.dims()[d as usize]).product();
    let sum = b.reduce_sum(x, dims)?;
    let n = b.full_like(sum, count as f64)?;
    b.div(sum, n)
}

fn silu(b: &mut Builder, x: Value) -> Result<Value, HloError> {
    let s = b.logistic(x)?;
    b.mul(x, s)
}

/// `x [.., in] @ w [in, out] + bias [out]`.
fn dense(b: &mut Builder, x: Value, w: Value, bias: Value) -> Result<Value, HloError> {
    let y = b.matmul(x, w)?;
    let dims = b.array_shape("dense", y)?.dims().to_vec();
    let bias = b.broadcast_in_dim(bias, &dims, &[dims.len() as i64 - 1])?;
    b.add(y, bias)
}

/// Channel `c` of NHWC `x` scaled by `v[n, c]`.
fn scale_channels(b: &mut Builder, x: Value, v: Value) -> Result<Value, HloError> {
    let dims = b.array_shape("scale", x)?.dims().to_vec();
    let v = b.broadcast_in_dim(v, &dims, &[0, 3])?;
    b.mul(x, v)
}

fn conv(
    b: &mut Builder,
    x: Value,
    kernel: Value,
    stride: i64,
    groups: i64,
) -> Result<Value, HloError> {
    let xs = b.array_shape("conv", x)?.dims().to_vec();
    let ks = b.array_shape("conv", kernel)?.dims().to_vec();
    let window = (0..2)
        .map(|i| {
            let (lo, hi) = same_padding(xs[1 + i], ks[i], stride, 1);
            WindowDim::new(ks[i]).stride(stride).padding(lo, hi)
        })
        .collect();
    let spec = ConvSpec {
        window,
        dimension_numbers: ConvDimensionNumbers::nhwc(),
        feature_group_count: groups,
        batch_group_count: 1,
    };
    b.convolution(x, kernel, &spec)
}

/// The network's mean soft-label cross-entropy on a fixed batch; `p` are the parameters in the
/// order of [`PARAMETERS`].
fn network_loss(b: &mut Builder, p: &[Value]) -> Result<Value, HloError> {
    let images = Input::uniform(&[BATCH, 9, 9, 3], -1.0, 1.0, 7).literal();
    let mut labels = Input::uniform(&[BATCH, CLASSES], 0.0, 1.0, 8).values;
    for row in labels.chunks_mut(CLASSES as usize) {
        let total: f64 = row.iter().sum();
        row.iter_mut().for_each(|v| *v /= total);
    }
    let labels = Literal::from_vec(&[BATCH, CLASSES], &labels).unwrap();
    let x = layer(b, "input", "data", |b| b.constant(images))?;
    let stem = layer(b, "stem", "conv2d", |b| conv(b, x, p[0], 2, 1))?;
    let normed = layer(b, "bn", "batch_norm", |b| {
        let m = mean(b, stem, &[0, 1, 2])?;
        let dims = b.array_shape("bn", stem)?.dims().to_vec();
        let m = b.broadcast_in_dim(m, &dims, &[3])?;
        let centered = b.sub(stem, m)?;
        let sq = b.mul(centered, centered)?;
        let var = mean(b, sq, &[0, 1, 2])?;
        let eps = b.full_like(var, 1e-3)?;
        let var = b.add(var, eps)?;
        let inv = b.rsqrt(var)?;
        let scale = b.mul(inv, p[1])?;
        let scale = b.broadcast_in_dim(scale, &dims, &[3])?;
        let beta = b.broadcast_in_dim(p[2], &dims, &[3])?;
        let y = b.mul(centered, scale)?;
        b.add(y, beta)
    })?;
    let act = layer(b, "bn", "silu", |b| silu(b, normed))?;
    let block = b.scoped("block", |b| -> Result<Value, HloError> {
        let dw = layer(b, "depthwise", "depthwise_conv2d", |b| {
            conv(b, act, p[3], 1, CHANNELS)
        })?;
        let dw = layer(b, "depthwise", "silu", |b| silu(b, dw))?;
        let gated = layer(b, "se", "squeeze_excite", |b| {
            let squeezed = mean(b, dw, &[1, 2])?;
            let reduced = dense(b, squeezed, p[4], p[5])?;
            let reduced = silu(b, reduced)?;
            let expanded = dense(b, reduced, p[6], p[7])?;
            let gate = b.logistic(expanded)?;
            scale_channels(b, dw, gate)
        })?;
        layer(b, "residual", "add", |b| b.add(gated, act))
    })?;
    let pooled = layer(b, "head/pool", "global_avg_pool", |b| {
        mean(b, block, &[1, 2])
    })?;
    let logits = layer(b, "head/dense", "dense", |b| dense(b, pooled, p[8], p[9]))?;
    layer(b, "loss", "softmax_cross_entropy", |b| {
        let labels = b.constant(labels)?;
        let max = b.reduce_max(logits, &[1])?;
        let max = autodiff::stop_gradient(b, max)?;
        let max = b.broadcast_in_dim(max, &[BATCH, CLASSES], &[0])?;
        let shifted = b.sub(logits, max)?;
        let e = b.exp(shifted)?;
        let total = b.reduce_sum(e, &[1])?;
        let log_total = b.log(total)?;
        let log_total = b.broadcast_in_dim(log_total, &[BATCH, CLASSES], &[0])?;
        let log_probs = b.sub(shifted, log_total)?;
        let weighted = b.mul(labels, log_probs)?;
        let per_example = b.reduce_sum(weighted, &[1])?;
        let loss = mean(b, per_example, &[0])?;
        b.neg(loss)
    })
}

/// A builder holding the parameters and the loss.
fn network(inputs: &[Input]) -> (Builder, Vec<Value>, Value) {
    let mut b = Builder::new("network");
    let params: Vec<Value> = PARAMETERS
        .iter()
        .zip(inputs)
        .enumerate()
        .map(|(i, ((name, _, _), x))| {
            b.parameter(i as i64, x.shape(), name.replace('/', "_"))
                .unwrap()
        })
        .collect();
    let loss = network_loss(&mut b, &params).unwrap();
    (b, params, loss)
}

/// The computation returning `(loss, gradients...)`, and how many instructions its builder
/// recorded (`build` drops those the result does not use).
fn train_step(inputs: &[Input]) -> (Computation, usize) {
    let (mut b, params, loss) = network(inputs);
    let grads = autodiff::grad(&mut b, loss, &params).unwrap();
    let root = b.tuple(&[&[loss][..], &grads].concat()).unwrap();
    (b.build(root).unwrap(), b.len())
}

#[test]
fn network_gradient_matches_finite_differences() {
    let inputs = parameter_inputs();
    let outputs = run(
        &Module::new("train_step", train_step(&inputs).0),
        &inputs.iter().map(Input::literal).collect::<Vec<_>>(),
    );
    let (b, _, loss) = network(&inputs);
    let loss_module = Module::new("loss", b.build(loss).unwrap());
    let fd = finite_differences(&loss_module, &inputs);
    compare("network", &inputs, &outputs[1..], &fd);
}

fn count(c: &Computation, pred: impl Fn(&Op) -> bool) -> usize {
    c.instructions().iter().filter(|i| pred(&i.op)).count()
}

#[test]
fn gradient_graph_does_not_duplicate_the_forward_pass() {
    let inputs = parameter_inputs();
    let (step, recorded) = train_step(&inputs);
    let (cse, stats) = eliminate_common_subexpressions(&step).unwrap();
    let (b, _, loss) = network(&inputs);
    let forward = b.build(loss).unwrap();
    println!(
        "forward: {} instructions ({} with callees); train step: {recorded} recorded, {stats:?}",
        forward.instructions().len(),
        total_instructions(&forward)
    );
    assert_eq!(
        (stats.before, stats.total_before),
        (step.instructions().len(), total_instructions(&step))
    );
    assert!(
        stats.after < stats.before && stats.total_after < stats.total_before,
        "{stats:?}"
    );

    // No two instructions of the result compute the same thing, and CSE has nothing left to do.
    let mut seen = HashSet::new();
    for inst in cse.instructions() {
        if !matches!(inst.op, Op::Parameter { .. }) {
            let key = format!("{:?} {:?} {}", inst.op, inst.operands, inst.shape);
            assert!(
                seen.insert(key.clone()),
                "duplicate instruction after CSE: {key}"
            );
        }
    }
    let (again, again_stats) = eliminate_common_subexpressions(&cse).unwrap();
    assert_eq!(again_stats.after, again_stats.before);
    assert_eq!(again.instructions().len(), cse.instructions().len());

    // Gradient rules reuse forward values instead of recomputing them: the four logistic ops
    // (three SiLUs and the SE gate) and the single exp of the softmax exist once, already before
    // CSE; the three forward dots gain two each (input and kernel cotangents, the SE-input one
    // too), the two convolutions gain three (the stem input, a constant, needs none).
    for c in [&step, &cse] {
        assert_eq!(
            count(c, |op| matches!(
                op,
                Op::Unary(effnetv2::hlo::UnaryOp::Logistic)
            )),
            4
        );
        assert_eq!(
            count(c, |op| matches!(op, Op::Unary(effnetv2::hlo::UnaryOp::Exp))),
            1
        );
        assert_eq!(count(c, |op| matches!(op, Op::Dot { .. })), 3 + 6);
        assert_eq!(count(c, |op| matches!(op, Op::Convolution { .. })), 2 + 3);
    }

    // Merging changed no value.
    let args: Vec<Literal> = inputs.iter().map(Input::literal).collect();
    let before = run(&Module::new("step", step), &args);
    let after = run(&Module::new("step_cse", cse), &args);
    for (x, y) in before.iter().zip(&after) {
        for (u, v) in x.to_f64_vec().iter().zip(y.to_f64_vec()) {
            assert!((u - v).abs() <= 1e-12 * u.abs().max(1.0), "{u} vs {v}");
        }
    }
}

#[test]
fn gradient_hlo_text_says_which_layer_and_rule() {
    let inputs = parameter_inputs();
    let (cse, _) = eliminate_common_subexpressions(&train_step(&inputs).0).unwrap();
    let module = Module::new("train_step", cse);
    let text = module.to_text();
    for expected in [
        r#"op_type="grad/convolution" op_name="stem""#,
        r#"op_type="grad/convolution" op_name="block/depthwise""#,
        r#"op_type="grad/dot" op_name="block/se""#,
        r#"op_type="grad/dot" op_name="head/dense""#,
        r#"op_type="grad/rsqrt" op_name="bn""#,
        r#"op_type="grad/reduce" op_name="head/pool""#,
        r#"op_type="grad/logistic" op_name="block/se""#,
        r#"op_type="grad/accumulate" op_name="bn""#,
        r#"op_type="grad/seed" op_name="loss""#,
    ] {
        assert!(
            text.contains(expected),
            "no instruction with {expected} in\n{text}"
        );
    }
    // Every instruction names its layer, and gradient ops name their rule.
    let entry = module.entry();
    for (i, inst) in entry.instructions().iter().enumerate() {
        let name = module.instruction_name(entry.id(), i);
        let m = &inst.metadata;
        assert!(
            !m.op_type.is_empty() || matches!(inst.op, Op::Parameter { .. } | Op::Tuple),
            "{name} has no op_type"
        );
        if m.op_type.starts_with("grad/") {
            assert!(
                !m.op_name.is_empty(),
                "gradient op {name} ({}) has no layer scope",
                m.op_type
            );
        }
    }
}
