#!/usr/bin/env bash
# The GPU check, in one command and under 8 minutes: installs the wheels that benchmarks/gpu_wheels.sh prepared
# beside the machine's own torch (never replacing it), runs every CUDA test (pytest -m cuda) and the GPU benchmark
# suite, and writes the logs and result tables under $OUT (default: a new folder under /tmp).
#
#   benchmarks/gpu_check.sh [--device cuda|cpu] [--out DIR] [--wheels DIR]
#
# --device cpu is a dry run for a machine without a GPU: the CUDA tests must all skip with their reason and the
# benchmark suite runs at 1/100 of its sizes (benchmarks/throughput.py --small); its numbers mean nothing.
# Files written (at most 8, all at the top of the folder): env.txt (machine, versions, what was installed),
# tests.log, tests.xml (JUnit), bench.log, throughput-<device>.json, throughput-<device>.md, summary.md.
# Exit status: 0 when the tests and the benchmark passed, 1 otherwise, 2 for bad arguments or a bad install.
set -uo pipefail
cd "$(dirname "$0")/.."
device=cuda
wheels=benchmarks/wheels
out=${OUT:-}
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --wheels) wheels=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$device" in cuda|cpu) ;; *) echo "gpu_check.sh: --device must be cuda or cpu, found $device" >&2; exit 2 ;; esac
py=${PYTHON:-python3}
[ -n "$out" ] || out=$(mktemp -d "${TMPDIR:-/tmp}/dgnn-gpu-check.XXXXXX")
mkdir -p "$out"
site=$(mktemp -d "${TMPDIR:-/tmp}/dgnn-site.XXXXXX")
export CUBLAS_WORKSPACE_CONFIG=:4096:8 PYTHONUNBUFFERED=1 MPLBACKEND=Agg
t0=$(date +%s)
say() { echo "[gpu_check $(( $(date +%s) - t0 ))s] $*"; }

# ---- 1. install: each wheel only where the machine lacks its package or has an older one; dgnn always
if ! ls "$wheels"/dgnn-*.whl >/dev/null 2>&1; then
  echo "gpu_check.sh: no dgnn wheel in $wheels; run benchmarks/gpu_wheels.sh first (where PyPI is reachable)" >&2
  exit 2
fi
"$py" - "$wheels" "$site" >"$out/env.txt" 2>&1 <<'PY'
import importlib.metadata as md
import pathlib
import subprocess
import sys

from packaging.version import Version

wheels, site = pathlib.Path(sys.argv[1]), sys.argv[2]
take = []
for whl in sorted(wheels.glob("*.whl")):
    name, version = whl.name.split("-")[:2]
    try:
        have = md.version(name)
    except md.PackageNotFoundError:
        have = None
    if name == "dgnn" or have is None or Version(have) < Version(version):
        take.append(str(whl))
        print(f"install {name} {version}" + (f" (machine has {have})" if have else ""))
    else:
        print(f"keep    {name} {have} (wheel {version})")
if take:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--no-compile",
                    "--no-cache-dir", "--target", site, *take], check=True)
PY
status=$?
if [ $status -ne 0 ]; then cat "$out/env.txt" >&2; echo "gpu_check.sh: install failed" >&2; exit 2; fi
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
if ! diff -rq -x __pycache__ "$site/dgnn" dgnn >/dev/null; then
  echo "gpu_check.sh: the dgnn wheel in $wheels is not this tree's dgnn/; rerun benchmarks/gpu_wheels.sh" >&2
  exit 2
fi
"$py" - "$site" "$device" >>"$out/env.txt" 2>&1 <<'PY'
import platform
import sys

import torch

import dgnn

site, device = sys.argv[1], sys.argv[2]
print(f"python {platform.python_version()} ({sys.executable}); torch {torch.__version__} at {torch.__file__}")
assert not torch.__file__.startswith(site), "torch must be the machine's own, not an installed wheel"
print(f"dgnn {dgnn.__version__} at {dgnn.__file__}")
print(f"cuda available: {torch.cuda.is_available()}; torch.version.cuda {torch.version.cuda}")
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"gpu: {p.name}, {p.total_memory / 2**30:.0f} GiB, {p.multi_processor_count} SMs")
elif device == "cuda":
    sys.exit("--device cuda, but torch sees no CUDA device")
PY
if [ $? -ne 0 ]; then cat "$out/env.txt" >&2; exit 2; fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu \
  --format=csv >>"$out/env.txt" 2>&1
say "installed into $site: $(grep -c '^install' "$out/env.txt") wheels"

# ---- 2. the CUDA tests (every test marked cuda, in every file)
say "CUDA tests"
timeout 240 "$py" -m pytest -m cuda tests -q -rs -p no:cacheprovider --junitxml="$out/tests.xml" >"$out/tests.log" 2>&1
tests_rc=$?
tail -n 3 "$out/tests.log"

# ---- 3. the benchmark suite
say "benchmark"
if [ "$device" = cuda ]; then bench=(--device cuda); else bench=(--device cpu --gpu-suite --small); fi
timeout 210 "$py" benchmarks/throughput.py "${bench[@]}" --out "$out" >"$out/bench.log" 2>&1
bench_rc=$?
tail -n 2 "$out/bench.log"

# ---- 4. summary (printed last: the device tool returns the end of the output)
"$py" - "$out" "$device" "$tests_rc" "$bench_rc" "$(( $(date +%s) - t0 ))" >"$out/summary.md" <<'PY'
import pathlib
import sys
import xml.etree.ElementTree as ET

out, device, tests_rc, bench_rc, seconds = pathlib.Path(sys.argv[1]), sys.argv[2], *map(int, sys.argv[3:])
print(f"# dgnn GPU check, --device {device}, {seconds} s\n")
ok = tests_rc == 0 and bench_rc == 0
junit = out / "tests.xml"
if junit.exists():
    suite = ET.parse(junit).getroot().find("testsuite")
    n = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    print(f"CUDA tests: {n['tests']} run, {n['failures']} failed, {n['errors']} errors, {n['skipped']} skipped "
          f"(exit {tests_rc})")
    for case in suite.iter("testcase"):
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        if bad is not None:
            print(f"- FAILED {case.get('classname')}::{case.get('name')}: {(bad.get('message') or '').splitlines()[0][:160]}")
    if device == "cpu":  # the dry run: nothing may run, everything skips because no CUDA device is there
        reasons = {(s.get("message") or "") for s in suite.iter("skipped")}
        dry_ok = n["tests"] > 0 and n["skipped"] == n["tests"] and all("no CUDA device" in r for r in reasons)
        print(f"dry run: every CUDA test skipped with the no-CUDA reason: {dry_ok}")
        ok = ok and dry_ok
else:
    print(f"CUDA tests: no JUnit file (exit {tests_rc}); see tests.log")
    ok = False
print(f"benchmark: exit {bench_rc}\n")
for md in sorted(out.glob("throughput-*.md")):
    print(md.read_text())
print("PASS" if ok else "FAIL")
PY
cat "$out/summary.md"
say "logs and tables in $out"
tail -n 1 "$out/summary.md" | grep -q '^PASS$'
