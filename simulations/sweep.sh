#!/usr/bin/env bash
# Runs a sweep (simulations/sweeps/*.toml): every scenario x setting x seed as a process of its
# own, fanned out by GNU parallel, then merges their results under OUT.
#
#   simulations/sweep.sh simulations/sweeps/baseline.toml results/baseline
#
# JOBS runs so many at once (default: one per two cores; a run keeps about 1.3 cores busy).
# Over ssh: PARALLEL_ARGS='-S 8/host1,8/host2 --basefile results/baseline/sim.test --return {...}'
# are passed to parallel; each host needs this checkout at the same path (or a shared file
# system) for the scenarios and the results. (That path is untested here: one machine.)
set -euo pipefail
sweep=$1 out=$2
cd "$(dirname "$0")/.."
command -v parallel >/dev/null || { echo "sweep: GNU parallel is needed (apt-get install parallel)" >&2; exit 1; }
mkdir -p "$out"
go test -c -o "$out/sim.test" ./simulations
go run ./simulations/cmd/sweep jobs "$sweep" "$out" | sed "s#^\./sim\.test#$out/sim.test#" > "$out/jobs.txt"
echo "sweep: $(wc -l < "$out/jobs.txt") runs, $out/jobs.txt; log of each in $out/logs/"
mkdir -p "$out/logs"
# shellcheck disable=SC2086
parallel -j "${JOBS:-$(( ($(nproc) + 1) / 2 ))}" --joblog "$out/joblog.txt" ${PARALLEL_ARGS:-} \
  --results "$out/logs/{#}" < "$out/jobs.txt" >/dev/null
go run ./simulations/cmd/sweep merge "$out"
