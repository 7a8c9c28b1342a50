#!/usr/bin/env bash
# One client, one webhook at a time: end-to-end latency of a durable ingest
# with GitHub's whole webhook schema as the contract, with a sample contract,
# and of bare Caddy `respond`, in the same run (issue 11's target).
#
#   bash bench/latency.sh            # ROUNDS=3, DUR=8s
#
# Two ways of sending one at a time: closed loop (the next request as soon
# as the answer arrives) and paced (100 requests/s, the machine idles in
# between, so every request also pays for waking the CPUs up). Every
# webhook is a 13.5 KB GitHub `issues.opened` example, accepted (202),
# stored and delivered to a target on 127.0.0.1 while the next one comes.
# Loopback only; a watchdog ends the run after LIMIT seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

ROUNDS=${ROUNDS:-3}
DUR=${DUR:-8s}
LIMIT=${LIMIT:-600}
BASE_PORT=${BASE_PORT:-18700}
GW_PORT=$BASE_PORT
RESPOND_PORT=$((BASE_PORT + 1))
UP_PORT=$((BASE_PORT + 2))
ADMIN_PORT=$((BASE_PORT + 3))
KEY=latencykeylatencykeylatencykey0123456789
WORK=$(mktemp -d /tmp/hookgate-latency.XXXXXX)
PAYLOAD=$ROOT/bench/github-issues-opened.json

log() { echo "latency: $*" >&2; }
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
(sleep "$LIMIT" && log "watchdog: $LIMIT s passed, stopping" && kill -TERM $$) &
PIDS+=($!)

log "building in $WORK"
go build -o "$WORK/hookgate" ./caddy
go build -o "$WORK/loadgen" ./bench/loadgen
gunzip -c schema/testdata/octokit/webhooks-schemas-7.6.1.schema.json.gz >"$WORK/github.schema.json"
cat >"$WORK/Caddyfile" <<CADDY
{
	admin 127.0.0.1:$ADMIN_PORT
	auto_https off
	persist_config off
	hookgate {
		storage_dir $WORK/store
		allow_targets 127.0.0.0/8
	}
}
:$RESPOND_PORT {
	bind 127.0.0.1
	respond 200
}
:$UP_PORT {
	bind 127.0.0.1
	respond \`{}\` 200
}
:$GW_PORT {
	bind 127.0.0.1
	hookgate_ingress /hooks/* {
		workflow github {
			schema $WORK/github.schema.json
			key $KEY
			filter \`body.action == "opened"\`
			forward http://127.0.0.1:$UP_PORT/github
		}
		workflow sample {
			sample $PAYLOAD
			key $KEY
			filter \`body.action == "opened"\`
			forward http://127.0.0.1:$UP_PORT/sample
		}
	}
	respond 404
}
CADDY
"$WORK/hookgate" run --config "$WORK/Caddyfile" >"$WORK/gateway.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
	curl -s -o /dev/null "http://127.0.0.1:$RESPOND_PORT/" && break
	sleep 0.1
done

# run NAME URL RATE: prints "p50 p90 p99 req/s" of one run.
run() {
	"$WORK/loadgen" -url "$2" -method POST -body "$PAYLOAD" -header 'Content-Type: application/json' \
		-c 1 -rate "$3" -d "$DUR" >"$WORK/$1.json"
	python3 - "$WORK/$1.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
bad = {k: v for k, v in d["status_counts"].items() if k not in ("200", "202")}
if bad or d["errors"]:
    sys.exit(f"unexpected answers: {d['status_counts']}, errors {d['errors']}")
print(d["p50_ms"], d["p90_ms"], d["p99_ms"], round(d["rps"]))
PY
}

rows=""
for mode in closed paced; do
	rate=0
	[ "$mode" = paced ] && rate=100
	for round in $(seq "$ROUNDS"); do
		log "$mode loop, round $round"
		for sc in respond github sample; do
			case $sc in
			respond) url=http://127.0.0.1:$RESPOND_PORT/ ;;
			*) url=http://127.0.0.1:$GW_PORT/hooks/$sc/$KEY ;;
			esac
			read -r p50 p90 p99 rps <<<"$(run "$mode-$round-$sc" "$url" "$rate")"
			rows="$rows
| $mode | $round | $sc | $p50 | $p90 | $p99 | $rps |"
		done
	done
done
cat <<EOF
| loop | round | scenario | p50 ms | p90 ms | p99 ms | req/s |
| --- | ---: | --- | ---: | ---: | ---: | ---: |$rows
EOF
log "raw results in $WORK"
