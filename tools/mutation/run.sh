#!/usr/bin/env bash
# Mutation testing of sciSR/metrics.py, sciSR/train/degrade.py and sciSR/train/data.py with mutmut.
# Usage: tools/mutation/run.sh [WORKDIR] [MAX_CHILDREN]
#   WORKDIR       scratch tree (default: a new temporary directory); the repository is never modified
#   MAX_CHILDREN  parallel mutant workers (default 2)
# Needs mutmut in the project venv: .venv/bin/pip install mutmut
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
work="${1:-$(mktemp -d -t scisr-mutation.XXXXXX)}"
children="${2:-2}"
py="$repo/.venv/bin/python"
"$py" -c "import mutmut" 2>/dev/null || { echo "mutmut missing: $repo/.venv/bin/pip install mutmut" >&2; exit 1; }
mkdir -p "$work/tests"
rm -rf "$work/sciSR" "$work/mutants"
cp -r "$repo/sciSR" "$work/sciSR"
find "$work/sciSR" -name __pycache__ -prune -exec rm -rf {} +
cp "$repo/tests/__init__.py" "$repo/tests/conftest.py" "$repo/tests/test_metrics.py" \
   "$repo/tests/test_train_degrade.py" "$repo/tests/test_train_data.py" "$work/tests/"
cp "$repo/tools/mutation/setup.cfg" "$work/setup.cfg"
cd "$work"
export PATH="$repo/.venv/bin:$PATH" OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
echo "mutation run in $work"
mutmut run --max-children "$children" || true
mutmut results --all true > results.txt || true
"$py" "$repo/tools/mutation/summary.py" results.txt
