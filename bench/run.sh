#!/usr/bin/env bash
# hookgate end-to-end benchmark: hookgate against bare Caddy, in the same run.
#
#   bash bench/run.sh                 # the full suite (< 12 min), writes BENCHMARKS.md
#   PROFILE=ingest bash bench/run.sh  # one scenario with a CPU profile (pprof top);
#                                     # PROFILE=ingest|passthrough|deliver|respond|proxy
#                                     # (PROFILE=deliver DELIVER_BATCH=100: batch publishing)
#
# Loopback only: every listener binds 127.0.0.1, every request goes to
# 127.0.0.1. Every step is bounded in time, and a watchdog ends the whole run
# after LIMIT seconds. Knobs (environment): CONNS (64), DUR (8s), WARM (2s),
# ROUNDS (7), BASE_PORT (18400), LIMIT (720), KEEP (1: keep the work dir's
# results and logs),
# WRITE (1: write BENCHMARKS.md), QUIET_PCT (20), DELIVER_N (20000), DELIVER_C (32),
# DELIVER_REPS (3), DELIVER_BATCH (100: events a request of the batch
# publishing measurement e1b), LAT_RATE (1000), LAT_SECONDS (10), HOOKGATE_BIN
# (a prebuilt binary instead of `go build ./caddy`), PAIR (two scenarios alone,
# e.g. "proxy passthrough": see "pair mode"), LOG_OUTPUT (buffered: the
# default log through `output buffered`, as deploy/Caddyfile has it; stderr:
# Caddy's default, a write a line).
#
# The load generator and the gateway are NOT pinned: both share the machine's
# cores (2 on the development machine), as do the upstream and the sink. Ratios
# against bare Caddy measured in the same run carry the same handicap.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

CONNS=${CONNS:-64}
DUR=${DUR:-8s}
WARM=${WARM:-2s}
ROUNDS=${ROUNDS:-7}
BASE_PORT=${BASE_PORT:-18400}
LIMIT=${LIMIT:-720}
KEEP=${KEEP:-1}
WRITE=${WRITE:-1}
PROFILE=${PROFILE:-}
PAIR=${PAIR:-}
DELIVER_N=${DELIVER_N:-20000}
DELIVER_C=${DELIVER_C:-32}
DELIVER_REPS=${DELIVER_REPS:-3}
# PROFILE=deliver publishes one event a request unless DELIVER_BATCH is set.
PROFILE_BATCH=${DELIVER_BATCH:-0}
DELIVER_BATCH=${DELIVER_BATCH:-100}
QUIET_PCT=${QUIET_PCT:-20}
LAT_RATE=${LAT_RATE:-1000}
LAT_SECONDS=${LAT_SECONDS:-10}
LOG_OUTPUT=${LOG_OUTPUT:-buffered}
case $LOG_OUTPUT in
buffered | stderr) ;;
*)
	echo "bench: LOG_OUTPUT is buffered or stderr" >&2
	exit 2
	;;
esac
case $DELIVER_BATCH in
[1-9] | [1-9][0-9] | [1-9][0-9][0-9] | 1000) ;;
*)
	echo "bench: DELIVER_BATCH is 1 to 1000 (events a request of POST /events/batch)" >&2
	exit 2
	;;
esac

GW_PORT=$((BASE_PORT + 1))
ADMIN_PORT=$((BASE_PORT + 2))
UP_PORT=$((BASE_PORT + 3))
SINK_PORT=$((BASE_PORT + 4))

KEY=bench-key-0123456789abcdef0123456789abcdef
TOKEN=bench-token-0123456789abcdef0123456789
PAYLOAD=$ROOT/examples/easylife/groupcreated.json
# (c'') ingestgh: GitHub's whole webhook schema (@octokit/webhooks-schemas
# 7.6.1, unpacked from schema/testdata at build time) as the contract, and an
# official "issues opened" example (@octokit/webhooks-examples 7.6.1) as body.
GH_PAYLOAD=$ROOT/bench/github-issues-opened.json
GH_SCHEMA_GZ=$ROOT/schema/testdata/octokit/webhooks-schemas-7.6.1.schema.json.gz
GH_FILTER='`body.action == "opened"`'
HOOK_URL=http://127.0.0.1:$GW_PORT/hooks/bench/$KEY
FILTER='`body.eventType in ["groupcreated", "sharepointcreated"]`'
CLK_TCK=$(getconf CLK_TCK)

START_TS=$(date +%s)
WORK=$(mktemp -d /tmp/hookgate-bench.XXXXXX)
GH_SCHEMA=$WORK/github-webhooks.schema.json
GW_PID=
UP_PID=
SAMPLER_PID=
WATCHDOG_PID=

log() { printf '[bench %3ds] %s\n' $(($(date +%s) - START_TS)) "$*" >&2; }

