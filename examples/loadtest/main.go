// Command loadtest puts the example server under concurrent load on
// loopback for a bounded time and prints its throughput, latency, error
// count and peak memory:
//
//	go run ./examples/loadtest -duration 30s
//
// Without -target it builds ./examples/server, starts it on a fresh SQLite
// file (or -db) on a free loopback port, and stops it at the end. With
// -replicas N (N > 1, PostgreSQL only: -db postgres://…) it starts N
// server processes on one fresh schema of that database, sharing one
// key-encryption key, and spreads the workers over them. With -target
// http://127.0.0.1:PORT[,http://127.0.0.1:PORT2…] it loads running servers
// (loopback only); -pid PID[,PID2…] names their processes for the memory
// figure.
//
// Besides the totals, each replica's share prints as replica_<i>_… lines
// (requests, requests/s, p50, p99, errors, peak memory).
//
// The workload, in equal shares per worker loop: contacts API reads (get
// one, list a page), contacts API writes (create; update with its version)
// and signed Messenger webhook deliveries to the sandbox Page, which the
// setup connects through Facebook Login in the emulator, so each delivery
// is verified, deduplicated and stored as a conversation message. Every
// answer must be the expected 2xx; anything else counts as an error, and
// the command exits 1 when there was any.
//
// The summary is one "name: value" line each, which scripts/bench prints as
// figure: lines.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/socialcrm/socialcrm/meta/metatest"
)

// The example server's sandbox Meta app and Page (examples/server/platforms.go).
const (
	sandboxMetaSecret = "sandbox-meta-secret"
	sandboxFBUser     = "sandbox-fb-user"
	sandboxPage       = "100000000000001"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

type options struct {
	duration    time.Duration
	concurrency int
	targets     []string
	pids        []int
	db          string
	replicas    int
}

// summary is what a run measured.
type summary struct {
	Requests  int64
	Errors    int64
	Elapsed   time.Duration
	P50, P99  time.Duration
	PeakRSSKB int64 // the largest of the replicas'
	ByKind    map[string]int64
	Replicas  []replicaSummary
}

// replicaSummary is one target's share of a run.
type replicaSummary struct {
	Target    string
	Requests  int64
	Errors    int64
	P50, P99  time.Duration
	PeakRSSKB int64
}

func (s summary) print(w io.Writer, o options) {
	fmt.Fprintf(w, "loadtest: duration=%s concurrency=%d\n", o.duration, o.concurrency)
	fmt.Fprintf(w, "requests: %d\n", s.Requests)
	kinds := make([]string, 0, len(s.ByKind))
	for k := range s.ByKind {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		fmt.Fprintf(w, "requests_%s: %d\n", k, s.ByKind[k])
	}
	fmt.Fprintf(w, "requests_per_second: %.1f\n", float64(s.Requests)/s.Elapsed.Seconds())
	fmt.Fprintf(w, "p50_ms: %.2f\n", float64(s.P50.Microseconds())/1000)
	fmt.Fprintf(w, "p99_ms: %.2f\n", float64(s.P99.Microseconds())/1000)
	fmt.Fprintf(w, "errors: %d\n", s.Errors)
	if s.PeakRSSKB > 0 {
		fmt.Fprintf(w, "server_peak_rss_kb: %d\n", s.PeakRSSKB)
	}
	fmt.Fprintf(w, "replicas: %d\n", len(s.Replicas))
	for i, r := range s.Replicas {
		fmt.Fprintf(w, "replica_%d_requests: %d\n", i, r.Requests)
		fmt.Fprintf(w, "replica_%d_requests_per_second: %.1f\n", i, float64(r.Requests)/s.Elapsed.Seconds())
		fmt.Fprintf(w, "replica_%d_p50_ms: %.2f\n", i, float64(r.P50.Microseconds())/1000)
		fmt.Fprintf(w, "replica_%d_p99_ms: %.2f\n", i, float64(r.P99.Microseconds())/1000)
		fmt.Fprintf(w, "replica_%d_errors: %d\n", i, r.Errors)
		if r.PeakRSSKB > 0 {
			fmt.Fprintf(w, "replica_%d_peak_rss_kb: %d\n", i, r.PeakRSSKB)
		}
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "how long to load the server (at most 10m)")
	fs.IntVar(&o.concurrency, "concurrency", 8, "concurrent workers")
	target := fs.String("target", "", "URLs of running servers on loopback, comma-separated (default: start them)")
	pids := fs.String("pid", "", "process ids of the -target servers, comma-separated, for their peak memory")
	fs.StringVar(&o.db, "db", "", "database of the started servers (default: a fresh SQLite file)")
	fs.IntVar(&o.replicas, "replicas", 1, "how many servers to start on -db (more than one: PostgreSQL only)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for t := range strings.SplitSeq(*target, ",") {
		if t = strings.TrimSpace(t); t != "" {
			o.targets = append(o.targets, t)
		}
	}
	for p := range strings.SplitSeq(*pids, ",") {
		if p = strings.TrimSpace(p); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil {
				return fmt.Errorf("-pid: %w", err)
			}
			o.pids = append(o.pids, n)
		}
	}
	if o.replicas < 1 || o.replicas > 8 {
		return errors.New("-replicas must be between 1 and 8")
	}
	if o.replicas > 1 && !strings.HasPrefix(o.db, "postgres") {
		return errors.New("-replicas above 1 needs -db postgres://… (replicas share a PostgreSQL database)")
	}
	if o.duration <= 0 || o.duration > 10*time.Minute {
		return errors.New("-duration must be between 0 and 10m")
	}
	if o.concurrency < 1 || o.concurrency > 256 {
		return errors.New("-concurrency must be between 1 and 256")
	}
	if len(o.targets) == 0 {
		srvs, err := startServers(ctx, o.db, o.replicas, stderr)
		if err != nil {
			return err
		}
		defer func() {
			for _, s := range srvs {
				s.stop()
			}
		}()
		for _, s := range srvs {
			o.targets, o.pids = append(o.targets, s.url), append(o.pids, s.cmd.Process.Pid)
		}
	} else {
		for _, t := range o.targets {
			if err := loopbackOnly(t); err != nil {
				return err
			}
		}
	}
	s, err := load(ctx, o)
	if err != nil {
		return err
	}
	for i := range s.Replicas {
		if i < len(o.pids) && o.pids[i] > 0 {
			s.Replicas[i].PeakRSSKB = peakRSS(o.pids[i])
			s.PeakRSSKB = max(s.PeakRSSKB, s.Replicas[i].PeakRSSKB)
		}
	}
	s.print(stdout, o)
	if s.Errors > 0 {
		return fmt.Errorf("%d requests failed", s.Errors)
	}
	return nil
}

