#!/usr/bin/env python3
"""Checks the derived second mask classifier against an independent numpy forward pass of the original
PyTorch checkpoint (no PyTorch, no ONNX graph code shared with the derivation).

    verify-mask-model-torch.py ORIGINAL.pth DERIVED.onnx IMAGE_DIR [--n 10]

The reference runs mask_recognition 0.0.1's network (networks.py: torchvision MobileNetV2 `features`,
`view`, Linear, ReLU, Linear, LogSoftmax, exp) straight from the state_dict in float64 NCHW, with every
BatchNormalization applied as it is at inference (running mean and variance, eps 1e-5), not folded. The
images are resized to 128×128 (Pillow bilinear), RGB, x/127.5 − 1, the package's own preprocessing.
Prints the largest |Δp| and fails above 1e-4. Needs numpy, Pillow and onnxruntime (a measurement venv,
as in docs/accuracy.md); the checkpoint is read with the derivation's restricted unpickler.
"""
import importlib.util
import os
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("derive", os.path.join(here, "derive-mask-model-torch.py"))
derive = importlib.util.module_from_spec(spec)
spec.loader.exec_module(derive)


def conv(x, w, stride, groups):
    """x [C,H,W], w [O, C/groups, k, k]; torchvision padding (k-1)/2."""
    k = w.shape[2]
    p = (k - 1) // 2
    x = np.pad(x, ((0, 0), (p, p), (p, p)))
    c, h, wd = x.shape
    oh, ow = (h - k) // stride + 1, (wd - k) // stride + 1
    cols = np.lib.stride_tricks.as_strided(
        x, shape=(c, k, k, oh, ow),
        strides=(x.strides[0], x.strides[1], x.strides[2], x.strides[1] * stride, x.strides[2] * stride))
    o = w.shape[0]
    cin = c // groups
    out = np.empty((o, oh, ow))
    opg = o // groups
    for g in range(groups):
        xs = cols[g * cin:(g + 1) * cin].reshape(cin * k * k, oh * ow)
        ws = w[g * opg:(g + 1) * opg].reshape(opg, cin * k * k)
        out[g * opg:(g + 1) * opg] = (ws @ xs).reshape(opg, oh, ow)
    return out


def bn(x, sd, pre):
    g, b = sd[pre + ".weight"], sd[pre + ".bias"]
    m, v = sd[pre + ".running_mean"], sd[pre + ".running_var"]
    return (x - m[:, None, None]) / np.sqrt(v[:, None, None] + 1e-5) * g[:, None, None] + b[:, None, None]


def relu6(x):
    return np.clip(x, 0.0, 6.0)


def forward(sd, x):
    sd = {k: np.asarray(v, np.float64) for k, v in sd.items()}
    x = relu6(bn(conv(x, sd["bottom.0.0.weight"], 2, 1), sd, "bottom.0.1"))
    idx, cin = 1, 32
    for t, c, n, s in derive.SETTINGS:
        for i in range(n):
            stride = s if i == 0 else 1
            pre = f"bottom.{idx}.conv"
            if t == 1:
                y = relu6(bn(conv(x, sd[pre + ".0.0.weight"], stride, cin), sd, pre + ".0.1"))
                y = bn(conv(y, sd[pre + ".1.weight"], 1, 1), sd, pre + ".2")
            else:
                y = relu6(bn(conv(x, sd[pre + ".0.0.weight"], 1, 1), sd, pre + ".0.1"))
                y = relu6(bn(conv(y, sd[pre + ".1.0.weight"], stride, cin * t), sd, pre + ".1.1"))
                y = bn(conv(y, sd[pre + ".2.weight"], 1, 1), sd, pre + ".3")
            x = x + y if (stride == 1 and cin == c) else y
            cin = c
            idx += 1
    x = relu6(bn(conv(x, sd["bottom.18.0.weight"], 1, 1), sd, "bottom.18.1"))
    h = np.maximum(sd["top.0.weight"] @ x.reshape(-1) + sd["top.0.bias"], 0.0)
    z = sd["top.2.weight"] @ h + sd["top.2.bias"]
    z = z - z.max()
    return np.exp(z) / np.exp(z).sum()


def main():
    args = sys.argv[1:]
    n = 10
    if "--n" in args:
        j = args.index("--n")
        n = int(args[j + 1])
        del args[j:j + 2]
    if len(args) != 3:
        sys.exit(__doc__)
    pth, onnx_path, images = args
    sd = derive.load_state_dict(pth)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    session = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
    files = []
    for root, _, names in sorted(os.walk(images)):
        files += [os.path.join(root, f) for f in sorted(names) if f.lower().endswith((".jpg", ".jpeg", ".png"))]
    # Spread over the folder (both labels of a with_mask/without_mask folder).
    picked = files[:: max(1, len(files) // n)][:n]
    worst = 0.0
    for f in picked:
        img = Image.open(f).convert("RGB").resize((128, 128), Image.BILINEAR)
        x = np.asarray(img, np.float64).transpose(2, 0, 1) / 127.5 - 1.0
        ref = forward(sd, x)
        got = session.run(None, {"input": x[None].astype(np.float32)})[0][0]
        d = float(np.abs(ref - got).max())
        worst = max(worst, d)
        print(f"{os.path.relpath(f, images)}: reference p_mask {ref[0]:.6f}, onnx {got[0]:.6f}, |dp| {d:.2e}")
    print(f"{len(picked)} images, max |dp| = {worst:.2e}")
    if worst > 1e-4:
        sys.exit("verify-mask-model-torch: the derived model differs from the reference")


if __name__ == "__main__":
    main()
