#!/usr/bin/env python3
"""A JAX reference of the train step that effnetv2 builds, for comparing XLA programs.

It reads the same `graphs/efficientnetv2-*.json` specs, resolves them with the same rounding rules
and writes the same one-device train step op for op (src/model, src/nn, src/train): forward in
train mode (TF `SAME` convolutions, 1x1 stride-1 convolutions as matrix products, depthwise
convolutions as grouped convolutions, f32 batch norm with the biased batch variance taken in one
pass, stochastic depth per example, dropout per element, both from `rng-bit-generator` ThreeFry
bits), label-smoothed softmax cross-entropy plus L2 decay of the kernels, TF1 RMSProp, batch-norm
moving statistics, EMA of every variable, step counter and RNG key. The state is donated, as our
graph aliases it. `--precision bf16` runs activations, convolutions and matrix products in bf16 on
f32 master weights, with f32 batch-norm statistics, loss and optimizer state.

Usage (needs jax; not a dependency of the project):
  tools/jax_reference.py params --model tiny
  tools/jax_reference.py hlo --model s --batch 128 --image-size 300 --precision bf16 --out s.pb
  tools/jax_reference.py time --model tiny --batch 128 --image-size 28 --precision f32 --steps 20
`hlo` writes the pre-optimisation HloModuleProto of the jitted, donated step (e.g. for a deviceless
TPU compile); `time` measures compile time and images/s on JAX's CPU backend. Both use synthetic
deterministic inputs and print one JSON line.
"""
import argparse
import json
import math
import pathlib
import re
import time
from collections import namedtuple
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

jax.config.update("jax_enable_x64", True)  # the state's step is s64 and its RNG key u64[2]

GRAPHS = pathlib.Path(__file__).resolve().parent.parent / "graphs"
LABEL_SMOOTHING, WEIGHT_DECAY, EMA_DECAY = 0.1, 1e-5, 0.9999
RMS_DECAY, RMS_MOMENTUM, RMS_EPSILON = 0.9, 0.9, 1e-3
LEARNING_RATE = 0.01
RNG_KEY_WORD = 0x005EED0FD20F0A7C  # second word of the initial key (src/trainer/init.rs)
COMPUTE = {"f32": jnp.float32, "bf16": jnp.bfloat16}

Param = namedtuple("Param", "name shape kind init")
DECAYED = {"conv", "depthwise", "dense"}  # kernels; biases, gamma and beta are not decayed
MOVING_NAMES = ("moving_mean", "moving_var")  # updated by the forward pass, not the optimizer
MOVING = set(MOVING_NAMES)


# ---- model: spec, resolution, parameters (src/model/{spec,resolve,params}.rs) ----

def load_spec(model):
    """The parsed JSON spec of a built-in name (`tiny`, `s`, `efficientnetv2-m`) or a file path."""
    path = pathlib.Path(model)
    if not path.is_file():
        name = model if model.startswith("efficientnetv2-") else f"efficientnetv2-{model}"
        path = GRAPHS / f"{name}.json"
    return json.loads(path.read_text())


