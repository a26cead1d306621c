#!/usr/bin/env python3
"""timm's side of the one-step agreement test (tests/timm_train_step.rs): one training step of
the official EfficientNetV2 recipe, written from timm's documented components and the official
code, from a saved state.

The step: `timm.create_model(MODEL, num_classes=CLASSES, drop_rate=0, drop_path_rate=0)` in
training mode; softmax cross-entropy with label smoothing (`F.cross_entropy(label_smoothing=)`,
TF1's `onehot * (1 - ls) + ls / classes`); weight decay on the kernels only (conv and dense
weights, the official `weight_decay_exclude='.*(bias|gamma|beta).*'`) as an L2 term in the
gradient; timm's `RMSpropTF` (TF1 RMSProp: decay 0.9, momentum 0.9, epsilon 1e-3 inside the
square root, learning rate inside the momentum); the learning rate of the official
`WarmupLearningRateSchedule` at the global step before the step (linear warmup over
`int(warmup_epochs * steps_per_epoch)` steps, exponential staircase decay every
`decay_epochs * steps_per_epoch` steps counted from step 0, steps per epoch the float
`examples / batch` of `main.py`); batch-norm moving statistics updated with the biased batch
variance (`moving = m * moving + (1 - m) * batch`, as the official TPU batch norm does, where
PyTorch would use the unbiased one); then the EMA of every variable and moving statistic with
`tf.train.ExponentialMovingAverage(decay, num_updates=global_step)`'s decay
`min(decay, (1 + t) / (10 + t))`, t the global step after its increment.

Usage: tools/timm_train_step.py --dir DIR --step T [recipe options] [--controls a,b,...]
DIR/state.safetensors holds the state before the step by timm name, under the prefixes
`params.` (the state dict, moving statistics included), `ms.` and `mom.` (RMSProp slots of
the trainable parameters) and `ema.`; DIR/images.bin the batch's pixels (u8, NHWC) and
DIR/labels.bin its classes (i64). Writes DIR/after_<control>.safetensors, the same tensors after
the step, for `none` (the recipe) and each negative control: `ema_counter_before_increment`,
`next_step_lr`, `decay_batch_norm` (weight decay on the batch-norm scales and offsets too) and
`no_label_smoothing`. Needs torch, timm and safetensors.
"""
import argparse
import math
import pathlib

import numpy as np
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from timm.optim import RMSpropTF

CONTROLS = ("none", "ema_counter_before_increment", "next_step_lr", "decay_batch_norm",
            "no_label_smoothing")


def learning_rate(step, a):
    """The official WarmupLearningRateSchedule with exponential staircase decay."""
    steps_per_epoch = a.examples / a.batch
    peak = a.lr_base * a.batch / 256.0
    lr = peak * a.decay_factor ** math.floor(step / (steps_per_epoch * a.decay_epochs))
    warmup = int(a.warmup_epochs * steps_per_epoch)
    return peak * step / warmup if step < warmup else lr


def group(state, prefix):
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def one_step(a, state, images, labels, control):
    torch.manual_seed(0)
    model = timm.create_model(a.model, pretrained=False, num_classes=a.classes,
                              drop_rate=0.0, drop_path_rate=0.0)
    missing, unexpected = model.load_state_dict(group(state, "params."), strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), \
        (missing, unexpected)
    model.train()
    norms = {name: m for name, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    batch_stats = {}
    for name, module in norms.items():
        # PyTorch's own update (unbiased variance) is switched off; the biased one follows.
        module.momentum = 0.0

        def keep(module, inputs, name=name):
            x = inputs[0].detach()
            batch_stats[name] = (x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=False))
        module.register_forward_pre_hook(keep)
    norm_params = {f"{n}.{leaf}" for n in norms for leaf in ("weight", "bias")}
    params = dict(model.named_parameters())
    decayed = [n for n, p in params.items()
               if p.ndim > 1 or (control == "decay_batch_norm" and n in norm_params)]
    plain = [n for n in params if n not in decayed]
    step = a.step + 1 if control == "next_step_lr" else a.step
    optimizer = RMSpropTF(
        [{"params": [params[n] for n in decayed], "weight_decay": a.weight_decay},
         {"params": [params[n] for n in plain], "weight_decay": 0.0}],
        lr=learning_rate(step, a), alpha=0.9, eps=1e-3, momentum=0.9)
    for name, p in params.items():
        optimizer.state[p] = {"step": torch.tensor(float(a.step)),
                              "square_avg": state["ms." + name].clone(),
                              "momentum_buffer": state["mom." + name].clone()}

    smoothing = 0.0 if control == "no_label_smoothing" else a.label_smoothing
    logits = model(images)
    loss = F.cross_entropy(logits, labels, label_smoothing=smoothing)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

    with torch.no_grad():
        for name, module in norms.items():
            mean, var = batch_stats[name]
            module.running_mean.mul_(a.bn_momentum).add_((1 - a.bn_momentum) * mean)
            module.running_var.mul_(a.bn_momentum).add_((1 - a.bn_momentum) * var)
        t = a.step if control == "ema_counter_before_increment" else a.step + 1
        decay = min(a.ema_decay, (1.0 + t) / (10.0 + t))
        after = {}
        for name, value in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            after["params." + name] = value.clone()
            ema = state["ema." + name]
            after["ema." + name] = ema - (1.0 - decay) * (ema - value)
        for name, p in params.items():
            after["ms." + name] = optimizer.state[p]["square_avg"].clone()
            after["mom." + name] = optimizer.state[p]["momentum_buffer"].clone()
    return {k: v.contiguous() for k, v in after.items()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--model", default="tf_efficientnetv2_b0")
    parser.add_argument("--classes", type=int, required=True)
    parser.add_argument("--step", type=int, required=True, help="global step before the step")
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--examples", type=int, required=True, help="training set size")
    parser.add_argument("--lr-base", type=float, required=True, help="per 256 examples")
    parser.add_argument("--warmup-epochs", type=float, required=True)
    parser.add_argument("--decay-factor", type=float, required=True)
    parser.add_argument("--decay-epochs", type=float, required=True)
    parser.add_argument("--label-smoothing", type=float, required=True)
    parser.add_argument("--weight-decay", type=float, required=True)
    parser.add_argument("--ema-decay", type=float, required=True)
    parser.add_argument("--bn-momentum", type=float, required=True, help="TF convention")
    parser.add_argument("--mean", type=float, nargs=3, required=True, help="on the 0-255 scale")
    parser.add_argument("--std", type=float, nargs=3, required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--controls", default=",".join(CONTROLS))
    a = parser.parse_args()
    out = pathlib.Path(a.dir)
    torch.set_num_threads(2)
    state = load_file(str(out / "state.safetensors"))
    pixels = np.fromfile(out / "images.bin", dtype=np.uint8).reshape(a.batch, a.size, a.size, 3)
    mean = torch.tensor(a.mean, dtype=torch.float32)
    std = torch.tensor(a.std, dtype=torch.float32)
    images = ((torch.from_numpy(pixels).float() - mean) / std).permute(0, 3, 1, 2).contiguous()
    labels = torch.from_numpy(np.fromfile(out / "labels.bin", dtype="<i8"))
    for control in a.controls.split(","):
        assert control in CONTROLS, control
        save_file(one_step(a, state, images, labels, control),
                  str(out / f"after_{control}.safetensors"))


if __name__ == "__main__":
    main()
