#!/usr/bin/env bash
# Regenerates the Python gRPC stubs from ../../proto (needs grpcio-tools).
# Usage: clients/python/generate.sh [OUT_DIR]   (default: clients/python)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here}"
python="${PYTHON:-python3}"
mkdir -p "$out"
"$python" -m grpc_tools.protoc -I "$here/../../proto" \
  --python_out="$out" --grpc_python_out="$out" --pyi_out="$out" \
  "$here"/../../proto/affect/v1/*.proto
touch "$out/affect/__init__.py" "$out/affect/v1/__init__.py"
