#!/usr/bin/env bash
# The memory peak of every sweep worker process (multiprocessing's spawned children: `spawn_main`
# in their command line), read from the kernel's high-water mark of its resident set (VmHWM in
# /proc/PID/status) every INTERVAL seconds (default 5) until SECONDS_MAX (default 3600) pass or
# no worker has been seen for IDLE seconds (default 120). Prints one line per worker when it is
# last seen: PID, first and last time seen, peak RSS in GiB. A peak reached in the last INTERVAL
# seconds of a process's life is missed.
#   bash scripts/worker_rss.sh > results/cpu_mpnet/worker_rss.txt &
set -uo pipefail
INTERVAL=${INTERVAL:-5} SECONDS_MAX=${SECONDS_MAX:-3600} IDLE=${IDLE:-120}
declare -A peak first last
idle_since=$SECONDS
report() {  # $1: pid
  printf '%s pid %s seen %s-%s peak RSS %.2f GiB\n' "$(date -u +%H:%M:%S)" "$1" "${first[$1]}" "${last[$1]}" \
    "$(echo "${peak[$1]} / 1048576" | bc -l)"
}
echo "# $(date -u +%FT%TZ) sampling VmHWM of spawn_main processes every ${INTERVAL}s"
while [ $SECONDS -lt "$SECONDS_MAX" ]; do
  seen=() now=$(date -u +%H:%M:%S)
  for pid in $(pgrep -f spawn_main); do
    hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null) || continue
    [ -n "$hwm" ] || continue
    seen+=("$pid")
    [ -n "${first[$pid]:-}" ] || first[$pid]=$now
    last[$pid]=$now
    [ "$hwm" -gt "${peak[$pid]:-0}" ] && peak[$pid]=$hwm
  done
  for pid in "${!peak[@]}"; do  # gone since the last sample
    if ! printf '%s\n' "${seen[@]:-}" | grep -qx "$pid"; then report "$pid"; unset "peak[$pid]"; fi
  done
  [ ${#seen[@]} -gt 0 ] && idle_since=$SECONDS
  [ $((SECONDS - idle_since)) -ge "$IDLE" ] && break
  sleep "$INTERVAL"
done
for pid in "${!peak[@]}"; do report "$pid"; done
echo "# $(date -u +%FT%TZ) done"
