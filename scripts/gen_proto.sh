#!/usr/bin/env bash
# Regenerates proto/python from proto/workbench with the pinned grpcio-tools and mypy-protobuf.
# The output is committed; tests/unit/test_proto_current.py fails when it is stale.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$here/.venv/bin/python}
[[ "$python" = /* ]] || python="$PWD/$python"  # keep the venv path (no realpath: it would leave the venv)
out=${1:-$here/proto/python}
mkdir -p "$out"
rm -rf "$out/workbench"
export PATH="$(dirname "$python"):$PATH"
cd "$here/proto"
protos=$(find workbench -name '*.proto' | LC_ALL=C sort)
"$python" -m grpc_tools.protoc -I . \
  --python_out="$out" --grpc_python_out="$out" \
  --mypy_out="$out" --mypy_grpc_out="$out" \
  $protos
# Make every generated folder a regular package (mypy and setuptools find them without guessing).
find "$out/workbench" -type d -exec touch {}/__init__.py \;
touch "$out/workbench/py.typed"
