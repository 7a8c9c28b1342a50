// Command loadgen is hookgate's HTTP load generator (stdlib only).
//
// Modes:
//
//	-mode load      (default) drive -url with -c keep-alive connections for -d,
//	                closed loop (-rate 0) or open loop at -rate req/s; prints JSON
//	                {requests, rps, status_counts, p50_ms, p90_ms, p99_ms, errors}.
//	-mode upstream  serve 200 {} on -listen until -d elapses (0: until killed).
//	-mode deliver   run a sink on -listen that records receipt times, publish -n
//	                events to -url (POST /api/hookgate/events) at -rate (0: as
//	                fast as -c publishers go), each carrying its publish time in
//	                data, wait (at most -wait) for every receipt, and print JSON
//	                {events_per_s, p50_ms, p90_ms, p99_ms, ...}. With -batch N
//	                each publisher POSTs N events a request to -url + "/batch"
//	                (POST /api/hookgate/events/batch) instead of one to -url.
//
// Every mode is bounded in time (-d, -wait) and meant for loopback addresses.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type headerList []string

func (h *headerList) String() string     { return strings.Join(*h, ", ") }
func (h *headerList) Set(v string) error { *h = append(*h, v); return nil }

type config struct {
	mode    string
	url     string
	method  string
	body    []byte
	headers http.Header
	conns   int
	dur     time.Duration
	rate    float64
	listen  string
	n       int
	topic   string
	wait    time.Duration
	timeout time.Duration
	batch   int
}

