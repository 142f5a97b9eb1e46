#!/usr/bin/env bash
# Installs the Debian 12 packages ballast needs, idempotently: quiet and instant when all are present.
#   tools/setup.sh            build + test dependencies (with chromium, for the report's browser test)
#   tools/setup.sh bench      also the benchmark dependencies (Google Benchmark, OpenBLAS peer)
#   tools/setup.sh study      also the main job's dependencies (corpus, plotting)
#   tools/setup.sh fuzz       also clang-14 and its sanitizer/libFuzzer runtime (tools/fuzz.sh)
set -euo pipefail

# Why each package is here: see README.md, "Dependencies".
packages=(g++ make cmake ninja-build libxtensor-dev libxsimd-dev libboost-dev nlohmann-json3-dev libcli11-dev libtomlplusplus-dev catch2
          openmpi-bin libopenmpi-dev slurm-wlm munge python3) # MPI, a one-node Slurm and the comparer of the distributed tests
for group in "$@"; do
    case "$group" in
    bench) packages+=(libbenchmark-dev libopenblas-dev python3) ;;
    study) packages+=(fortunes python3 python3-numpy python3-matplotlib) ;;
    fixtures) packages+=(python3 python3-numpy python3-torch) ;;
    fuzz) packages+=(clang-14 libclang-rt-14-dev) ;;
    *) echo "setup.sh: unknown group '$group' (known: bench, study, fixtures, fuzz)" >&2; exit 2 ;;
    esac
done
# Headless Chromium for the report's browser test, only for the test run (tools/test.sh calls setup.sh without
# groups): the main job does not need it.
[ $# -eq 0 ] && packages+=(chromium)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup.sh: installing ${missing[*]}" >&2
if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh: missing packages (${missing[*]}) and not root; install them with apt-get" >&2
    exit 2
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
