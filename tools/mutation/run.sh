#!/usr/bin/env bash
# Mutation testing of one target (a module group and the tests that cover it) with mutmut.
# Usage: tools/mutation/run.sh TARGET [WORKDIR] [MAX_CHILDREN] [MUTANT_GLOB...]
#   TARGET        name of a configuration in tools/mutation/targets/ (TARGET.cfg: the modules mutated
#                 and the tests run against each mutant); `run.sh list` prints the targets
#   WORKDIR       scratch tree (default or "": a new temporary directory); the repository is never modified
#   MAX_CHILDREN  parallel mutant workers (default 2)
#   MUTANT_GLOB   only run the mutants whose names match (e.g. 'sciSR.io.geotiff.x__collect_bands__mutmut_*');
#                 default: the '# mutants:' line of TARGET.cfg, if any, else every mutant
# Needs mutmut in the project venv: .venv/bin/pip install mutmut
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
targets="$repo/tools/mutation/targets"
target="${1:?usage: run.sh TARGET [WORKDIR] [MAX_CHILDREN] [MUTANT_GLOB...] (targets: $(cd "$targets" && ls *.cfg | sed 's/\.cfg$//' | tr '\n' ' '))}"
if [ "$target" = list ]; then
    (cd "$targets" && ls *.cfg | sed 's/\.cfg$//')
    exit 0
fi
cfg="$targets/$target.cfg"
[ -f "$cfg" ] || { echo "unknown target '$target': no $cfg; run.sh list shows the targets" >&2; exit 2; }
work="${2:-}"
[ -n "$work" ] || work="$(mktemp -d -t "scisr-mutation-$target.XXXXXX")"
children="${3:-2}"
shift $(( $# < 3 ? $# : 3 ))
py="$repo/.venv/bin/python"
"$py" -c "import mutmut" 2>/dev/null || { echo "mutmut missing: $repo/.venv/bin/pip install mutmut" >&2; exit 1; }
mkdir -p "$work"
rm -rf "$work/sciSR" "$work/tests" "$work/recipes" "$work/mutants" "$work/results.txt"
# the package, the whole test tree (conftest files, helpers) and the recipes some tests run
cp -r "$repo/sciSR" "$repo/tests" "$repo/recipes" "$work/"
find "$work/sciSR" "$work/tests" "$work/recipes" -name __pycache__ -prune -exec rm -rf {} +
cp "$cfg" "$work/setup.cfg"
if [ $# -eq 0 ]; then  # a target may restrict itself to some functions: "# mutants: GLOB ..." in its .cfg
    read -r -a globs <<< "$(sed -n 's/^# mutants: //p' "$cfg")"
    set -- "${globs[@]}"
fi
cd "$work"
export PATH="$repo/.venv/bin:$PATH" OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
echo "mutation run of '$target' in $work"
mutmut run --max-children "$children" "$@" || true
mutmut results --all true > results.txt || true
"$py" "$repo/tools/mutation/summary.py" results.txt