func main() {
	var (
		cfg      config
		bodyFile string
		hdrs     headerList
	)
	flag.StringVar(&cfg.mode, "mode", "load", "load | upstream | deliver")
	flag.StringVar(&cfg.url, "url", "", "target URL (load) or publish URL .../api/hookgate/events (deliver)")
	flag.StringVar(&cfg.method, "method", "POST", "HTTP method (load)")
	flag.StringVar(&bodyFile, "body", "", "request body file (load)")
	flag.Var(&hdrs, "header", "request header K:V (repeatable)")
	flag.IntVar(&cfg.conns, "c", 64, "connections / concurrent requests (publishers in deliver mode)")
	flag.DurationVar(&cfg.dur, "d", 10*time.Second, "duration (load; upstream: lifetime, 0 = until killed)")
	flag.Float64Var(&cfg.rate, "rate", 0, "requests (events) per second; 0 = closed loop, as fast as possible")
	flag.StringVar(&cfg.listen, "listen", "127.0.0.1:19090", "listen address (upstream, deliver sink)")
	flag.IntVar(&cfg.n, "n", 20000, "events to publish (deliver)")
	flag.StringVar(&cfg.topic, "topic", "bench.tick", "topic of published events (deliver)")
	flag.DurationVar(&cfg.wait, "wait", 60*time.Second, "how long to wait for receipts after publishing (deliver)")
	flag.DurationVar(&cfg.timeout, "timeout", 10*time.Second, "per-request timeout")
	flag.IntVar(&cfg.batch, "batch", 0, `events per publish request (deliver): 0 = one event per POST to -url; N >= 1 = N events per POST to -url + "/batch" (at most 1000)`)
	flag.Parse()

	cfg.headers = http.Header{}
	for _, h := range hdrs {
		k, v, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(k) == "" {
			fatalf("-header %q: want K:V", h)
		}
		cfg.headers.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	if bodyFile != "" {
		b, err := os.ReadFile(bodyFile)
		if err != nil {
			fatalf("-body: %v", err)
		}
		cfg.body = b
	}
	if cfg.conns < 1 {
		fatalf("-c must be at least 1")
	}

	var out any
	switch cfg.mode {
	case "load":
		if cfg.url == "" {
			fatalf("-url is required")
		}
		out = runLoad(cfg)
	case "upstream":
		runUpstream(cfg)
		return
	case "deliver":
		if cfg.url == "" {
			fatalf("-url is required")
		}
		if cfg.batch < 0 || cfg.batch > 1000 {
			fatalf("-batch must be 0 to 1000")
		}
		out = runDeliver(cfg)
	default:
		fatalf("unknown -mode %q", cfg.mode)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(out)
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "loadgen: "+format+"\n", args...)
	os.Exit(2)
}

func newClient(conns int, timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy:               nil, // loopback only: never an environment proxy
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	return &http.Client{Transport: tr, Timeout: timeout}
}

// ---------------------------------------------------------------- load

type loadResult struct {
	Mode         string         `json:"mode"`
	URL          string         `json:"url"`
	Connections  int            `json:"connections"`
	DurationS    float64        `json:"duration_s"`
	TargetRate   float64        `json:"target_rate,omitempty"`
	Requests     int64          `json:"requests"`
	RPS          float64        `json:"rps"`
	StatusCounts map[string]int `json:"status_counts"`
	P50ms        float64        `json:"p50_ms"`
	P90ms        float64        `json:"p90_ms"`
	P99ms        float64        `json:"p99_ms"`
	MaxMs        float64        `json:"max_ms"`
	Errors       int64          `json:"errors"`
	ErrorSamples []string       `json:"error_samples,omitempty"`
	CPUSeconds   float64        `json:"loadgen_cpu_s"`
}

type worker struct {
	lat      []time.Duration
	status   map[int]int
	errs     int64
	errSmpl  []string
	requests int64
}

func (w *worker) fail(err error) {
	w.errs++
	if len(w.errSmpl) < 3 {
		w.errSmpl = append(w.errSmpl, err.Error())
	}
}

func runLoad(cfg config) *loadResult {
	client := newClient(cfg.conns, cfg.timeout)
	ctx, cancel := context.WithTimeout(context.Background(), cfg.dur)
	defer cancel()

	workers := make([]*worker, cfg.conns)
	var wg sync.WaitGroup

	// Open loop: a pacer hands out intended start times; latency counts from
	// the intended time, so a stalled server is not hidden (no coordinated
	// omission). Closed loop: each connection sends as soon as it has an answer.
	var ticks chan time.Time
	if cfg.rate > 0 {
		ticks = make(chan time.Time, cfg.conns*4)
		go func() {
			defer close(ticks)
			start := time.Now()
			interval := float64(time.Second) / cfg.rate
			for i := 0; ; i++ {
				at := start.Add(time.Duration(float64(i) * interval))
				if d := time.Until(at); d > 0 {
					select {
					case <-time.After(d):
					case <-ctx.Done():
						return
					}
				}
				select {
				case ticks <- at:
				case <-ctx.Done():
					return
				}
			}
		}()
	}

	start := time.Now()
	for i := range workers {
		w := &worker{status: map[int]int{}, lat: make([]time.Duration, 0, 4096)}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				var t0 time.Time
				if ticks != nil {
					var ok bool
					if t0, ok = <-ticks; !ok {
						return
					}
				} else {
					if ctx.Err() != nil {
						return
					}
					t0 = time.Now()
				}
				code, _, err := doRequest(ctx, client, cfg, false)
				if err != nil {
					if ctx.Err() != nil {
						return // cut by the end of the run: not counted
					}
					w.fail(err)
					w.requests++
					continue
				}
				w.lat = append(w.lat, time.Since(t0))
				w.status[code]++
				w.requests++
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if elapsed > cfg.dur {
		elapsed = cfg.dur // the last requests cut at the deadline are not counted
	}

	res := &loadResult{Mode: "load", URL: cfg.url, Connections: cfg.conns, DurationS: elapsed.Seconds(),
		TargetRate: cfg.rate, StatusCounts: map[string]int{}}
	var all []time.Duration
	for _, w := range workers {
		res.Requests += w.requests
		res.Errors += w.errs
		for c, n := range w.status {
			res.StatusCounts[strconv.Itoa(c)] += n
		}
		if len(res.ErrorSamples) < 5 {
			res.ErrorSamples = append(res.ErrorSamples, w.errSmpl...)
		}
		all = append(all, w.lat...)
	}
	res.RPS = round(float64(res.Requests) / elapsed.Seconds())
	res.P50ms, res.P90ms, res.P99ms, res.MaxMs = percentiles(all)
	res.CPUSeconds = cpuSeconds()
	return res
}

// doRequest makes one request; the answer's body is returned when read is
// set, else discarded.
func doRequest(ctx context.Context, client *http.Client, cfg config, read bool) (int, []byte, error) {
	var body io.Reader
	if cfg.body != nil {
		body = bytes.NewReader(cfg.body)
	}
	req, err := http.NewRequestWithContext(ctx, cfg.method, cfg.url, body)
	if err != nil {
		return 0, nil, err
	}
	for k, v := range cfg.headers {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	if read {
		b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		return resp.StatusCode, b, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil, nil
}

// ---------------------------------------------------------------- upstream

func runUpstream(cfg config) {
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		fatalf("listen: %v", err)
	}
	var hits atomic.Int64
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			hits.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", "2")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte("{}"))
		}),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	fmt.Fprintf(os.Stderr, "loadgen upstream: listening on %s\n", ln.Addr())
	done := make(chan os.Signal, 1)
	signal.Notify(done, syscall.SIGINT, syscall.SIGTERM)
	go func() { _ = srv.Serve(ln) }()
	if cfg.dur > 0 {
		select {
		case <-done:
		case <-time.After(cfg.dur):
		}
	} else {
		<-done
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	fmt.Fprintf(os.Stderr, "loadgen upstream: %d requests served\n", hits.Load())
}

// ---------------------------------------------------------------- deliver

type deliverResult struct {
	Mode              string         `json:"mode"`
	Events            int            `json:"events"`
	Publishers        int            `json:"publishers"`
	Batch             int            `json:"batch,omitempty"`
	PublishRequests   int64          `json:"publish_requests"`
	TargetRate        float64        `json:"target_rate,omitempty"`
	Published         int64          `json:"published"`
	PublishErrors     int64          `json:"publish_errors"`
	PublishStatus     map[string]int `json:"publish_status_counts"`
	PublishSeconds    float64        `json:"publish_s"`
	PublishRPS        float64        `json:"publish_rps"`
	PublishP50ms      float64        `json:"publish_p50_ms"`
	PublishP99ms      float64        `json:"publish_p99_ms"`
	Received          int            `json:"received"`
	Duplicates        int64          `json:"duplicates"`
	Stale             int64          `json:"stale"`
	Missing           int            `json:"missing"`
	TimedOut          bool           `json:"timed_out"`
	TotalSeconds      float64        `json:"total_s"`
	EventsPerS        float64        `json:"events_per_s"`
	ReceiveWindowEPS  float64        `json:"receive_window_events_per_s"`
	P50ms             float64        `json:"p50_ms"`
	P90ms             float64        `json:"p90_ms"`
	P99ms             float64        `json:"p99_ms"`
	MaxMs             float64        `json:"max_ms"`
	PublishErrSamples []string       `json:"publish_error_samples,omitempty"`
	CPUSeconds        float64        `json:"loadgen_cpu_s"`
}

// benchData is the data of every published event; deliveries carry it either
// as the body (raw envelope) or under "data" (standard and most envelopes).
type benchData struct {
	Run    string `json:"run"`
	Seq    int    `json:"seq"`
	SentNs int64  `json:"sent_ns"`
}

type sink struct {
	run      string
	mu       sync.Mutex
	recv     map[int]time.Time // seq -> receipt time (first receipt)
	latency  []time.Duration
	first    time.Time
	last     time.Time
	dups     atomic.Int64
	stale    atomic.Int64
	progress chan struct{}
}

// receive records one delivered body.
func (s *sink) receive(b []byte) {
	now := time.Now()
	d, ok := scanBench(b)
	if !ok {
		var env struct {
			benchData
			Data    *benchData `json:"data"`
			Payload *benchData `json:"payload"`
		}
		if err := json.Unmarshal(b, &env); err != nil {
			s.stale.Add(1)
			return
		}
		d = env.benchData
		if env.Data != nil && env.Data.Run != "" {
			d = *env.Data
		} else if env.Payload != nil && env.Payload.Run != "" {
			d = *env.Payload
		}
	}
	if d.Run != s.run {
		s.stale.Add(1) // a late delivery of an earlier run
		return
	}
	s.mu.Lock()
	if _, ok := s.recv[d.Seq]; ok {
		s.mu.Unlock()
		s.dups.Add(1)
		return
	}
	s.recv[d.Seq] = now
	s.latency = append(s.latency, now.Sub(time.Unix(0, d.SentNs)))
	if s.first.IsZero() || now.Before(s.first) {
		s.first = now
	}
	if now.After(s.last) {
		s.last = now
	}
	s.mu.Unlock()
	select {
	case s.progress <- struct{}{}:
	default:
	}
}

func runDeliver(cfg config) *deliverResult {
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	sk := &sink{run: run, recv: make(map[int]time.Time, cfg.n), progress: make(chan struct{}, 1)}
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		fatalf("sink listen: %v", err)
	}
	srv := serveSink(ln, sk.receive)
	defer srv.Close()

	client := newClient(cfg.conns, cfg.timeout)
	res := &deliverResult{Mode: "deliver", Events: cfg.n, Publishers: cfg.conns, TargetRate: cfg.rate,
		Batch: cfg.batch, PublishStatus: map[string]int{}}
	// A job is the events [seq, seq+per) of one request.
	per := max(cfg.batch, 1)
	pubURL := cfg.url
	if cfg.batch > 0 {
		pubURL = strings.TrimRight(cfg.url, "/") + "/batch"
	}

	jobs := make(chan int, cfg.conns*4)
	type pubWorker struct {
		ok, errs int64
		requests int64
		status   map[int]int
		lat      []time.Duration
		smpl     []string
	}
	pws := make([]*pubWorker, cfg.conns)
	var wg sync.WaitGroup
	// Publishing is bounded too: at most the paced duration plus the wait.
	pubBudget := cfg.wait
	if cfg.rate > 0 {
		pubBudget += time.Duration(float64(cfg.n) / cfg.rate * float64(time.Second))
	}
	ctx, cancel := context.WithTimeout(context.Background(), pubBudget)
	defer cancel()
	for i := range pws {
		pw := &pubWorker{status: map[int]int{}}
		pws[i] = pw
		wg.Add(1)
		go func() {
			defer wg.Done()
			for first := range jobs {
				sent := time.Now()
				last := min(first+per, cfg.n)
				events := make([]any, 0, last-first)
				for seq := first; seq < last; seq++ {
					events = append(events, map[string]any{
						"id":    "bench-" + run + "-" + strconv.Itoa(seq),
						"topic": cfg.topic,
						"data":  benchData{Run: run, Seq: seq, SentNs: sent.UnixNano()},
					})
				}
				var body []byte
				if cfg.batch > 0 {
					body, _ = json.Marshal(map[string]any{"events": events})
				} else {
					body, _ = json.Marshal(events[0])
				}
				c := cfg
				c.method = http.MethodPost
				c.url = pubURL
				c.body = body
				code, answer, err := doRequest(ctx, client, c, cfg.batch > 0)
				pw.lat = append(pw.lat, time.Since(sent))
				pw.requests++
				n := int64(last - first)
				if err != nil {
					pw.errs += n
					if len(pw.smpl) < 3 {
						pw.smpl = append(pw.smpl, err.Error())
					}
					continue
				}
				pw.status[code]++
				stored := int64(0)
				switch {
				case code/100 == 2:
					stored = n
				case cfg.batch > 0 && code == http.StatusServiceUnavailable:
					// Stored in part: the answer says which.
					var a struct {
						Events []struct{ Status string } `json:"events"`
					}
					_ = json.Unmarshal(answer, &a)
					for _, e := range a.Events {
						if e.Status == "accepted" || e.Status == "duplicate" {
							stored++
						}
					}
				}
				pw.ok += stored
				pw.errs += n - stored
				if stored < n && len(pw.smpl) < 3 {
					pw.smpl = append(pw.smpl, fmt.Sprintf("HTTP %d: %.200s", code, answer))
				}
			}
		}()
	}
	start := time.Now()
	interval := time.Duration(0)
	if cfg.rate > 0 {
		interval = time.Duration(float64(time.Second) / cfg.rate)
	}
feed:
	for i := 0; i < cfg.n; i += per {
		if interval > 0 {
			if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
				time.Sleep(d)
			}
		}
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	pubDone := time.Since(start)

	var pubLat []time.Duration
	for _, pw := range pws {
		res.Published += pw.ok
		res.PublishErrors += pw.errs
		res.PublishRequests += pw.requests
		for c, n := range pw.status {
			res.PublishStatus[strconv.Itoa(c)] += n
		}
		pubLat = append(pubLat, pw.lat...)
		if len(res.PublishErrSamples) < 5 {
			res.PublishErrSamples = append(res.PublishErrSamples, pw.smpl...)
		}
	}
	res.PublishSeconds = round(pubDone.Seconds())
	res.PublishRPS = round(float64(res.Published) / pubDone.Seconds())
	res.PublishP50ms, _, res.PublishP99ms, _ = percentiles(pubLat)

	// Wait for every accepted event to arrive, bounded by -wait.
	deadline := time.NewTimer(cfg.wait)
	defer deadline.Stop()
wait:
	for {
		sk.mu.Lock()
		got := len(sk.recv)
		sk.mu.Unlock()
		if int64(got) >= res.Published {
			break
		}
		select {
		case <-sk.progress:
		case <-time.After(50 * time.Millisecond):
		case <-deadline.C:
			res.TimedOut = true
			break wait
		}
	}

	sk.mu.Lock()
	defer sk.mu.Unlock()
	res.Received = len(sk.recv)
	res.Missing = int(res.Published) - res.Received
	if res.Missing < 0 {
		res.Missing = 0
	}
	res.Duplicates = sk.dups.Load()
	res.Stale = sk.stale.Load()
	if res.Received > 0 {
		total := sk.last.Sub(start)
		res.TotalSeconds = round(total.Seconds())
		res.EventsPerS = round(float64(res.Received) / total.Seconds())
		if w := sk.last.Sub(sk.first); w > 0 {
			res.ReceiveWindowEPS = round(float64(res.Received) / w.Seconds())
		}
	}
	res.P50ms, res.P90ms, res.P99ms, res.MaxMs = percentiles(sk.latency)
	res.CPUSeconds = cpuSeconds()
	return res
}

// ---------------------------------------------------------------- stats

// percentiles returns p50, p90, p99 and max in milliseconds (nearest rank).
func percentiles(d []time.Duration) (p50, p90, p99, max float64) {
	if len(d) == 0 {
		return 0, 0, 0, 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	at := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(d)))) - 1
		if i < 0 {
			i = 0
		}
		return ms(d[i])
	}
	return at(0.50), at(0.90), at(0.99), ms(d[len(d)-1])
}

func ms(d time.Duration) float64 { return round(float64(d) / float64(time.Millisecond)) }

func round(f float64) float64 { return math.Round(f*100) / 100 }

// cpuSeconds is the CPU time (user + system) this process has used: the load
// generator shares the machine with the gateway.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return round(tv(ru.Utime) + tv(ru.Stime))
}