func loopbackOnly(target string) error {
	u, err := url.Parse(target)
	if err != nil {
		return fmt.Errorf("-target: %w", err)
	}
	ip := net.ParseIP(u.Hostname())
	if u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-target must be on loopback, not %s", u.Hostname())
	}
	return nil
}

// peakRSS reads VmHWM, the peak resident set size, of a process.
func peakRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

type server struct {
	url     string
	cmd     *exec.Cmd
	dir     string // removed by stop when set
	cleanup func() // run by stop when set (drops a scratch schema)
	done    chan error
}

// startServers builds the example server and starts n of it on free
// loopback ports: on a fresh SQLite file when db is empty, else on db —
// for PostgreSQL in a fresh schema dropped at the end (n > 1 share it).
// The replicas share one key-encryption key file and session key.
func startServers(ctx context.Context, db string, n int, stderr io.Writer) (srvs []*server, err error) {
	dir, err := os.MkdirTemp("", "socialcrm-loadtest-")
	if err != nil {
		return nil, err
	}
	cleanup := func() {}
	defer func() {
		if err != nil {
			for _, s := range srvs {
				s.stop()
			}
			cleanup()
			os.RemoveAll(dir)
		}
	}()
	pkgDir, err := exec.CommandContext(ctx, "go", "list", "-f", "{{.Dir}}", "github.com/socialcrm/socialcrm/examples/server").Output()
	if err != nil {
		return nil, fmt.Errorf("find examples/server: %w", err)
	}
	bin := filepath.Join(dir, "server")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	build.Dir = strings.TrimSpace(string(pkgDir))
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build the server: %v\n%s", err, out)
	}
	switch {
	case db == "":
		db = filepath.Join(dir, "load.db")
	case strings.HasPrefix(db, "postgres"):
		if db, cleanup, err = scratchSchema(ctx, db); err != nil {
			return nil, err
		}
	}
	env := append(os.Environ(), "TIKTOK_CLIENT_KEY=", "TIKTOK_CLIENT_SECRET=", "SOCIALCRM_SESSION_KEY="+randomKey())
	for i := range n {
		s, err := startServer(bin, dir, env, "-addr", "127.0.0.1:0", "-db", db, "-kek", filepath.Join(dir, "kek.json"), "-login-rate", "0")
		if err != nil {
			return srvs, err
		}
		if i == n-1 {
			s.dir = dir // the last one to stop removes the files
			prev := cleanup
			s.cleanup = prev
		}
		srvs = append(srvs, s)
	}
	return srvs, nil
}

func randomKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// scratchSchema creates a fresh schema on the PostgreSQL database of dsn
// and returns dsn set to use it, and a function that drops it.
func scratchSchema(ctx context.Context, dsn string) (string, func(), error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", nil, fmt.Errorf("postgres: %w", err)
	}
	defer conn.Close(ctx)
	schema := "loadtest_" + randomKey()[:12]
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return "", nil, fmt.Errorf("postgres: %w", err)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), func() {
		c, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
	}, nil
}

// startServer starts the server binary bin in dir with args.
func startServer(bin, dir string, env []string, args ...string) (*server, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stderr = &tail{max: 64 << 10}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, done: make(chan error, 1)}
	line, err := bufio.NewReader(out).ReadString('\n')
	go func() { _, _ = io.Copy(io.Discard, out); s.done <- cmd.Wait() }()
	s.url = regexp.MustCompile(`http://127\.0\.0\.1:\d+`).FindString(line)
	if err != nil || s.url == "" {
		s.stop()
		return nil, fmt.Errorf("the server did not start: %v\n%s", err, cmd.Stderr.(*tail).String())
	}
	return s, nil
}

func (s *server) stop() {
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
	if s.cleanup != nil {
		s.cleanup()
	}
}

// tail keeps the last bytes written to it (the server's logs).
type tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tail) String() string { t.mu.Lock(); defer t.mu.Unlock(); return string(t.b) }

// env is what the workers share: the tenant's API key and contacts to read.
type env struct {
	base, token string
	contacts    []string
	hc          *http.Client
}

func (e *env) do(ctx context.Context, method, path string, body []byte, header http.Header) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, e.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// setup signs up a tenant with an API key's worth of data to read.
func setup(ctx context.Context, base string) (*env, error) {
	e := &env{base: base, hc: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}}
	body, _ := json.Marshal(map[string]string{"tenant_name": "Load", "email": "load@example.com", "name": "Load", "password": "load test password"})
	var su struct {
		Session struct {
			AccessToken string `json:"access_token"`
		} `json:"session"`
	}
	if err := e.json(ctx, "POST", "/v1/signup", body, http.StatusCreated, &su); err != nil {
		return nil, err
	}
	e.token = su.Session.AccessToken
	var key struct {
		Key string `json:"key"`
	}
	if err := e.json(ctx, "POST", "/v1/api-keys", []byte(`{"name":"loadtest","role":"admin"}`), http.StatusCreated, &key); err != nil {
		return nil, err
	}
	e.token = key.Key // API keys do not expire during the run
	for i := range 20 {
		var ct struct {
			Contact struct {
				ID string `json:"id"`
			} `json:"contact"`
		}
		body := fmt.Sprintf(`{"first_name":"Seed%d","last_name":"Contact","email":"seed%d@example.com"}`, i, i)
		if err := e.json(ctx, "POST", "/v1/contacts", []byte(body), http.StatusCreated, &ct); err != nil {
			return nil, err
		}
		e.contacts = append(e.contacts, ct.Contact.ID)
	}
	if err := e.connectPage(ctx); err != nil {
		return nil, fmt.Errorf("connect the sandbox Page: %w", err)
	}
	return e, nil
}

func (e *env) json(ctx context.Context, method, path string, body []byte, want int, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, e.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return json.Unmarshal(b, out)
}

// connectPage connects the sandbox Facebook Page through the emulator's
// login dialog, as a browser would, so that Messenger deliveries are stored.
func (e *env) connectPage(ctx context.Context) error {
	var start struct {
		AuthorizeURL string `json:"authorize_url"`
	}
	if err := e.json(ctx, "POST", "/v1/connections/meta/start", nil, http.StatusOK, &start); err != nil {
		return err
	}
	noRedirect := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(start.AuthorizeURL)
	if err != nil {
		return err
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	form := url.Values{"metatest_user": {sandboxFBUser}, "metatest_decision": {"allow"}}
	for _, m := range regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)"`).FindAllSubmatch(page, -1) {
		form.Add(string(m[1]), html.UnescapeString(string(m[2])))
	}
	for _, m := range regexp.MustCompile(`name="metatest_grant" value="([^"]*)"`).FindAllSubmatch(page, -1) {
		form.Add("metatest_grant", string(m[1]))
	}
	resp, err = noRedirect.PostForm(start.AuthorizeURL, form)
	if err != nil {
		return err
	}
	resp.Body.Close()
	body, _ := json.Marshal(map[string]string{"callback_url": resp.Header.Get("Location")})
	var done map[string]any
	return e.json(ctx, "POST", "/v1/connections/meta/complete", body, http.StatusCreated, &done)
}

