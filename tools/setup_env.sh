#!/usr/bin/env bash
# Idempotent set-up of the repvgg_mm environment in .venv/ (see README "Set-up").
# mmcv 2.1.0 is built from source with its CPU ops once per torch version; the wheel is cached in
# $REPVGG_MM_CACHE/wheels/torch-<version>-<python>/ so later runs (and other clones) reuse it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"
CONSTRAINTS="$ROOT/requirements/constraints.txt"
CACHE="${REPVGG_MM_CACHE:-$HOME/.cache/repvgg_mm}"
log() { echo "[setup] $*" >&2; }
pin() { grep -E "^$1==" "$CONSTRAINTS" | head -n1; }

stamp_key="$(cat "$CONSTRAINTS" "$ROOT/setup.py" "$0" | sha256sum | cut -c1-16)"
STAMP="$VENV/.repvgg_mm_setup_$stamp_key"
if [[ -f "$STAMP" ]]; then
  log "environment up to date ($VENV)"
  exit 0
fi

[[ -x "$VENV/bin/python" ]] || { log "creating $VENV"; "$PY" -m venv "$VENV"; }
VPY="$VENV/bin/python"
PIP=("$VPY" -m pip install --disable-pip-version-check -q)

log "installing build tools and torch"
"${PIP[@]}" "$(pin setuptools)" wheel ninja "$(pin numpy)"
"${PIP[@]}" "$(pin torch)" "$(pin torchvision)"

torch_version="$("$VPY" -c 'import torch; print(torch.__version__)')"
py_tag="$("$VPY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
mmcv_pin="$(pin mmcv)"; mmcv_version="${mmcv_pin#mmcv==}"
WHEELS="$CACHE/wheels/torch-${torch_version}-${py_tag}"
mmcv_wheel="$(ls "$WHEELS"/mmcv-"$mmcv_version"-*.whl 2>/dev/null | head -n1 || true)"
if [[ -z "$mmcv_wheel" ]]; then
  log "building mmcv $mmcv_version with CPU ops against torch $torch_version (15-35 min on 2 cores)"
  work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
  "$VPY" -m pip download --disable-pip-version-check -q --no-deps --no-binary :all: \
    -d "$work" "$mmcv_pin"
  tar -xzf "$work"/mmcv-"$mmcv_version".tar.gz -C "$work"
  src="$work/mmcv-$mmcv_version"
  # torch >= 2.14 headers require C++20; mmcv 2.1.0 hard-codes -std=c++17.
  sed -i 's/-std=c++17/-std=c++20/g' "$src/setup.py"
  grep -q -- '-std=c++20' "$src/setup.py" || { log "could not patch mmcv's C++ standard"; exit 1; }
  mkdir -p "$WHEELS"
  (cd "$src" && MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="$(nproc)" \
     "$VPY" -m pip wheel --disable-pip-version-check --no-build-isolation --no-deps -w "$work/dist" . \
     > "$work/build.log" 2>&1) &
  build_pid=$!
  # the CPU build compiles csrc/pytorch/*.cpp and csrc/pytorch/cpu/*.cpp
  sources="$(ls "$src"/mmcv/ops/csrc/pytorch/*.cpp "$src"/mmcv/ops/csrc/pytorch/cpu/*.cpp | wc -l)"
  start=$SECONDS
  # A progress line every minute, so the long compile does not look hung.
  while kill -0 "$build_pid" 2>/dev/null; do
    for _ in $(seq 60); do kill -0 "$build_pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$build_pid" 2>/dev/null || break
    done_objects="$(find "$src/build" -name '*.o' 2>/dev/null | wc -l)"
    log "building mmcv: $done_objects/$sources C++ files compiled, $(( (SECONDS - start) / 60 )) min so far"
  done
  if ! wait "$build_pid"; then
    tail -n 40 "$work/build.log" >&2
    log "the mmcv build failed (log above)"
    exit 1
  fi
  log "mmcv built in $(( (SECONDS - start) / 60 )) min"
  built="$(ls "$work"/dist/mmcv-*.whl | head -n1)"
  # Atomic publish into the cache so an interrupted build never leaves a half wheel behind.
  cp "$built" "$WHEELS/.tmp-$(basename "$built")"
  mv "$WHEELS/.tmp-$(basename "$built")" "$WHEELS/$(basename "$built")"
  mmcv_wheel="$WHEELS/$(basename "$built")"
else
  log "reusing cached mmcv wheel $mmcv_wheel"
fi

log "installing mmcv, mmengine, mmseg, mmdet and test tools"
"${PIP[@]}" -c "$CONSTRAINTS" "$mmcv_wheel" "$(pin mmengine)" "$(pin mmsegmentation)" "$(pin mmdet)" \
  "$(pin opencv-python)" "$(pin ftfy)" "$(pin regex)" "$(pin pytest)" "$(pin matplotlib)" \
  "$(pin onnx)" "$(pin onnxruntime)" "$(pin onnxscript)" "$(pin timm)" "$(pin pytest-xdist)" \
  "$(pin ruff)"
"${PIP[@]}" -c "$CONSTRAINTS" --no-build-isolation --no-deps -e "$ROOT"

"$VPY" - <<'PY'
import mmcv, mmcv.ops, mmengine, mmseg, mmdet, torch, torchvision  # noqa: F401
from mmcv.ops import nms, RoIAlign  # compiled ops are present
print(f"[setup] torch {torch.__version__}, mmcv {mmcv.__version__} (ops), mmengine {mmengine.__version__}, "
      f"mmseg {mmseg.__version__}, mmdet {mmdet.__version__}")
PY
rm -f "$VENV"/.repvgg_mm_setup_*
touch "$STAMP"
log "done"
