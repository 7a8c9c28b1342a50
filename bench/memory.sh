#!/usr/bin/env bash
# Memory with retained events: RSS of one gateway process as accepted and
# delivered webhooks accumulate in its store, then after a restart on the
# same store. Loopback only, bounded in time (watchdog LIMIT seconds).
#
#   bash bench/memory.sh                  # rows at 0, 100k and 300k events
#   STEPS="100000 300000 1000000" LIMIT=3000 bash bench/memory.sh   # the longer run
#
# Prints a markdown table; the gateway forwards every webhook to an upstream
# on 127.0.0.1 (so every event also has its delivery record), with the
# default 7-day retention: nothing expires during the run.
set -euo pipefail
cd "$(dirname "$0")/.."

STEPS=${STEPS:-"100000 300000"}
RATE=${RATE:-4000}
CONNS=${CONNS:-32}
LIMIT=${LIMIT:-2400}
BASE_PORT=${BASE_PORT:-18500}
GW_PORT=$((BASE_PORT + 1))
ADMIN_PORT=$((BASE_PORT + 2))
UP_PORT=$((BASE_PORT + 3))
KEY=benchmarkkeybenchmarkkeybenchmarkkey01234567
WORK=$(mktemp -d /tmp/hookgate-mem.XXXXXX)
PAYLOAD=$PWD/examples/easylife/groupcreated.json

log() { echo "memory: $*" >&2; }
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
mb() { awk "BEGIN { printf \"%.0f\", $1 / 1024 }"; }

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
(sleep "$LIMIT" && log "watchdog: $LIMIT s passed, stopping" && kill -TERM $$) &
PIDS+=($!)

log "building in $WORK"
go build -o "$WORK/hookgate" ./caddy
go build -o "$WORK/loadgen" ./bench/loadgen
"$WORK/loadgen" -mode upstream -listen "127.0.0.1:$UP_PORT" -d "${LIMIT}s" 2>"$WORK/upstream.log" &
PIDS+=($!)

cat >"$WORK/Caddyfile" <<EOF
{
	admin 127.0.0.1:$ADMIN_PORT
	auto_https off
	persist_config off
	hookgate {
		storage_dir $WORK/store
		allow_targets 127.0.0.0/8
	}
}
:$GW_PORT {
	bind 127.0.0.1
	hookgate_ingress /hooks/* {
		workflow bench {
			sample $PAYLOAD
			key $KEY
			forward http://127.0.0.1:$UP_PORT/ingest
		}
	}
	respond 404
}
EOF

GW_PID=
start_gateway() {
	"$WORK/hookgate" run --config "$WORK/Caddyfile" >"$WORK/gateway.log" 2>&1 &
	GW_PID=$!
	PIDS+=("$GW_PID")
	for _ in $(seq 100); do
		if curl -s -o /dev/null "http://127.0.0.1:$GW_PORT/"; then return; fi
		sleep 0.1
	done
	log "gateway did not start"; tail -20 "$WORK/gateway.log" >&2; exit 1
}
stop_gateway() {
	kill -INT "$GW_PID"
	wait "$GW_PID" 2>/dev/null || true
}
# settle: wait for the deliveries to catch up (SETTLE s) and report VmRSS in
# kB, then wait until IDLE s have passed and report it again: the Go runtime
# forces a GC every 2 minutes when idle, and only the second one frees the
# store's block buffers parked in nats-server's pools, so memory the process
# no longer uses is back with the OS after two of them.
settle() {
	sleep "${SETTLE:-15}"
	busy=$(status_kb "$GW_PID" VmRSS)
	sleep $(( ${IDLE:-270} - ${SETTLE:-15} ))
	# What the idle process holds, for reading with go tool pprof / jq.
	# (settle runs in a subshell: the files it wrote count the calls.)
	n=$(($(find "$WORK" -maxdepth 1 -name 'idle-*.status' | wc -l) + 1))
	curl -s -m 10 -o "$WORK/idle-$n.heap.pprof" "http://127.0.0.1:$ADMIN_PORT/debug/pprof/heap" || true
	curl -s -m 10 -o "$WORK/idle-$n.vars.json" "http://127.0.0.1:$ADMIN_PORT/debug/vars" || true
	cp "/proc/$GW_PID/status" "$WORK/idle-$n.status" 2>/dev/null || true
	cp "/proc/$GW_PID/smaps_rollup" "$WORK/idle-$n.smaps" 2>/dev/null || true
	echo "$busy $(status_kb "$GW_PID" VmRSS)"
}
store_mb() { du -sm "$WORK/store" | cut -f1; }
# accepted FILE: the 202 answers counted by the load generator.
accepted() { sed -n 's/^    "202": \([0-9]*\),\{0,1\}$/\1/p' "$1" | head -1; }

# row LABEL "BUSY IDLE": RSS 15 s after the load and once idle, against fresh.
row() {
	set -- "$1" $2
	echo "| $1 | $(mb "$2") (+$(mb $(($2 - fresh_busy)))) | $(mb "$3") (+$(mb $(($3 - fresh)))) | $(store_mb) |"
}

start_gateway
read -r fresh_busy fresh <<<"$(settle)"
rows=$(row 0 "$fresh_busy $fresh")
sent=0
for target in $STEPS; do
	n=$((target - sent))
	secs=$(((n + RATE - 1) / RATE))
	log "sending $n webhooks at $RATE/s ($secs s)"
	"$WORK/loadgen" -url "http://127.0.0.1:$GW_PORT/hooks/bench/$KEY" -body "$PAYLOAD" \
		-header 'Content-Type: application/json' -c "$CONNS" -rate "$RATE" -d "${secs}s" >"$WORK/load-$target.json"
	sent=$target
	total=$((${total:-0} + $(accepted "$WORK/load-$target.json")))
	rows="$rows
$(row "$total" "$(settle)")"
done
stop_gateway
log "restarting on the same store"
start_gateway
rows="$rows
$(row "$total, after a restart" "$(settle)")"
stop_gateway

cat <<EOF
| retained events | RSS 15 s after the load, MB (vs fresh) | RSS idle ${IDLE:-270} s after the load, MB (vs fresh) | store on disk, MB |
| ---: | ---: | ---: | ---: |
$rows
EOF
log "raw output in $WORK"