// op is one kind of request in the mix.
type op struct {
	kind string
	want int
	call func(ctx context.Context, e *env, n int64) (int, error)
}

var ops = []op{
	{"read", http.StatusOK, func(ctx context.Context, e *env, n int64) (int, error) {
		if n%2 == 0 {
			return e.do(ctx, "GET", "/v1/contacts?limit=20", nil, nil)
		}
		return e.do(ctx, "GET", "/v1/contacts/"+e.contacts[n%int64(len(e.contacts))], nil, nil)
	}},
	{"write", http.StatusCreated, func(ctx context.Context, e *env, n int64) (int, error) {
		body := fmt.Sprintf(`{"first_name":"Load%d","last_name":"Test","email":"load%d@example.com","tags":["load"]}`, n, n)
		return e.do(ctx, "POST", "/v1/contacts", []byte(body), nil)
	}},
	{"webhook", http.StatusOK, func(ctx context.Context, e *env, n int64) (int, error) {
		ms := time.Now().UnixMilli()
		body := fmt.Sprintf(`{"object":"page","entry":[{"id":%q,"time":%d,"messaging":[{"sender":{"id":"psid-%d"},"recipient":{"id":%q},"timestamp":%d,"message":{"mid":"m_load_%d","text":"hello %d"}}]}]}`,
			sandboxPage, ms, n%100, sandboxPage, ms, n, n)
		h := http.Header{"X-Hub-Signature-256": {metatest.SignPayload(sandboxMetaSecret, []byte(body))}}
		return e.do(ctx, "POST", "/webhooks/meta", []byte(body), h)
	}},
}

// load runs the workers for o.duration.
func load(ctx context.Context, o options) (summary, error) {
	first, err := setup(ctx, o.targets[0])
	if err != nil {
		return summary{}, fmt.Errorf("setup: %w", err)
	}
	// The tenant, its API key and contacts live in the database every
	// target shares: each worker loads one target with them.
	envs := make([]*env, len(o.targets))
	for i, t := range o.targets {
		e := *first
		e.base = t
		envs[i] = &e
	}
	perTarget := make([]struct {
		latencies []time.Duration
		errs      int64
	}, len(o.targets))
	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	var (
		mu        sync.Mutex
		latencies []time.Duration
		seq       atomic.Int64
		errs      atomic.Int64
		byKind    = map[string]*atomic.Int64{}
		firstErr  atomic.Value
		wg        sync.WaitGroup
	)
	for _, op := range ops {
		byKind[op.kind] = &atomic.Int64{}
	}
	start := time.Now()
	for w := range o.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			target := w % len(envs)
			e := envs[target]
			var localErrs int64
			local := make([]time.Duration, 0, 4096)
			for i := w; ctx.Err() == nil; i++ {
				n := seq.Add(1)
				op := ops[i%len(ops)]
				t0 := time.Now()
				status, err := op.call(ctx, e, n)
				if ctx.Err() != nil && err != nil {
					break // the run ended mid-request: not the server's fault
				}
				local = append(local, time.Since(t0))
				byKind[op.kind].Add(1)
				if err != nil || status != op.want {
					errs.Add(1)
					localErrs++
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%s: status %d, err %v", op.kind, status, err))
				}
			}
			mu.Lock()
			latencies = append(latencies, local...)
			perTarget[target].latencies = append(perTarget[target].latencies, local...)
			perTarget[target].errs += localErrs
			mu.Unlock()
		}()
	}
	wg.Wait()
	s := summary{Requests: int64(len(latencies)), Errors: errs.Load(), Elapsed: time.Since(start), ByKind: map[string]int64{}}
	for k, v := range byKind {
		s.ByKind[k] = v.Load()
	}
	s.P50, s.P99 = percentiles(latencies)
	for i, t := range perTarget {
		r := replicaSummary{Target: o.targets[i], Requests: int64(len(t.latencies)), Errors: t.errs}
		r.P50, r.P99 = percentiles(t.latencies)
		s.Replicas = append(s.Replicas, r)
	}
	if v := firstErr.Load(); v != nil {
		fmt.Fprintln(os.Stderr, "loadtest: first error:", v)
	}
	return s, nil
}

// percentiles returns the median and the 99th percentile of ls, sorting it.
func percentiles(ls []time.Duration) (p50, p99 time.Duration) {
	if len(ls) == 0 {
		return 0, 0
	}
	slices.Sort(ls)
	return ls[len(ls)*50/100], ls[min(len(ls)-1, len(ls)*99/100)]
}
