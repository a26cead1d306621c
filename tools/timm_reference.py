#!/usr/bin/env python3
"""timm's side of the agreement test: a randomly initialised `tf_efficientnetv2_*` model's state
dict, a batch of inputs and the logits timm computes for them (inference mode).

Usage: tools/timm_reference.py --model tf_efficientnetv2_b0 --size 225 --batch 2 --out DIR
Writes DIR/state_dict.safetensors (the state dict as timm's `save_file` writes it, batch-norm
counters included), DIR/images.bin (f32, NHWC, little-endian) and DIR/logits.bin (f32,
[batch, classes]). Batch-norm scales and statistics are random too (see below).
With --load FILE it instead loads FILE into the model with load_state_dict(strict=True) and
writes the logits for DIR/images.bin to DIR/logits_loaded.bin.
Needs torch, timm and safetensors (tests/timm_agreement.rs installs pinned versions).
"""
import argparse
import pathlib

import numpy as np
import timm
import torch
from safetensors.torch import load_file, save_file


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--load")
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    model = timm.create_model(args.model, pretrained=False, num_classes=args.classes)
    if args.load:
        model.load_state_dict(load_file(args.load), strict=True)
        model.eval()
        images = np.fromfile(out / "images.bin", dtype="<f4")
        images = torch.from_numpy(images.reshape(args.batch, args.size, args.size, 3))
        with torch.no_grad():
            logits = model(images.permute(0, 3, 1, 2).contiguous())
        logits.numpy().astype("<f4").tofile(out / "logits_loaded.bin")
        return
    # Random batch-norm scales and offsets, and statistics measured on a calibration batch (one
    # training-mode pass with a cumulative average): inference then exercises every statistic,
    # and activations stay near unit scale through S's 40 blocks instead of growing to 1e6,
    # where float rounding would decide the comparison.
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.1)
                module.momentum = None
                module.reset_running_stats()
        model.train()
        model(torch.randn(8, 3, args.size, args.size))
    model.eval()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(out / "state_dict.safetensors"))
    images = torch.randn(args.batch, 3, args.size, args.size)
    with torch.no_grad():
        logits = model(images)
    images.permute(0, 2, 3, 1).contiguous().numpy().astype("<f4").tofile(out / "images.bin")
    logits.numpy().astype("<f4").tofile(out / "logits.bin")


if __name__ == "__main__":
    main()