def round_filters(filters, spec):
    """Official `round_filters`: nearest multiple of the divisor (halves up), >= `min_depth`."""
    divisor = spec["depth_divisor"]
    scaled = filters * spec["width_multiplier"]
    return max(spec.get("min_depth") or divisor, int(scaled + divisor / 2) // divisor * divisor)


def resolve(spec):
    """The resolved network: stem and head widths and one dict per block, in network order."""
    blocks = []
    for stage in spec["stages"]:
        cin, cout = round_filters(stage["in"], spec), round_filters(stage["out"], spec)
        for r in range(math.ceil(spec["depth_multiplier"] * stage["repeats"])):
            cin_r, stride = (cin, stage["stride"]) if r == 0 else (cout, 1)
            se_ratio = stage.get("se_ratio", 0.0)
            blocks.append(dict(
                type=stage["type"], kernel=stage["kernel"], stride=stride,
                expand=stage["expand_ratio"], cin=cin_r, cout=cout,
                mid=cin_r * stage["expand_ratio"],
                se=max(1, int(cin_r * se_ratio)) if se_ratio > 0 else None,
                residual=stride == 1 and cin_r == cout))
    for i, b in enumerate(blocks):
        b["survival"] = 1.0 - (1.0 - spec["survival_prob"]) * i / len(blocks)
    return dict(spec=spec, blocks=blocks, stem=round_filters(spec["stem"]["filters"], spec),
                head=round_filters(spec["head"]["feature_size"], spec))


def model_params(model):
    """Every variable in forward order with its name, shape, kind and (distribution, scale) init."""
    out = []

    def conv(prefix, k, cin, cout):
        out.append(Param(f"{prefix}/kernel", (k, k, cin, cout), "conv",
                         ("normal", math.sqrt(2.0 / (k * k * cout)))))

    def bn(prefix, c):
        for name, init in [("gamma", "ones"), ("beta", "zeros"),
                           ("moving_mean", "zeros"), ("moving_var", "ones")]:
            out.append(Param(f"{prefix}/bn/{name}", (c,), name, (init, None)))

    def conv_bn(prefix, k, cin, cout):
        conv(f"{prefix}/conv", k, cin, cout)
        bn(prefix, cout)

    def bias(prefix, c):
        out.append(Param(f"{prefix}/bias", (c,), "bias", ("zeros", None)))

    spec = model["spec"]
    conv_bn("stem", spec["stem"]["kernel"], spec["input"]["channels"], model["stem"])
    for i, b in enumerate(model["blocks"]):
        p = f"blocks/{i}"
        if b["type"] == "mbconv":
            if b["expand"] != 1:
                conv_bn(f"{p}/expand", 1, b["cin"], b["mid"])
            out.append(Param(f"{p}/depthwise/conv/kernel", (b["kernel"], b["kernel"], 1, b["mid"]),
                             "depthwise", ("normal", math.sqrt(2.0 / b["kernel"] ** 2))))
            bn(f"{p}/depthwise", b["mid"])
            if b["se"]:
                conv(f"{p}/se/reduce", 1, b["mid"], b["se"])
                bias(f"{p}/se/reduce", b["se"])
                conv(f"{p}/se/expand", 1, b["se"], b["mid"])
                bias(f"{p}/se/expand", b["mid"])
            conv_bn(f"{p}/project", 1, b["mid"], b["cout"])
        elif b["expand"] != 1:
            conv_bn(f"{p}/fused", b["kernel"], b["cin"], b["mid"])
            conv_bn(f"{p}/project", 1, b["mid"], b["cout"])
        else:
            conv_bn(f"{p}/fused", b["kernel"], b["cin"], b["cout"])
    last = model["blocks"][-1]["cout"] if model["blocks"] else model["stem"]
    conv_bn("head", 1, last, model["head"])
    classes = spec["num_classes"]
    out.append(Param("head/dense/kernel", (model["head"], classes), "dense",
                     ("uniform", 1.0 / math.sqrt(classes))))
    bias("head/dense", classes)
    return out


# ---- layers (src/nn/{layers,norm,random}.rs, src/hlo/op.rs::same_padding) ----

def reduce_sum(x, axes):
    """An add-reduce in `x`'s own type (jnp.sum would accumulate bf16 in f32)."""
    return lax.reduce(x, np.array(0, x.dtype), lax.add, tuple(axes))


def same_padding(size, kernel, stride):
    """TF `SAME` padding of one dimension; an odd total goes to the high side."""
    out = (size + stride - 1) // stride
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv2d(x, kernel, stride, groups=1):
    """NHWC x HWIO convolution with `SAME` padding; 1x1 stride-1 dense ones as a matrix product."""
    (n, h, w, c), (kh, kw, kin, kout) = x.shape, kernel.shape
    if groups == 1 and stride == 1 and kh == kw == 1:
        y = lax.dot_general(x.reshape(n * h * w, c), kernel.reshape(kin, kout),
                            (((1,), (0,)), ((), ())))
        return y.reshape(n, h, w, kout)
    padding = [same_padding(h, kh, stride), same_padding(w, kw, stride)]
    return lax.conv_general_dilated(x, kernel, (stride, stride), padding,
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                    feature_group_count=groups)


def silu(x):
    """`x * logistic(x)`."""
    return x * lax.logistic(x)


def global_avg_pool(x):
    """`[B, H, W, C] -> [B, C]` mean, summed in `x`'s type."""
    return reduce_sum(x, (1, 2)) / np.array(x.shape[1] * x.shape[2], x.dtype)


def dense(x, w, bias):
    """`x @ w + bias` as a dot_general in the operands' type."""
    return lax.dot_general(x, w, (((1,), (0,)), ((), ()))) + bias


def batch_norm_train(x, gamma, beta, moving_mean, moving_var, momentum, epsilon):
    """Batch statistics in f32 (biased variance, in one pass: `max(E[x^2] - E[x]^2, 0)`, as Flax's
    `nn.BatchNorm` computes it by default), normalised output in `x`'s type, updated moving
    statistics `momentum * moving + (1 - momentum) * batch`."""
    x32 = x.astype(jnp.float32)
    n = np.float32(x.shape[0] * x.shape[1] * x.shape[2])
    mean = reduce_sum(x32, (0, 1, 2)) / n
    mean_sq = reduce_sum(x32 * x32, (0, 1, 2)) / n
    var = jnp.maximum(mean_sq - mean * mean, 0.0)
    scale = lax.rsqrt(var + epsilon) * gamma
    offset = beta - mean * scale
    y = (x32 * scale + offset).astype(x.dtype)

    def update(moving, batch):
        return momentum * moving + (1.0 - momentum) * batch

    return y, update(moving_mean, mean), update(moving_var, var)


def uniform(key, shape):
    """f32 in [0, 1) from ThreeFry `rng-bit-generator` bits: 23 mantissa bits under 1.0's exponent,
    minus one. Returns (next key, samples)."""
    key, bits = lax.rng_bit_generator(key, shape, jnp.uint32, lax.RandomAlgorithm.RNG_THREE_FRY)
    one_two = lax.bitcast_convert_type((bits >> 9) | np.uint32(0x3F800000), jnp.float32)
    return key, one_two - 1.0


# ---- forward pass (src/model/graph.rs) ----

class Forward:
    """One train-mode forward pass; collects the BN updates and threads the RNG key."""

    def __init__(self, model, weights, compute, key, dropout_rate):
        self.model, self.weights, self.compute = model, weights, compute
        self.key, self.dropout_rate, self.bn_updates = key, dropout_rate, {}

    def var(self, name):
        """A variable converted to the compute type."""
        return self.weights[name].astype(self.compute)

    def conv_bn_act(self, prefix, x, stride, act=True):
        """`{prefix}/conv/kernel` convolution, batch norm, optional SiLU."""
        kernel = self.var(f"{prefix}/conv/kernel")
        groups = x.shape[3] if prefix.endswith("/depthwise") else 1
        y = conv2d(x, kernel, stride, groups)
        bn = self.model["spec"]["batch_norm"]
        stats = [self.weights[f"{prefix}/bn/{k}"] for k in ("gamma", "beta", *MOVING_NAMES)]
        y, mean, var = batch_norm_train(y, *stats, bn["momentum"], bn["epsilon"])
        self.bn_updates[f"{prefix}/bn/moving_mean"] = mean
        self.bn_updates[f"{prefix}/bn/moving_var"] = var
        return silu(y) if act else y

    def squeeze_excite(self, prefix, x):
        """Pool, dense + SiLU, dense + sigmoid, scale the channels."""
        def mat(layer):  # the 1x1 kernel [1, 1, in, out] as a matrix
            kernel = self.var(f"{prefix}/{layer}/kernel")
            return kernel.reshape(kernel.shape[2:])

        reduced = silu(dense(global_avg_pool(x), mat("reduce"), self.var(f"{prefix}/reduce/bias")))
        gate = lax.logistic(dense(reduced, mat("expand"), self.var(f"{prefix}/expand/bias")))
        return x * gate[:, None, None, :]

    def block(self, i, b, x0):
        """One (Fused-)MBConv block with stochastic depth on its residual branch."""
        p = f"blocks/{i}"
        if b["type"] == "mbconv":
            x = self.conv_bn_act(f"{p}/expand", x0, 1) if b["expand"] != 1 else x0
            x = self.conv_bn_act(f"{p}/depthwise", x, b["stride"])
            x = self.squeeze_excite(f"{p}/se", x) if b["se"] else x
            x = self.conv_bn_act(f"{p}/project", x, 1, act=False)
        elif b["expand"] != 1:
            x = self.conv_bn_act(f"{p}/fused", x0, b["stride"])
            x = self.conv_bn_act(f"{p}/project", x, 1, act=False)
        else:
            x = self.conv_bn_act(f"{p}/fused", x0, b["stride"])
        if not b["residual"]:
            return x
        if b["survival"] < 1.0:  # drop_connect: one bernoulli(survival) per example, / survival
            self.key, u = uniform(self.key, (x.shape[0],))
            mask = (jnp.floor(b["survival"] + u) * (1.0 / b["survival"])).astype(x.dtype)
            x = x * mask[:, None, None, None]
        return x + x0

    def __call__(self, images):
        """f32 logits of normalised f32 NHWC images."""
        x = images.astype(self.compute)
        x = self.conv_bn_act("stem", x, self.model["spec"]["stem"]["stride"])
        for i, b in enumerate(self.model["blocks"]):
            x = self.block(i, b, x)
        pooled = global_avg_pool(self.conv_bn_act("head", x, 1))
        self.key, u = uniform(self.key, pooled.shape)  # dropout: keep where u >= rate, / (1 - rate)
        scale = jnp.broadcast_to(1.0 / (1.0 - self.dropout_rate), u.shape)
        mask = lax.select(u >= self.dropout_rate, scale, jnp.zeros_like(u))
        pooled = pooled * mask.astype(pooled.dtype)
        logits = dense(pooled, self.var("head/dense/kernel"), self.var("head/dense/bias"))
        return logits.astype(jnp.float32)


# ---- train step (src/train/{step,loss,optimizer,ema,state}.rs) ----

def softmax_cross_entropy(logits, labels):
    """Batch mean of `-sum(labels * log_softmax(logits))`, max-shifted."""
    shifted = logits - lax.reduce(logits, np.array(-np.inf, logits.dtype), lax.max, (1,))[:, None]
    log_probs = shifted - jnp.log(reduce_sum(jnp.exp(shifted), (1,)))[:, None]
    return reduce_sum(labels * log_probs, (0, 1)) * (-1.0 / logits.shape[0])


def count_top1(logits, classes):
    """Examples whose target logit no other logit exceeds (classes < 0 never count), s32."""
    is_target = lax.broadcasted_iota(jnp.int32, logits.shape, 1) == classes[:, None]
    target = reduce_sum(lax.select(is_target, logits, jnp.zeros_like(logits)), (1,))
    rank = reduce_sum((logits > target[:, None]).astype(jnp.int32), (1,))
    return reduce_sum(((rank < 1) & (classes >= 0)).astype(jnp.int32), (0,))


def train_step(model, params, compute, state, images, labels, classes, lr, dropout_rate):
    """One optimizer step; returns (new state, loss, correct count)."""
    trainable = [p.name for p in params if p.kind not in MOVING]
    decayed = [p.name for p in params if p.kind in DECAYED]

    def loss_fn(train_vars):
        weights = {**state["params"], **train_vars}
        forward = Forward(model, weights, compute, state["rng"], dropout_rate)
        logits = forward(images)
        n = labels.shape[1]
        ce = softmax_cross_entropy(logits, labels * (1.0 - LABEL_SMOOTHING) + LABEL_SMOOTHING / n)
        l2 = reduce_sum(weights[decayed[0]] ** 2, range(weights[decayed[0]].ndim))
        for name in decayed[1:]:
            l2 = l2 + reduce_sum(weights[name] ** 2, range(weights[name].ndim))
        return ce + l2 * (WEIGHT_DECAY / 2), (logits, forward.bn_updates, forward.key)

    (loss, (logits, bn_updates, key)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        {n: state["params"][n] for n in trainable})
    new_params, ms, mom = dict(state["params"]), {}, {}
    for name in trainable:  # TF1 ApplyRMSProp, epsilon inside the square root
        g = grads[name]
        ms[name] = RMS_DECAY * state["ms"][name] + (1.0 - RMS_DECAY) * (g * g)
        mom[name] = RMS_MOMENTUM * state["mom"][name] + lr * g * lax.rsqrt(ms[name] + RMS_EPSILON)
        new_params[name] = state["params"][name] - mom[name]
    new_params.update(bn_updates)
    step = state["step"] + 1
    t = step.astype(jnp.float32)  # EMA after the step's increment, ramped
    decay = jnp.minimum(np.float32(EMA_DECAY), (1.0 + t) / (10.0 + t))
    ema = {n: decay * state["ema"][n] + (1.0 - decay) * new_params[n] for n in new_params}
    new_state = dict(params=new_params, ms=ms, mom=mom, ema=ema, step=step, rng=key)
    return new_state, loss, count_top1(logits, classes)


def initial_state(params, seed=0):
    """Variables drawn as the official code does, RMSProp ms ones and momentum zeros, EMA shadows
    equal to the variables (separate buffers, as the state is donated), step 0, the RNG key."""
    root, variables = jax.random.PRNGKey(seed), {}
    for i, p in enumerate(params):
        dist, scale = p.init
        key = jax.random.fold_in(root, i)
        if dist == "normal":
            variables[p.name] = scale * jax.random.normal(key, p.shape, jnp.float32)
        elif dist == "uniform":
            variables[p.name] = jax.random.uniform(key, p.shape, jnp.float32, -scale, scale)
        else:
            variables[p.name] = (jnp.ones if dist == "ones" else jnp.zeros)(p.shape, jnp.float32)
    trainable = [p for p in params if p.kind not in MOVING]
    return dict(params=variables,
                ms={p.name: jnp.ones(p.shape, jnp.float32) for p in trainable},
                mom={p.name: jnp.zeros(p.shape, jnp.float32) for p in trainable},
                ema={n: jnp.copy(v) for n, v in variables.items()},
                step=jnp.zeros((), jnp.int64),
                rng=jnp.array([seed, RNG_KEY_WORD], jnp.uint64))


def synthetic_batch(model, batch, size, seed=0):
    """Deterministic normal images, one-hot labels and their classes, learning rate, dropout."""
    spec = model["spec"]
    k_images, k_classes = jax.random.split(jax.random.PRNGKey(seed))
    images = jax.random.normal(k_images, (batch, size, size, spec["input"]["channels"]),
                               jnp.float32)
    classes = jax.random.randint(k_classes, (batch,), 0, spec["num_classes"], jnp.int32)
    labels = jax.nn.one_hot(classes, spec["num_classes"], dtype=jnp.float32)
    return images, labels, classes, jnp.float32(LEARNING_RATE), jnp.float32(spec["dropout"])


def jitted_step(model, params, precision):
    """The train step jitted with the state (argument 0) donated."""
    return jax.jit(partial(train_step, model, params, COMPUTE[precision]), donate_argnums=0)


def lower(step, state, batch):
    """Lowers the step; refuses a program with f64 values (an accidental x64 promotion)."""
    lowered = step.lower(state, *batch)
    text = lowered.as_text(dialect="hlo")
    if re.search(r"\bf64\[", text):
        raise SystemExit("the lowered step has f64 values; some constant lost its dtype")
    return lowered, text


# ---- command line ----

def parameter_count(params):
    """All variables, BN moving statistics included (what `effnetv2 summary` prints)."""
    return sum(math.prod(p.shape) for p in params)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, precision in [("params", None), ("hlo", "bf16"), ("time", "f32")]:
        sub = commands.add_parser(name)
        sub.add_argument("--model", default="s", help="built-in name or spec JSON file")
        if precision:
            sub.add_argument("--batch", type=int, default=128)
            sub.add_argument("--image-size", type=int, help="default: the spec's training size")
            sub.add_argument("--precision", choices=sorted(COMPUTE), default=precision)
    commands.choices["hlo"].add_argument("--out", required=True, help="HloModuleProto file")
    commands.choices["time"].add_argument("--steps", type=int, default=20)
    args = parser.parse_args()

    model = resolve(load_spec(args.model))
    params = model_params(model)
    count = parameter_count(params)
    if args.command == "params":
        trainable = sum(math.prod(p.shape) for p in params if p.kind not in MOVING)
        print(json.dumps(dict(model=model["spec"]["name"], parameters=count, trainable=trainable)))
        return
    size = args.image_size or model["spec"]["image_size"]["train"]
    step = jitted_step(model, params, args.precision)
    batch = synthetic_batch(model, args.batch, size)
    summary = dict(model=args.model, image_size=size, batch=args.batch,
                   precision=args.precision, parameters=count)
    if args.command == "hlo":
        abstract = jax.eval_shape(partial(initial_state, params))
        lowered, text = lower(step, abstract, batch)
        proto = lowered.compiler_ir("hlo").as_serialized_hlo_module_proto()
        pathlib.Path(args.out).write_bytes(proto)
        instructions = len(re.findall(r"^\s*(?:ROOT )?\S+ = ", text, re.M))
        print(json.dumps(dict(summary, out=args.out, bytes=len(proto), instructions=instructions)))
        return
    state = initial_state(params)
    start = time.perf_counter()
    compiled = lower(step, state, batch)[0].compile()
    compile_seconds = time.perf_counter() - start
    state = jax.block_until_ready(compiled(state, *batch))[0]  # warm-up
    start = time.perf_counter()
    for _ in range(args.steps):
        state, loss, _ = compiled(state, *batch)
    jax.block_until_ready((state, loss))
    seconds = time.perf_counter() - start
    print(json.dumps(dict(summary, compile_seconds=round(compile_seconds, 3),
                          images_per_second=round(args.batch * args.steps / seconds, 1))))


if __name__ == "__main__":
    main()