stop_pid() { # pid [grace seconds]
	local pid=$1 grace=${2:-10} i
	[ -n "$pid" ] || return 0
	kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < grace * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	stop_pid "$SAMPLER_PID" 1
	stop_pid "$GW_PID"
	stop_pid "$UP_PID" 3
	[ -n "$WATCHDOG_PID" ] && kill "$WATCHDOG_PID" 2>/dev/null || true
	rm -rf "$WORK"/*/store "$WORK"/*/data
	# The binaries are 100 MB; a profile needs the gateway's to be read.
	[ -n "$PROFILE" ] || rm -f "$WORK/hookgate" "$WORK/loadgen"
	if [ "$KEEP" = 1 ]; then
		log "raw results and logs: $WORK"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# The whole run is bounded: the watchdog ends it after LIMIT seconds.
(
	for ((i = 0; i < LIMIT; i++)); do sleep 1; done
	echo "[bench] overall time limit of ${LIMIT}s reached: stopping" >&2
	kill -TERM $$ 2>/dev/null
) &
WATCHDOG_PID=$!

port_busy() { (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# jget FILE KEY: a top-level number of the load generator's JSON (indented).
jget() { sed -n "s/^  \"$2\": \([^,]*\),\{0,1\}$/\1/p" "$1" | head -1; }
# jstatus FILE CODE: the count of one status code (first status map).
jstatus() {
	local v
	v=$(sed -n "s/^    \"$2\": \([0-9]*\),\{0,1\}$/\1/p" "$1" | head -1)
	echo "${v:-0}"
}
calc() { awk "BEGIN { printf \"%.${2:-2}f\", $1 }"; }
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
maxof() { printf '%s\n' "$@" | sort -g | tail -1; }
dur_s() { local d=$1; d=${d%s}; echo "$d"; }
# user + nice + system + steal (irq and softirq time, much of it the loopback
# network stack, is left out: the kernel charges it to no process).
sys_busy() { awk '$1 == "cpu" { print $2 + $3 + $4 + $9; exit }' /proc/stat; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# ------------------------------------------------------------------ build
for p in $GW_PORT $ADMIN_PORT $UP_PORT $SINK_PORT; do
	if port_busy "$p"; then
		echo "bench: 127.0.0.1:$p is in use; set BASE_PORT to a free range" >&2
		exit 1
	fi
done
if [ -n "${HOOKGATE_BIN:-}" ]; then
	log "using the gateway binary $HOOKGATE_BIN; building the load generator"
	cp "$HOOKGATE_BIN" "$WORK/hookgate"
else
	log "building the gateway and the load generator"
	go build -o "$WORK/hookgate" ./caddy
fi
go build -o "$WORK/loadgen" ./bench/loadgen
gunzip -c "$GH_SCHEMA_GZ" >"$GH_SCHEMA"
LOADGEN=$WORK/loadgen

"$LOADGEN" -mode upstream -listen "127.0.0.1:$UP_PORT" -d "${LIMIT}s" 2>"$WORK/upstream.log" &
UP_PID=$!

# ------------------------------------------------------------------ configs
global_block() { # scenario
	cat <<EOF
{
	admin 127.0.0.1:$ADMIN_PORT
	auto_https off
	persist_config off
	log {
		output $LOG_OUTPUT
	}
EOF
	case $1 in
	ingest | ingestq | ingestgh | passthrough)
		cat <<EOF
	hookgate {
		storage_dir $2/store
		allow_targets 127.0.0.0/8
	}
EOF
		;;
	deliver)
		cat <<EOF
	hookgate {
		storage_dir $2/store
		allow_targets 127.0.0.0/8
		topic bench.tick {
			description "benchmark events"
		}
		subscription bench-sink {
			topics bench.tick
			url http://127.0.0.1:$SINK_PORT/sink
		}
	}
EOF
		;;
	esac
	echo "}"
}

ingress_forwarding() { # target URL: the ingest workflow, forwarding there
	cat <<EOF
	hookgate_ingress /hooks/* {
		workflow bench {
			sample $PAYLOAD
			key $KEY
			filter $FILTER
			forward $1
		}
	}
	respond 404
EOF
}

site_block() { # scenario
	echo ":$GW_PORT {"
	echo "	bind 127.0.0.1"
	case $1 in
	respond) echo "	respond 200" ;;
	proxy) echo "	reverse_proxy 127.0.0.1:$UP_PORT" ;;
	ingest) ingress_forwarding "http://127.0.0.1:$UP_PORT/ingest" ;;
	# ingestq: the target refuses connections, so accepted events queue
	# durably (its circuit opens; the rest wait, deferred), as during an outage
	# of the app behind; this isolates the cost of durable ingest.
	ingestq) ingress_forwarding "http://127.0.0.1:1/down" ;;
	ingestgh)
		cat <<EOF
	hookgate_ingress /hooks/* {
		workflow bench {
			schema $GH_SCHEMA
			key $KEY
			filter $GH_FILTER
			forward http://127.0.0.1:$UP_PORT/ingest
		}
	}
	respond 404
EOF
		;;
	passthrough)
		cat <<EOF
	hookgate_ingress /hooks/* {
		workflow bench {
			sample $PAYLOAD
			key $KEY
			filter $FILTER
		}
	}
	reverse_proxy 127.0.0.1:$UP_PORT
EOF
		;;
	deliver)
		cat <<EOF
	hookgate_api /api/hookgate/* {
		token $TOKEN
	}
	respond 404
EOF
		;;
	esac
	echo "}"
}

# payload SCENARIO: the body the scenario POSTs.
payload() { case $1 in ingestgh) echo "$GH_PAYLOAD" ;; *) echo "$PAYLOAD" ;; esac; }

# start_gateway SCENARIO DIR: starts the binary, waits until it answers.
start_gateway() {
	local sc=$1 dir=$2 i code
	mkdir -p "$dir"
	{
		global_block "$sc" "$dir"
		site_block "$sc"
	} >"$dir/Caddyfile"
	XDG_DATA_HOME=$dir/data XDG_CONFIG_HOME=$dir/config \
		"$WORK/hookgate" run --config "$dir/Caddyfile" --adapter caddyfile >"$dir/gateway.log" 2>&1 &
	GW_PID=$!
	for ((i = 0; i < 300; i++)); do
		kill -0 "$GW_PID" 2>/dev/null || {
			echo "bench: the gateway exited at start ($sc); its log:" >&2
			tail -20 "$dir/gateway.log" >&2
			exit 1
		}
		case $sc in
		deliver) code=$(curl -s -o /dev/null -w '%{http_code}' -m 2 -H "Authorization: Bearer $TOKEN" \
			"http://127.0.0.1:$GW_PORT/api/hookgate/topics" || true) ;;
		*) code=$(curl -s -o /dev/null -w '%{http_code}' -m 2 -X POST -H 'Content-Type: application/json' \
			--data-binary "@$(payload "$sc")" "$HOOK_URL" || true) ;;
		esac
		case $code in 000 | 503 | "") sleep 0.1 ;; *) return 0 ;; esac
	done
	echo "bench: the gateway did not become ready within 30s ($sc)" >&2
	exit 1
}

stop_gateway() {
	stop_pid "$GW_PID"
	GW_PID=
	for ((i = 0; i < 50; i++)); do port_busy "$GW_PORT" || break; sleep 0.1; done
}

# RSS sampler: the largest VmRSS seen while it runs, in kB, into FILE.
start_sampler() { # file
	local out=$1
	(
		max=0
		while kill -0 "$GW_PID" 2>/dev/null; do
			v=$(status_kb "$GW_PID" VmRSS)
			[ "${v:-0}" -gt "$max" ] && max=$v && echo "$max" >"$out"
			sleep 0.2
		done
	) &
	SAMPLER_PID=$!
}
stop_sampler() { stop_pid "$SAMPLER_PID" 1; SAMPLER_PID=; }

load() { # out-file duration [body file]
	local secs
	secs=$(dur_s "$2")
	timeout $((secs + 30)) "$LOADGEN" -url "$HOOK_URL" -method POST -body "${3:-$PAYLOAD}" \
		-header 'Content-Type: application/json' -c "$CONNS" -d "$2" >"$1"
}

expected_status() { case $1 in ingest | ingestq | ingestgh) echo 202 ;; *) echo 200 ;; esac; }

# run_http SCENARIO ROUND: one measured run; appends "scenario round rps p50 p90 p99 gwcpu lgcpu hwm rssmax ok" to results.
run_http() {
	local sc=$1 r=$2 dir="$WORK/$1-$2" t0 t1 u0 u1 s0 s1 ok want n other
	start_gateway "$sc" "$dir"
	load "$dir/warmup.json" "$WARM" "$(payload "$sc")"
	start_sampler "$dir/rss_max_kb"
	t0=$(cpu_ticks "$GW_PID")
	u0=$(cpu_ticks "$UP_PID")
	s0=$(sys_busy)
	load "$dir/load.json" "$DUR" "$(payload "$sc")"
	t1=$(cpu_ticks "$GW_PID")
	u1=$(cpu_ticks "$UP_PID")
	s1=$(sys_busy)
	local hwm
	hwm=$(status_kb "$GW_PID" VmHWM)
	stop_sampler
	stop_gateway
	rm -rf "$dir/store" "$dir/data"
	want=$(expected_status "$sc")
	n=$(jget "$dir/load.json" requests)
	ok=$(jstatus "$dir/load.json" "$want")
	local good=yes
	if [ "${n:-0}" -eq 0 ] || [ "$((ok * 100))" -lt "$((n * 99))" ]; then
		good=no
		log "WARNING: $sc round $r: only $ok of $n requests answered $want (see $dir)"
	fi
	# CPU the rest of the machine used meanwhile (a noise indicator): all busy
	# time minus the gateway, the load generator and the upstream.
	other=$(calc "(($s1 - $s0) - ($t1 - $t0) - ($u1 - $u0)) / $CLK_TCK - $(jget "$dir/load.json" loadgen_cpu_s)")
	awk "BEGIN { exit !($other < 0) }" && other=0.00
	echo "$sc $r $(jget "$dir/load.json" rps) $(jget "$dir/load.json" p50_ms) $(jget "$dir/load.json" p90_ms)" \
		"$(jget "$dir/load.json" p99_ms) $(calc "($t1 - $t0) / $CLK_TCK") $(jget "$dir/load.json" loadgen_cpu_s)" \
		"$hwm $(cat "$dir/rss_max_kb" 2>/dev/null || echo 0) $good $(calc "($u1 - $u0) / $CLK_TCK") $other" >>"$WORK/results.txt"
	log "$sc round $r: $(jget "$dir/load.json" rps) req/s, p50 $(jget "$dir/load.json" p50_ms) ms, $ok/$n x $want"
}

deliver_run() { # out-file n rate conns wait [batch: events a request, 0: one to POST /events]
	local budget
	budget=$(($5 + 30))
	[ "$3" != 0 ] && budget=$((budget + $2 / $3))
	timeout "$budget" "$LOADGEN" -mode deliver -url "http://127.0.0.1:$GW_PORT/api/hookgate/events" \
		-header "Authorization: Bearer $TOKEN" -header 'Content-Type: application/json' \
		-listen "127.0.0.1:$SINK_PORT" -topic bench.tick -n "$2" -rate "$3" -c "$4" -wait "${5}s" \
		-batch "${6:-0}" >"$1"
}

# ------------------------------------------------------------------ profile mode
if [ -n "$PROFILE" ]; then
	case $PROFILE in respond | proxy | ingest | ingestq | ingestgh | passthrough | deliver) ;; *)
		echo "bench: PROFILE is one of respond, proxy, ingest, ingestq, ingestgh, passthrough, deliver" >&2
		exit 2
		;;
	esac
	dir=$WORK/profile-$PROFILE
	start_gateway "$PROFILE" "$dir"
	secs=$(dur_s "$DUR")
	if [ "$PROFILE" = deliver ]; then
		log "profiling delivery: $DELIVER_N events, $DELIVER_C publishers, batch $PROFILE_BATCH (0: one event a request)"
		deliver_run "$dir/warmup.json" 1000 0 "$DELIVER_C" 30 "$PROFILE_BATCH"
		curl -s -m $((secs + 20)) -o "$dir/cpu.pprof" \
			"http://127.0.0.1:$ADMIN_PORT/debug/pprof/profile?seconds=$secs" &
		prof=$!
		deliver_run "$dir/run.json" "$DELIVER_N" 0 "$DELIVER_C" 90 "$PROFILE_BATCH"
	else
		load "$dir/warmup.json" "$WARM" "$(payload "$PROFILE")"
		curl -s -m $((secs + 20)) -o "$dir/cpu.pprof" \
			"http://127.0.0.1:$ADMIN_PORT/debug/pprof/profile?seconds=$secs" &
		prof=$!
		load "$dir/run.json" "$DUR" "$(payload "$PROFILE")"
	fi
	wait "$prof" || true
	curl -s -m 10 -o "$dir/heap.pprof" "http://127.0.0.1:$ADMIN_PORT/debug/pprof/heap" || true
	stop_gateway
	cat "$dir/run.json"
	echo "== CPU profile ($dir/cpu.pprof): top by flat"
	go tool pprof -top -nodecount=35 "$WORK/hookgate" "$dir/cpu.pprof" 2>/dev/null | head -45
	echo "== CPU profile: top by cumulative"
	go tool pprof -top -cum -nodecount=60 "$WORK/hookgate" "$dir/cpu.pprof" 2>/dev/null | head -70
	echo "== heap in use"
	go tool pprof -top -sample_index=inuse_space -nodecount=15 "$WORK/hookgate" "$dir/heap.pprof" 2>/dev/null | head -25
	exit 0
fi

# ------------------------------------------------------------------ pair mode
# PAIR="proxy passthrough": the two scenarios only, ROUNDS rounds, each round
# A then B (B then A every other round); prints the round-by-round ratios of
# B over A and their median and quartiles, and writes nothing. For a ratio
# near its target, where 7 rounds of the full suite decide by chance.
if [ -n "$PAIR" ]; then
	read -r pa pb extra <<<"$PAIR"
	for sc in $pa $pb; do
		case $sc in respond | proxy | ingest | ingestq | ingestgh | passthrough) ;; *)
			echo "bench: PAIR is two of respond, proxy, ingest, ingestq, ingestgh, passthrough" >&2
			exit 2
			;;
		esac
	done
	if [ -z "$pb" ] || [ -n "$extra" ]; then
		echo "bench: PAIR is two scenarios, e.g. PAIR=\"proxy passthrough\"" >&2
		exit 2
	fi
	: >"$WORK/results.txt"
	log "pair: $ROUNDS round(s) of $pa and $pb (backwards every other round); $CONNS connections, warm-up $WARM, $DUR each"
	for ((r = 1; r <= ROUNDS; r++)); do
		order="$pa $pb"
		((r % 2 == 0)) && order="$pb $pa"
		for sc in $order; do
			run_http "$sc" "$r"
		done
	done
	awk -v a="$pa" -v b="$pb" '$1 == a { x[$2] = $3; cx[$2] = $13 } $1 == b { y[$2] = $3; cy[$2] = $13 }
		END { n = 0
			for (r in x) if (r in y && x[r] > 0) { v[++n] = y[r] / x[r]; printf "round %d: %s %.0f req/s, %s %.0f req/s, ratio %.3f (other CPU s %s / %s)\n", r, a, x[r], b, y[r], v[n], cx[r], cy[r] }
			for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
			med = n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
			printf "%s / %s over %d rounds: median %.3f, quartiles %.3f–%.3f, range %.3f–%.3f\n", b, a, n, med, v[int((n + 3) / 4)], v[n + 1 - int((n + 3) / 4)], v[1], v[n] }' "$WORK/results.txt" | sort -V
	stop_pid "$UP_PID" 3
	UP_PID=
	exit 0
fi

# ------------------------------------------------------------------ suite
: >"$WORK/results.txt"
log "work dir $WORK; $ROUNDS round(s) of respond, ingestq, ingest, proxy, passthrough, ingestgh (backwards every other round); $CONNS connections, warm-up $WARM, $DUR each"
for ((r = 1; r <= ROUNDS; r++)); do
	# Each scenario runs next to the one it is compared with (ingestq with
	# respond, ingest and passthrough on either side of proxy), and every
	# other round runs the order backwards (ABBA): a drift of the machine's
	# speed in the course of a round then weighs on both sides of a ratio
	# alike instead of always favouring the scenario that runs first.
	order="respond ingestq ingest proxy passthrough ingestgh"
	if ((r % 2 == 0)); then
		order="ingestgh passthrough proxy ingest ingestq respond"
	fi
	for sc in $order; do
		run_http "$sc" "$r"
	done
done

# deliver_max LABEL BATCH: DELIVER_REPS max-throughput runs of DELIVER_N
# events, BATCH events a request (0: one event a request to POST /events);
# "run events/s gateway-cpu loadgen-cpu other-cpu" a line in $WORK/LABEL.txt.
# The run with the median events/s stands for the measurement: $dir/LABEL.json,
# and its line in $WORK/LABEL.med.
deliver_max() {
	local label=$1 batch=$2 k t0 t1 s0 s1 lg other med what="one event a request"
	[ "$batch" != 0 ] && what="$batch events a request"
	: >"$WORK/$label.txt"
	for ((k = 1; k <= DELIVER_REPS; k++)); do
		log "delivery ($label): max throughput $k/$DELIVER_REPS, $DELIVER_N events, $DELIVER_C publishers, $what"
		t0=$(cpu_ticks "$GW_PID")
		s0=$(sys_busy)
		deliver_run "$dir/$label-$k.json" "$DELIVER_N" 0 "$DELIVER_C" 90 "$batch"
		t1=$(cpu_ticks "$GW_PID")
		s1=$(sys_busy)
		lg=$(jget "$dir/$label-$k.json" loadgen_cpu_s)
		other=$(calc "(($s1 - $s0) - ($t1 - $t0)) / $CLK_TCK - $lg")
		awk "BEGIN { exit !($other < 0) }" && other=0.00
		echo "$k $(jget "$dir/$label-$k.json" events_per_s) $(calc "($t1 - $t0) / $CLK_TCK") $lg $other" >>"$WORK/$label.txt"
		log "delivery ($label): $(jget "$dir/$label-$k.json" events_per_s) events/s, $(jget "$dir/$label-$k.json" missing) missing"
	done
	med=$(sort -k2,2g "$WORK/$label.txt" | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
	cp "$dir/$label-$med.json" "$dir/$label.json"
	awk -v k="$med" '$1 == k' "$WORK/$label.txt" >"$WORK/$label.med"
}

# (e) delivery: one gateway, a warm-up, max throughput publishing one event a
# request (e1), then in batches (e1b), then latency at LAT_RATE.
dir=$WORK/deliver
start_gateway deliver "$dir"
log "delivery: warm-up"
deliver_run "$dir/warmup.json" 1000 0 "$DELIVER_C" 30
start_sampler "$dir/rss_max_kb"
deliver_max max 0
deliver_max maxb "$DELIVER_BATCH"
log "delivery: latency at $LAT_RATE events/s for ${LAT_SECONDS}s"
deliver_run "$dir/lat.json" $((LAT_RATE * LAT_SECONDS)) "$LAT_RATE" 16 30
D_HWM=$(status_kb "$GW_PID" VmHWM)
stop_sampler
stop_gateway
D_RSSMAX=$(cat "$dir/rss_max_kb" 2>/dev/null || echo 0)
stop_pid "$UP_PID" 3
UP_PID=

# ------------------------------------------------------------------ report
col() { awk -v s="$1" -v c="$2" '$1 == s { print $c }' "$WORK/results.txt"; }
# A round is noisy when the rest of the machine used more than QUIET_PCT % of
# the CPU during it; medians are taken over the quiet rounds when there are
# at least two, else over all rounds.
NOISY_S=$(calc "$QUIET_PCT / 100 * $(nproc) * $(dur_s "$DUR")")
quiet_rows() { awk -v s="$1" -v t="$NOISY_S" '$1 == s && $13 <= t' "$WORK/results.txt"; }
qcol() {
	if [ "$(quiet_rows "$1" | wc -l)" -ge 2 ]; then
		quiet_rows "$1" | awk -v c="$2" '{ print $c }'
	else
		col "$1" "$2"
	fi
}
med() { median $(qcol "$1" "$2"); }
nquiet() { local n; n=$(quiet_rows "$1" | wc -l); [ "$n" -ge 2 ] && echo "$n" || echo "$ROUNDS (all: too few quiet)"; }
# paired SC BASE: SC's req/s over BASE's, round by round ("a/b/…", a round
# noisy for either marked *): the two ran one after the other, so the
# machine's drift between rounds cancels out of each ratio.
paired() {
	awk -v s="$1" -v b="$2" -v t="$NOISY_S" '$1 == s { x[$2] = $3; nx[$2] = ($13 > t) } $1 == b { y[$2] = $3; ny[$2] = ($13 > t) }
		END { n = 0; for (r in x) if (r in y && y[r] > 0) { v[++n] = x[r] / y[r]; k[n] = r + 0; z[n] = (nx[r] || ny[r]) ? "*" : "" }
			for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (k[j] < k[i]) { t = k[i]; k[i] = k[j]; k[j] = t; t = v[i]; v[i] = v[j]; v[j] = t; t = z[i]; z[i] = z[j]; z[j] = t }
			for (i = 1; i <= n; i++) { printf "%s%.2f%s", sep, v[i], z[i]; sep = "/" } }' "$WORK/results.txt"
}
# pmed SC BASE: the median of SC's req/s over BASE's, round by round, over
# the rounds quiet for both (all rounds when fewer than two are): the SPEC
# verdicts. Each ratio divides two runs made one after the other.
pmed() {
	awk -v s="$1" -v b="$2" -v t="$NOISY_S" '$1 == s { x[$2] = $3; qx[$2] = ($13 <= t) } $1 == b { y[$2] = $3; qy[$2] = ($13 <= t) }
		END { n = 0; m = 0
			for (r in x) if (r in y && y[r] > 0) { a[++n] = x[r] / y[r]; if (qx[r] && qy[r]) q[++m] = x[r] / y[r] }
			if (m >= 2) { n = m; for (i = 1; i <= m; i++) a[i] = q[i] }
			for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
			if (n > 0) printf "%.2f\n", (n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2); else print 0 }' "$WORK/results.txt"
}
allrps() { awk -v s="$1" -v t="$NOISY_S" '$1 == s { printf "%s%s%s", sep, $3, ($13 > t ? "*" : ""); sep = "/" } END { print "" }' "$WORK/results.txt"; }
valid() { if [ "$(col "$1" 11 | grep -c no || true)" != 0 ]; then echo " ⚠"; fi; }

R_RESP=$(med respond 3)
R_PROXY=$(med proxy 3)
R_ING=$(med ingest 3)
R_INGQ=$(med ingestq 3)
R_PASS=$(med passthrough 3)

ING_HWM=$(maxof $(col ingest 9))
ING_RSSMAX=$(maxof $(col ingest 10))

M_EPS=$(jget "$dir/max.json" events_per_s)
M_MISS=$(jget "$dir/max.json" missing)
MB_EPS=$(jget "$dir/maxb.json" events_per_s)
MB_MISS=$(jget "$dir/maxb.json" missing)
# The SPEC row takes the better of the two ways of publishing.
if awk "BEGIN { exit !($MB_EPS > $M_EPS) }"; then
	B_EPS=$MB_EPS B_MISS=$MB_MISS B_NAME="(e1b), batches of $DELIVER_BATCH"
else
	B_EPS=$M_EPS B_MISS=$M_MISS B_NAME="(e1), one event a request"
fi
# deliver_detail LABEL: the detail column of a max-throughput row.
deliver_detail() {
	local j=$dir/$1.json
	printf 'runs: %s ev/s. Median run: %s of %s received, %s missing, %s duplicates; receive window %s ev/s; publish %s ev/s (%s publishers, %s requests); latency p50 %s ms, p99 %s ms; CPU s gateway %s / loadgen (publishers + sink) %s / other %s over %s s' \
		"$(awk '{ print $2 }' "$WORK/$1.txt" | paste -sd/ -)" "$(jget "$j" received)" "$(jget "$j" published)" \
		"$(jget "$j" missing)" "$(jget "$j" duplicates)" "$(jget "$j" receive_window_events_per_s)" "$(jget "$j" publish_rps)" \
		"$DELIVER_C" "$(jget "$j" publish_requests)" "$(jget "$j" p50_ms)" "$(jget "$j" p99_ms)" \
		"$(awk '{ print $3 }' "$WORK/$1.med")" "$(jget "$j" loadgen_cpu_s)" "$(awk '{ print $5 }' "$WORK/$1.med")" "$(jget "$j" total_s)"
}
L_P50=$(jget "$dir/lat.json" p50_ms)
L_P90=$(jget "$dir/lat.json" p90_ms)
L_P99=$(jget "$dir/lat.json" p99_ms)
L_RECV=$(jget "$dir/lat.json" received)
L_PUBL=$(jget "$dir/lat.json" published)
L_PUB=$(jget "$dir/lat.json" publish_rps)
L_MISS=$(jget "$dir/lat.json" missing)

pf() { if awk "BEGIN { exit !($1) }"; then echo "**PASS**"; else echo "**FAIL**"; fi; }
mb() { calc "$1 / 1024" 1; }

X_ING_RESP=$(calc "$R_ING / $R_RESP")
X_ING_PROXY=$(pmed ingest proxy)
X_PASS_PROXY=$(pmed passthrough proxy)
X_INGQ_RESP=$(pmed ingestq respond)
M_ING_PROXY=$(calc "$R_ING / $R_PROXY")
M_PASS_PROXY=$(calc "$R_PASS / $R_PROXY")
M_INGQ_RESP=$(calc "$R_INGQ / $R_RESP")
PEAK_KB=$(maxof "$ING_HWM" "$D_HWM")

row() { # scenario label
	printf '| %s | %s%s | %s | %s | %s | %s | %s / %s / %s / %s | %s | %s |\n' "$2" "$(med "$1" 3)" "$(valid "$1")" \
		"$(calc "$(med "$1" 3) / $R_RESP")" "$(med "$1" 4)" "$(med "$1" 5)" "$(med "$1" 6)" \
		"$(med "$1" 7)" "$(med "$1" 8)" "$(med "$1" 12)" "$(med "$1" 13)" "$(nquiet "$1")" "$(allrps "$1")"
}

report() {
	cat <<EOF
### HTTP ingress — $CONNS keep-alive connections, ${DUR} per run after ${WARM} warm-up, $ROUNDS interleaved rounds (every other round backwards)

Body: \`examples/easylife/groupcreated.json\` (986 B) POSTed to \`/hooks/bench/{key}\` with \`Content-Type: application/json\` in every scenario
but (c''), which POSTs \`bench/github-issues-opened.json\` ($(wc -c <"$GH_PAYLOAD") B, an official GitHub example).
Every figure is the median over the quiet rounds (a round marked \`*\` is noisy: other processes used
more than ${QUIET_PCT} % of the machine's CPU, ${NOISY_S} s, during it).

| scenario | req/s | × respond | p50 ms | p90 ms | p99 ms | CPU s: gateway / loadgen / upstream / other | rounds used | req/s per round |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |
$(row respond "(a) bare Caddy \`respond 200\`")
$(row proxy "(b) bare Caddy \`reverse_proxy\` → upstream")
$(row ingest "(c) hookgate durable ingest (key + contract + filter + JetStream write → 202), delivered to the upstream meanwhile")
$(row ingestq "(c') the same, target down: events queue durably (refused attempts open the target's circuit; the events then wait in the stream, deferred)")
$(row ingestgh "(c'') durable ingest as (c), with GitHub's whole webhook schema as the contract (\`oneOf\` of 66 events) and a GitHub \`issues\` payload")
$(row passthrough "(d) hookgate passthrough (key + contract + filter → \`reverse_proxy\`)")

### Delivery — one subscription (standard envelope) to the load generator's sink

The sink is a minimal HTTP/1.1 server (\`bench/loadgen/sink.go\`), as \`wrk\` is a minimal client.

| measurement | value | detail |
| --- | ---: | --- |
| (e1) max throughput, one event a request (\`POST /events\`), events/s (publish start → last receipt), median of $DELIVER_REPS | $M_EPS | $(deliver_detail max) |
| (e1b) max throughput, $DELIVER_BATCH events a request (\`POST /events/batch\`), the same $DELIVER_N events, events/s, median of $DELIVER_REPS | $MB_EPS | $(deliver_detail maxb) |
| (e2) publish→receipt p50 at $LAT_RATE events/s, ms | $L_P50 | p90 $L_P90 ms, p99 $L_P99 ms; $L_RECV of $L_PUBL received, $L_MISS missing; publish rate $L_PUB ev/s for ${LAT_SECONDS}s |
| (f) gateway RSS during (c), MB | $(mb "$ING_HWM") VmHWM | max sampled VmRSS $(mb "$ING_RSSMAX") MB (worst of $ROUNDS rounds) |
| (f) gateway RSS during (e), MB | $(mb "$D_HWM") VmHWM | max sampled VmRSS $(mb "$D_RSSMAX") MB |

### Against the SPEC targets (ratios from this run)

A ratio's verdict is the median of its round-by-round ratios (each divides two runs made one after
the other, in the order \`respond ingestq ingest proxy passthrough ingestgh\`, backwards every other
round; a round noisy for either side is marked \`*\` and left out); the ratio of the medians is given
beside it.

| target | measured | required | result |
| --- | ---: | ---: | --- |
| durable ingest, one target, deliveries running / \`reverse_proxy\` | ${X_ING_PROXY}× (per round $(paired ingest proxy); ratio of the medians $R_ING / $R_PROXY req/s = ${M_ING_PROXY}×) | ≥ 1.0× | $(pf "$X_ING_PROXY >= 1.0") |
| durable ingest, target down (events queue) / \`respond\` | ${X_INGQ_RESP}× (per round $(paired ingestq respond); ratio of the medians $R_INGQ / $R_RESP req/s = ${M_INGQ_RESP}×) | ≥ 0.4× | $(pf "$X_INGQ_RESP >= 0.4") |
| passthrough / \`reverse_proxy\` | ${X_PASS_PROXY}× (per round $(paired passthrough proxy); ratio of the medians $R_PASS / $R_PROXY req/s = ${M_PASS_PROXY}×) | ≥ 0.95× | $(pf "$X_PASS_PROXY >= 0.95") |
| delivery throughput to one subscriber (the better of e1 and e1b: $B_NAME) | $B_EPS ev/s = $(calc "$B_EPS / 10000")× target, $(calc "$B_EPS / $R_RESP")× \`respond\` req/s | ≥ 10000 ev/s | $(pf "$B_EPS >= 10000 && $B_MISS == 0") |
| delivery p50 at $LAT_RATE ev/s | $L_P50 ms = $(calc "$L_P50 / 2")× limit | ≤ 2 ms | $(pf "$L_P50 <= 2 && $L_MISS == 0") |
| gateway RSS with retained events | see the memory table (\`bash bench/memory.sh\`) | within 60 MB of a fresh process | – |
EOF
}

REPORT=$(report)
echo
echo "$REPORT"

if [ "$WRITE" = 1 ]; then
	MARK='<!-- end of generated results: text below this line is kept by bench/run.sh -->'
	tail=
	if [ -f BENCHMARKS.md ] && grep -qF "$MARK" BENCHMARKS.md; then
		tail=$(awk -v m="$MARK" 'found { print } $0 == m { found = 1 }' BENCHMARKS.md)
	fi
	cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
	{
		cat <<EOF
# hookgate benchmarks

Generated by \`bash bench/run.sh\` (see \`bench/README.md\`). Every figure is compared with bare Caddy
measured in the same run, on the same machine, with the same load generator.

- Date: $(date -u '+%Y-%m-%d %H:%M UTC')
- Machine: $(nproc) CPU(s), $cpu, $(awk '/MemTotal/ { printf "%.1f GiB RAM", $2 / 1048576 }' /proc/meminfo), $(uname -sr)
- Go: $(go version | awk '{ print $3, $4 }'); commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo " + uncommitted changes")
- Command: \`bash bench/run.sh\` (CONNS=$CONNS DUR=$DUR WARM=$WARM ROUNDS=$ROUNDS LOG_OUTPUT=$LOG_OUTPUT${HOOKGATE_BIN:+ HOOKGATE_BIN=$HOOKGATE_BIN}), total $(($(date +%s) - START_TS)) s
- Logging: every process's default log goes to \`output $LOG_OUTPUT\`$([ "$LOG_OUTPUT" = buffered ] && echo " (lines held up to 100 ms and written together, as \`deploy/Caddyfile\` has it; the gateway still logs a line for every event accepted and every delivery attempt)" || echo " (Caddy's default: a write a line)").
- Placement: nothing pinned. Gateway, load generator (\`bench/loadgen\`), upstream and delivery sink
  share the $(nproc) cores over loopback. The "CPU s" column splits the $(($(nproc) * $(dur_s "$DUR"))) CPU-seconds
  available per run (medians); "other" is what the rest of the machine used meanwhile (noise:
  anything well above 0 means another job competed for the cores). Each scenario runs in a fresh
  process with its own Caddyfile and storage; scenarios are interleaved round by round.

$REPORT

$MARK
EOF
		[ -n "$tail" ] && printf '%s\n' "$tail"
	} >"$WORK/BENCHMARKS.md"
	cat "$WORK/BENCHMARKS.md" >BENCHMARKS.md
	log "wrote BENCHMARKS.md"
fi
log "done in $(($(date +%s) - START_TS)) s"
