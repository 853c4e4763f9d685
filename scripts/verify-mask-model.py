#!/usr/bin/env python3
"""Checks the derived mask classifier without Keras, and measures it.

    verify-mask-model.py ORIGINAL.model DERIVED.onnx MASKS_DIR [--ref N]

(a) Reference: a pure-numpy forward pass written from the Keras layer semantics, straight from the
    HDF5 (NHWC, BatchNormalization NOT folded, TensorFlow 'same' padding, ZeroPadding2D as a pad),
    on N photos from each class; its logits and probabilities must match ONNX Runtime's within 1e-4.
(b) Measurement: every photo in MASKS_DIR/with_mask and MASKS_DIR/without_mask, resized to 224x224
    (Pillow bilinear), RGB, x/127.5-1; prints the fraction with p_mask > t for t in 0.3/0.5/0.7/0.9.

Needs h5py, numpy, onnx, onnxruntime and Pillow (PyPI). The photos are read by path and nothing is
written anywhere.
"""
import json
import os
import sys

import h5py
import numpy as np
import onnx
import onnxruntime as ort
from PIL import Image, ImageOps

TOL = 1e-4


def preprocess(path):
    im = ImageOps.exif_transpose(Image.open(path)).convert("RGB").resize((224, 224), Image.BILINEAR)
    return np.asarray(im, dtype=np.float32) / 127.5 - 1.0


