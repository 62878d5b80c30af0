#!/usr/bin/env bash
# Installs ONNX Runtime's shared library from the PyPI `onnxruntime` wheel into .ort/lib/.
#
# nexvitad loads ONNX Runtime at run time and never downloads it itself. PyPI is the one
# place this needs to reach: `pip download` fetches the pinned CPU wheel, and we unpack only
# onnxruntime/capi/libonnxruntime.so.<version> from it, with a libonnxruntime.so link beside.
# Idempotent: does nothing when the library is already there.
set -euo pipefail
ORT_VERSION="${ORT_VERSION:-1.32.0}"
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="${1:-$root/.ort}"
lib="$dest/lib/libonnxruntime.so.$ORT_VERSION"
if [ -f "$lib" ] && [ -L "$dest/lib/libonnxruntime.so" ]; then
  echo "ONNX Runtime $ORT_VERSION already in $dest/lib"
  exit 0
fi
py="${PYTHON:-python3}"
mkdir -p "$dest/wheel" "$dest/lib"
if ! ls "$dest"/wheel/onnxruntime-"$ORT_VERSION"-*.whl >/dev/null 2>&1; then
  "$py" -m pip download --quiet --no-deps --only-binary=:all: "onnxruntime==$ORT_VERSION" -d "$dest/wheel"
fi
whl=$(ls "$dest"/wheel/onnxruntime-"$ORT_VERSION"-*.whl | head -n1)
"$py" - "$whl" "$dest/lib" "$ORT_VERSION" <<'PY'
import sys, zipfile, os
whl, out, ver = sys.argv[1], sys.argv[2], sys.argv[3]
name = f"onnxruntime/capi/libonnxruntime.so.{ver}"
with zipfile.ZipFile(whl) as z:
    if name not in z.namelist():
        sys.exit(f"{whl} has no {name}")
    tmp = os.path.join(out, f".libonnxruntime.so.{ver}.tmp")
    with z.open(name) as src, open(tmp, "wb") as dst:
        dst.write(src.read())
    os.replace(tmp, os.path.join(out, f"libonnxruntime.so.{ver}"))
PY
ln -sfn "libonnxruntime.so.$ORT_VERSION" "$dest/lib/libonnxruntime.so"
ln -sfn "libonnxruntime.so.$ORT_VERSION" "$dest/lib/libonnxruntime.so.1"
echo "ONNX Runtime $ORT_VERSION installed in $dest/lib"
