#!/usr/bin/env bash
# Prepare, where PyPI is reachable, what benchmarks/gpu_check.sh installs on the GPU machine (which has no network):
# wheels of the packages in benchmarks/gpu_wheels.txt for its Python (CPython 3.12, x86-64 Linux) and a wheel of
# dgnn itself, built from this tree. Rerun it after every change to dgnn/: gpu_check.sh refuses a stale dgnn wheel.
#
#   benchmarks/gpu_wheels.sh [--python-version 3.12] [--dest benchmarks/wheels]
#
# The destination is git-ignored; name it in the device run's carry list.
set -euo pipefail
cd "$(dirname "$0")/.."
pyver=3.12
dest=benchmarks/wheels
while [ $# -gt 0 ]; do
  case "$1" in
    --python-version) pyver=$2; shift 2 ;;
    --dest) dest=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "gpu_wheels.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
py=${PYTHON:-python}
mapfile -t reqs < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' benchmarks/gpu_wheels.txt)
rm -rf "$dest"
mkdir -p "$dest"
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
"$py" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$pyver" --implementation cp \
  "${platforms[@]}" -d "$dest" "${reqs[@]}"
rm -rf build  # setuptools would carry files deleted from dgnn/ over from an old build/lib into the wheel
"$py" -m pip wheel --quiet --no-deps --no-build-isolation -w "$dest" .
rm -rf build
ls -1 "$dest"
du -sh "$dest" | cut -f1 | sed 's/^/total: /'
