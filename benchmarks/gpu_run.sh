#!/usr/bin/env bash
# The one command for a lent GPU machine (run from the repository root); the whole acceptance
# (issue 19: precision matrix, per-layer profile, NVDEC vs CPU, end to end, decode workers, the
# targets) is section 5 of gpu_check.py, whose section caps add up to 8.4 minutes:
#
#     bash benchmarks/gpu_run.sh            # extra arguments go to gpu_check.py
#
# Expects, carried with the working tree (both ignored by git):
#   .whl/        wheels the machine lacks: av, hatchling, pathspec, pluggy, trove-classifiers
#   .devshared/  the test assets: weights/macil_sd.pkl and media/xd/*.mp4
# Installs the wheels and the project (no network: --no-index), then runs
# benchmarks/gpu_check.py with its log in $OUT/gpu_check.log and its report in
# $OUT/gpu_check.json. Exits non-zero only when the check itself crashed (a failed
# check is exit 10 from gpu_check.py, reported, and counts as a finished run here).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_check_out}
export OUT
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
export VIOLENCE_DETECT_SHARED=${VIOLENCE_DETECT_SHARED:-$PWD/.devshared}
# the checkout itself comes first on the path even if the editable install fails
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}

start=$(date +%s)
{
    echo "== install ($(date -u +%H:%M:%S))"
    if compgen -G ".whl/*.whl" >/dev/null; then
        "$PY" -m pip install -q --no-index --no-deps .whl/*.whl || echo "!! wheel install failed"
    else
        echo "!! no .whl/ folder: using what is installed"
    fi
    "$PY" -m pip install -q --no-deps --no-build-isolation -e . || echo "!! project install failed: running from the checkout (PYTHONPATH)"
    echo "== install took $(( $(date +%s) - start )) s"
} 2>&1 | tee "$OUT/install.log"

set -o pipefail
"$PY" benchmarks/gpu_check.py "$@" 2>&1 | tee "$OUT/gpu_check.log"
rc=$?
echo "== gpu_check.py exit $rc after $(( $(date +%s) - start )) s in all" | tee -a "$OUT/gpu_check.log"
if [ "$rc" -eq 0 ] || [ "$rc" -eq 10 ]; then
    exit 0
fi
exit "$rc"