# ---------- (a) an independent numpy implementation of the Keras model ----------
class KerasNumpy:
    def __init__(self, path):
        f = h5py.File(path, "r")
        self.cfg = json.loads(f.attrs["model_config"])["config"]
        self.mw = f["model_weights"]

    def w(self, layer, key):
        g = self.mw[layer]
        for n in g.attrs["weight_names"]:
            n = n.decode() if isinstance(n, bytes) else str(n)
            if n.split("/")[-1].startswith(key + ":"):
                return np.array(g[n], dtype=np.float64)
        raise KeyError(f"{layer}/{key}")

    @staticmethod
    def pad_same(x, k, s):
        n, h, w, c = x.shape
        def amount(size):
            out = (size + s - 1) // s
            need = max((out - 1) * s + k - size, 0)
            return (need // 2, need - need // 2)
        return np.pad(x, ((0, 0), amount(h), amount(w), (0, 0)))

    @staticmethod
    def windows(x, kh, kw, s):
        n, h, w, c = x.shape
        oh, ow = (h - kh) // s + 1, (w - kw) // s + 1
        for i in range(kh):
            for j in range(kw):
                yield i, j, x[:, i:i + s * (oh - 1) + 1:s, j:j + s * (ow - 1) + 1:s, :]

    def forward(self, x):
        """x: [N,224,224,3] float64 NHWC. Returns (logits of dense_1 before softmax, probabilities)."""
        out = {}
        logits = None
        for l in self.cfg["layers"]:
            cls, name, c = l["class_name"], l["name"], l["config"]
            ins = [out[i[0]] for i in l["inbound_nodes"][0]] if l["inbound_nodes"] else []
            if cls == "InputLayer":
                y = x
            elif cls == "ZeroPadding2D":
                (t, b), (le, r) = c["padding"]
                y = np.pad(ins[0], ((0, 0), (t, b), (le, r), (0, 0)))
            elif cls in ("Conv2D", "DepthwiseConv2D"):
                kh, kw = c["kernel_size"]
                s = c["strides"][0]
                xi = self.pad_same(ins[0], kh, s) if c["padding"] == "same" else ins[0]
                if cls == "Conv2D":
                    k = self.w(name, "kernel")  # (kh, kw, cin, cout)
                    y = sum(win @ k[i, j] for i, j, win in self.windows(xi, kh, kw, s))
                else:
                    k = self.w(name, "depthwise_kernel")[:, :, :, 0]  # (kh, kw, c)
                    y = sum(win * k[i, j] for i, j, win in self.windows(xi, kh, kw, s))
                if c["use_bias"]:
                    y = y + self.w(name, "bias")
            elif cls == "BatchNormalization":
                g, b = self.w(name, "gamma"), self.w(name, "beta")
                m, v = self.w(name, "moving_mean"), self.w(name, "moving_variance")
                y = (ins[0] - m) / np.sqrt(v + c["epsilon"]) * g + b
            elif cls == "ReLU":
                y = np.maximum(ins[0], 0.0)
                if c.get("max_value") is not None:
                    y = np.minimum(y, c["max_value"])
            elif cls == "Add":
                y = ins[0] + ins[1]
            elif cls == "AveragePooling2D":
                ph, pw = c["pool_size"]
                s = c["strides"][0]
                y = sum(win for _, _, win in self.windows(ins[0], ph, pw, s)) / (ph * pw)
            elif cls == "Flatten":
                y = ins[0].reshape(ins[0].shape[0], -1)  # NHWC order, as Keras
            elif cls == "Dropout":
                y = ins[0]
            elif cls == "Dense":
                z = ins[0] @ self.w(name, "kernel") + self.w(name, "bias")
                if c["activation"] == "relu":
                    y = np.maximum(z, 0.0)
                elif c["activation"] == "softmax":
                    logits = z
                    e = np.exp(z - z.max(axis=1, keepdims=True))
                    y = e / e.sum(axis=1, keepdims=True)
                else:
                    y = z
            else:
                raise SystemExit(f"reference: unsupported layer {cls}")
            out[name] = y
        return logits, out[self.cfg["output_layers"][0][0]]


def session(model_path, extra_output=None):
    m = onnx.load(model_path)
    if extra_output:
        m.graph.output.append(onnx.helper.make_tensor_value_info(extra_output, onnx.TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.inter_op_num_threads = 1
    return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])


def main():
    args = sys.argv[1:]
    nref = 3
    if "--ref" in args:
        i = args.index("--ref")
        nref = int(args[i + 1])
        del args[i:i + 2]
    original, derived, root = args
    classes = {"with_mask": sorted(os.listdir(os.path.join(root, "with_mask"))),
               "without_mask": sorted(os.listdir(os.path.join(root, "without_mask")))}

    # (a) numpy reference vs ONNX Runtime, on the first nref photos of each class
    sess = session(derived, "dense_1.linear")
    ref = KerasNumpy(original)
    paths = [os.path.join(root, k, f) for k in classes for f in classes[k][:nref]]
    x = np.stack([preprocess(p) for p in paths])
    ort_probs, ort_logits = sess.run(["probs", "dense_1.linear"], {"input": x})
    np_logits, np_probs = ref.forward(x.astype(np.float64))
    dl, dp = np.abs(ort_logits - np_logits).max(), np.abs(ort_probs - np_probs).max()
    for p, a, b in zip(paths, ort_probs[:, 0], np_probs[:, 0]):
        print(f"  ref {os.path.relpath(p, root)}: p_mask ort={a:.6f} numpy={b:.6f}")
    print(f"(a) numpy reference vs ONNX Runtime {ort.__version__} on {len(paths)} photos: "
          f"max |d logits| = {dl:.2e}, max |d probs| = {dp:.2e} (tolerance {TOL:g})")
    ok = dl <= TOL and dp <= TOL
    print("(a)", "PASS" if ok else "FAIL")

    # (b) measurement
    sess = session(derived)
    pm = {}
    for k, files in classes.items():
        vals = []
        for i in range(0, len(files), 25):
            batch = np.stack([preprocess(os.path.join(root, k, f)) for f in files[i:i + 25]])
            vals.append(sess.run(["probs"], {"input": batch})[0][:, 0])
        pm[k] = np.concatenate(vals)
    nm, nn = len(pm["with_mask"]), len(pm["without_mask"])
    print(f"(b) {nm} with_mask, {nn} without_mask photos")
    print("| threshold on p_mask | masked caught (p_mask > t) | unmasked flagged (p_mask > t) |")
    print("| --- | --- | --- |")
    for t in (0.3, 0.5, 0.7, 0.9):
        a, b = int((pm["with_mask"] > t).sum()), int((pm["without_mask"] > t).sum())
        print(f"| {t} | {a}/{nm} = {a / nm:.1%} | {b}/{nn} = {b / nn:.1%} |")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
