#!/usr/bin/env bash
# CI on a slower machine, imitated: `.ci/run` from a clean clone of HEAD, in a fresh venv,
# with the whole run held to CPUS CPUs' worth of time by a cgroup CPU quota.
#
#   sudo bash benchmarks/ci_at_cpu_limit.sh [CPUS]     # default 1.0: half of a 2-core machine
#
# On a 2-core machine, CPUS=1.0 runs the test suite (two busy workers) about 2x slower, as a
# machine of half the speed would. A single busy process (most of the install) is not slowed:
# the quota is shared by the two cores, so one process alone stays under it. Read the pytest
# time, not the install's. Needs root and a cgroup file system (v2 `cpu.max`, or v1
# `cpu.cfs_quota_us`); it creates the cgroup `kerasnets-ci-limit` and removes it at the end.
# What it measured is in benchmarks/README.md ("The test suite: where CI's time goes").
set -euo pipefail

cpus="${1:-1.0}"
if ! [[ "$cpus" =~ ^[0-9]+(\.[0-9]+)?$ ]] || ! awk -v c="$cpus" 'BEGIN { exit !(c > 0) }'; then
    echo "usage: $0 [CPUS]   (CPUS: a positive number of CPUs, e.g. 1.0; got '$cpus')" >&2
    exit 2
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "$0: needs root, to create a cgroup" >&2
    exit 2
fi

repo="$(cd "$(dirname "$0")/.." && pwd)"
period=10000  # microseconds: a short period spreads the throttling evenly over the run
quota=$(awk -v c="$cpus" -v p="$period" 'BEGIN { printf "%d", c * p }')
name=kerasnets-ci-limit
if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then  # cgroup v2
    group=/sys/fs/cgroup/$name
    echo +cpu > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
    mkdir -p "$group"
    echo "$quota $period" > "$group/cpu.max"
elif [[ -d /sys/fs/cgroup/cpu ]]; then  # cgroup v1
    group=/sys/fs/cgroup/cpu/$name
    mkdir -p "$group"
    echo "$period" > "$group/cpu.cfs_period_us"
    echo "$quota" > "$group/cpu.cfs_quota_us"
else
    echo "$0: no cgroup CPU controller found under /sys/fs/cgroup" >&2
    exit 2
fi

work="$(mktemp -d)"
cleanup() {
    cd /
    rm -rf "$work"
    echo $$ > "$(dirname "$group")/cgroup.procs" 2>/dev/null || true
    rmdir "$group" 2>/dev/null || true
}
trap cleanup EXIT

echo $$ > "$group/cgroup.procs"  # this shell and everything it starts
git clone -q "$repo" "$work/kerasnets"
python3 -m venv "$work/venv"
echo "CPU limit: $cpus of $(nproc) CPUs (quota $quota us per $period us), commit $(git -C "$work/kerasnets" rev-parse --short HEAD)"
cd "$work/kerasnets"
# .ci/run prints the machine, pytest's closing line and the time in all; `time` adds the CPU
# time of the whole run (the install included).
status=0
TIMEFORMAT="CPU limit $cpus: %0R s in all, %0U s user + %0S s system CPU time"
time PATH="$work/venv/bin:$PATH" VIRTUAL_ENV="$work/venv" bash .ci/run || status=$?
exit "$status"
