package ctl

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"google.golang.org/grpc"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/flowpb"
	"github.com/flowfleet/flowfleet/internal/pki"
	"github.com/flowfleet/flowfleet/internal/pki/pkitest"
	"github.com/flowfleet/flowfleet/internal/store"
	"github.com/flowfleet/flowfleet/pkg/flow"
	"github.com/flowfleet/flowfleet/pkg/formats/bayseflow"
)

const evilName = `<img src=x onerror=alert(1)>.example`

// startUI runs flowctl ui with the given arguments until the test ends and returns its URL.
func startUI(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	cmd := NewRootCommand()
	cmd.SetOut(pw)
	cmd.SetErr(io.Discard)
	cmd.SetArgs(append([]string{"ui", "--listen", "127.0.0.1:0"}, args...))
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx); pw.Close() }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("flowctl ui: %v", err)
		}
	})
	line, err := bufio.NewReader(pr).ReadString('\n')
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if err != nil || !strings.HasPrefix(line, "flowctl ui: http://") {
		t.Fatalf("flowctl ui printed %q: %v", line, err)
	}
	return strings.Fields(line)[2]
}

// browser starts headless Chromium (Debian's package); it fails any test where a page opens a dialog.
func browser(t *testing.T) context.Context {
	t.Helper()
	ctx, dialogs := browserDialogs(t)
	t.Cleanup(func() {
		if n := dialogs.Load(); n > 0 {
			t.Errorf("a script opened %d dialogs", n)
		}
	})
	return ctx
}

// dialogCounter counts the dialogs pages open; seen is closed at the first.
type dialogCounter struct {
	atomic.Int32
	seen chan struct{}
}

// browserDialogs is browser that counts the dialogs pages open instead of failing.
func browserDialogs(t *testing.T) (context.Context, *dialogCounter) {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		fmt.Println("skipping: no chromium on PATH (apt-get install chromium, as scripts/setup.sh does)")
		t.Skip("no chromium on PATH")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.WindowSize(1280, 1000))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelB := chromedp.NewContext(actx)
	dialogs := &dialogCounter{seen: make(chan struct{})}
	// The first call starts the browser; it must not carry the test's timeout.
	if err := chromedp.Listen(bctx, func(ev any) {
		if _, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			if dialogs.Add(1) == 1 {
				close(dialogs.seen)
			}
			go func() { _, _ = chromedp.Call(bctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{}) }()
		}
	}); err != nil {
		cancelB()
		cancelA()
		t.Fatalf("chromium: %v", err)
	}
	ctx, cancelT := context.WithTimeout(bctx, 90*time.Second)
	t.Cleanup(func() { cancelT(); cancelB(); cancelA() })
	return ctx, dialogs
}

// The dialog listener TestUIBrowser relies on does see a script's alert.
func TestUIBrowserSeesDialogs(t *testing.T) {
	ctx, dialogs := browserDialogs(t)
	if err := chromedp.Do(ctx, chromedp.Navigate("data:text/html,<p id=p>x</p><script>setTimeout(()=>alert(1),0)</script>"),
		chromedp.WaitVisible(chromedp.CSS("#p"))); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Poll[chromedp.Void]("document.getElementById('p') !== null")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
		t.Fatal("no dialog seen")
	case <-dialogs.seen:
	}
}

// screenshot writes the visible part of the page (PNG, 1280×1000) to a temp dir, or to $FLOWFLEET_UI_SCREENSHOTS (e.g. docs/img).
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("FLOWFLEET_UI_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	} else if !filepath.IsAbs(dir) {
		dir = filepath.Join("..", "..", dir) // relative to the repository root
	}
	b, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ui-"+name+".png"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// ingestWindow sends one window of flows as a sensor and ends it, so the collector writes a sample.
func ingestWindow(t *testing.T, addr string, sensor auth.Files, ws int64, names ...string) {
	t.Helper()
	creds, err := auth.NewClientCredentials(sensor, "127.0.0.1", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := flowfleetv1.NewIngestServiceClient(conn).Ingest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var pbs []*flowfleetv1.Flow
	for i, n := range names {
		f := flow.Flow{SrcAddr: "10.0.0.9", SrcPort: fmt.Sprint(50000 + i), DstAddr: "198.51.100.7", DstPort: "443", Name: n,
			NameSource: flow.SourcePassive, Protocol: flow.ProtoTCP, SrcPkts: 1, SrcBytes: 60, DstPkts: 1, DstBytes: 60,
			First: float64(ws) + 1, Last: float64(ws) + 2, Identifier: fmt.Sprint(i + 1)}
		pbs = append(pbs, flowpb.ToProto(&f, ws))
	}
	for _, m := range []*flowfleetv1.IngestRequest{
		{Message: &flowfleetv1.IngestRequest_Hello{Hello: &flowfleetv1.Hello{StreamId: "live", SoftwareVersion: "v1", WindowSeconds: 60}}},
		{Message: &flowfleetv1.IngestRequest_Batch{Batch: &flowfleetv1.FlowBatch{Seq: 1, Flows: pbs}}},
		{Message: &flowfleetv1.IngestRequest_WindowEnd{WindowEnd: &flowfleetv1.WindowEnd{WindowStart: ws, WindowSeconds: 60}}},
	} {
		if err := st.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	for acked := false; !acked; {
		resp, err := st.Recv()
		if err != nil {
			t.Fatalf("ingest: %v", err)
		}
		acked = resp.GetAck().GetSeq() == 1
	}
	_ = st.CloseSend()
}

// text returns an element's textContent (read by a script: htmx may have swapped the node).
func text(ctx context.Context, t *testing.T, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf("document.querySelector(%q).textContent", sel)))
	if err != nil {
		t.Fatalf("%s: %v", sel, err)
	}
	return s
}

func count(ctx context.Context, t *testing.T, js string) int {
	t.Helper()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](js))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return n
}

// flowctl ui against a real collector over mTLS, in headless Chromium: the fleet, host and sample pages
// show the stored hosts, samples and flows; charts are drawn; the sample table pages, filters and sorts
// on the server; a new sample arrives live; a flow name with markup is text and runs nothing; admin
// actions refuse GET and POSTs without the CSRF token, and the collector's PermissionDenied for a reader
// is shown.
func TestUIBrowser(t *testing.T) {
	p := pkitest.New(t)
	p.Issue(t, auth.RoleCollector, "c", pki.IssueOptions{})
	reader := p.Issue(t, auth.RoleReader, "alice", pki.IssueOptions{})
	sensor := p.Issue(t, auth.RoleSensor, "web01", pki.IssueOptions{})
	var enriched string
	var cats []string
	big := make([]string, 250)
	for i := range big {
		big[i] = fmt.Sprintf("host%03d.example", i)
	}
	big[37] = evilName
	bigWS := time.Now().Unix()/60*60 - 3600 // within the fleet chart's last day
	addr := startCollectorRun(t, p, func(st store.Store) {
		enriched, cats = seedEnriched(t, st)
		storeSample(t, st, "db02", bigWS, big)
	}, true)
	base := startUI(t, "--collector", addr, "--cert", reader.CertFile, "--key", reader.KeyFile, "--ca", p.CAFile())
	ctx := browser(t)

	// Fleet page: both hosts, a chart each, and a live update when the collector writes a sample.
	if err := chromedp.Do(ctx, chromedp.Navigate(base), chromedp.WaitVisible(chromedp.CSS(`tr[data-host="db02"]`)),
		chromedp.Poll[chromedp.Void](`document.getElementById("live").textContent.includes("connected")`)); err != nil {
		t.Fatal(err)
	}
	if n := count(ctx, t, `document.querySelectorAll("#hosts tbody tr").length`); n != 2 {
		t.Fatalf("%d host rows, want 2", n)
	}
	ws := time.Now().Unix()/60*60 - 120
	ingestWindow(t, addr, sensor, ws, "live.example")
	want := fmt.Sprintf("web01_%d", ws)
	if err := chromedp.Do(ctx, chromedp.Poll[chromedp.Void](fmt.Sprintf(`document.querySelector('tr[data-host="web01"] .latest').textContent.includes(%q)`, want))); err != nil {
		t.Fatalf("live update for %s: %v (live line %q)", want, err, text(ctx, t, "#live"))
	}
	// After a reload both hosts have a sample in the last day: two charts.
	if err := chromedp.Do(ctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`#hosts .uplot`))); err != nil {
		t.Fatal(err)
	}
	if n := count(ctx, t, `document.querySelectorAll("#hosts .uplot").length`); n != 2 {
		t.Fatalf("%d charts, want 2", n)
	}
	screenshot(t, ctx, "fleet")

	// Host page: the timeline with the enriched sample's verdict colour, click through to the sample.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"hosts/web01"), chromedp.WaitVisible(chromedp.CSS("#timeline"))); err != nil {
		t.Fatal(err)
	}
	if n := count(ctx, t, `document.querySelectorAll("#timeline li").length`); n != 2 {
		t.Fatalf("%d samples on the timeline, want 2", n)
	}
	if n := count(ctx, t, `document.querySelectorAll("#timeline li.verdict-malicious").length`); n != 1 {
		t.Fatalf("%d malicious samples on the timeline, want 1", n)
	}
	screenshot(t, ctx, "host")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#timeline li.verdict-malicious a`)), chromedp.WaitVisible(chromedp.CSS("#verdict"))); err != nil {
		t.Fatal(err)
	}
	if v := text(ctx, t, "#verdict"); v != "malicious (high)" {
		t.Fatalf("verdict %q", v)
	}
	if n := count(ctx, t, fmt.Sprintf(`[...document.querySelectorAll("#flows td.category")].filter(td => td.textContent === %q).length`, cats[0])); n != 1 {
		t.Fatalf("category %s on %d rows, want 1", cats[0], n)
	}

	// Sample page of 250 flows: 100 a page, server-side paging, filter and sort; the hostile name is text.
	if err := chromedp.Do(ctx, chromedp.Navigate(fmt.Sprintf("%ssamples/db02_%d", base, bigWS)), chromedp.WaitVisible(chromedp.CSS("#flows"))); err != nil {
		t.Fatal(err)
	}
	rows := `document.querySelectorAll("#flows tbody tr").length`
	if n := count(ctx, t, rows); n != 100 {
		t.Fatalf("first page: %d rows, want 100", n)
	}
	if n := count(ctx, t, `document.querySelectorAll("#hosts .uplot, .bars .uplot").length`); n != 1 {
		t.Fatalf("top destinations chart: %d", n)
	}
	if n := count(ctx, t, `document.querySelectorAll("#flows img").length`); n != 0 {
		t.Fatal("the flow name became an <img> element")
	}
	if n := count(ctx, t, fmt.Sprintf(`[...document.querySelectorAll("#flows td.name")].filter(td => td.textContent === %q).length`, evilName)); n != 1 {
		t.Fatalf("raw name shown on %d rows, want 1", n)
	}
	screenshot(t, ctx, "sample")
	for page, want := range []int{100, 50} {
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#next")),
			chromedp.Poll[chromedp.Void](fmt.Sprintf(`document.querySelector("#flows tbody tr td.name").textContent === "host%03d.example"`, 100*(page+1)))); err != nil {
			t.Fatalf("page %d: %v", page+2, err)
		}
		if n := count(ctx, t, rows); n != want {
			t.Fatalf("page %d: %d rows, want %d", page+2, n, want)
		}
	}
	if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS("#q"), "onerror"), chromedp.Click(chromedp.CSS("#filter button")),
		chromedp.WaitVisible(chromedp.CSS("#matching"))); err != nil {
		t.Fatal(err)
	}
	if m, n := text(ctx, t, "#matching"), count(ctx, t, rows); m != "1 matching flows" || n != 1 {
		t.Fatalf("filter: %q, %d rows", m, n)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(fmt.Sprintf("%ssamples/db02_%d?sort=name&desc=1", base, bigWS)),
		chromedp.WaitVisible(chromedp.CSS("#matching"))); err != nil {
		t.Fatal(err)
	}
	if first := text(ctx, t, "#flows tbody tr td.name"); first != "host249.example" {
		t.Fatalf("sorted by name descending, first %q", first)
	}

	// A reader's re-relay: the form posts with the CSRF token and the collector's refusal is explained.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"samples/"+enriched), chromedp.Click(chromedp.CSS("#relay")),
		chromedp.WaitVisible(chromedp.CSS("#message"))); err != nil {
		t.Fatal(err)
	}
	if m := text(ctx, t, "#message"); !strings.Contains(m, "role does not allow") {
		t.Fatalf("reader's re-relay: %q", m)
	}
	checkUIHTTP(t, base, enriched, cats[0])
}

// checkUIHTTP checks, with a plain HTTP client: the security headers, GET and CSRF-less POST refused on
// admin actions, and the .bf and labeled .bf downloads.
func checkUIHTTP(t *testing.T, base, id, category string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	get := func(path string) (*http.Response, []byte) {
		resp, err := c.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	resp, _ := get("")
	if resp.Header.Get("Content-Security-Policy") != "default-src 'self'; script-src 'self'; object-src 'none'; frame-ancestors 'none'; style-src 'self'" ||
		resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("headers %v", resp.Header)
	}
	if resp, _ := get("samples/" + id + "/relay"); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET relay: %s", resp.Status)
	}
	post, err := c.PostForm(base+"samples/"+id+"/enrich", url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	post.Body.Close()
	if post.StatusCode != http.StatusForbidden {
		t.Fatalf("POST enrich without CSRF token: %s", post.Status)
	}
	resp, plain := get("samples/" + id + "/content")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("download: %s", resp.Status)
	}
	f, err := bayseflow.Decode(plain)
	if err != nil || len(f.Flows) != 3 || f.Flows[0].Label != "" {
		t.Fatalf("download: %v, %+v", err, f)
	}
	resp, labeled := get("samples/" + id + "/content?labeled=1")
	f, err = bayseflow.Decode(labeled)
	if resp.StatusCode != http.StatusOK || err != nil || len(f.Flows) != 3 || f.Flows[0].Label != category {
		t.Fatalf("labeled download: %s %v", resp.Status, err)
	}
}

// BenchmarkUISampleFirstPage measures the sample page of a 100,000-flow sample, served from a real
// collector over mTLS: one ListSampleFlows page, not the whole sample (figures in bench/README.md).
func BenchmarkUISampleFirstPage(b *testing.B) {
	p := pkitest.New(b)
	p.Issue(b, auth.RoleCollector, "c", pki.IssueOptions{})
	reader := p.Issue(b, auth.RoleReader, "alice", pki.IssueOptions{})
	names := make([]string, 100_000)
	for i := range names {
		names[i] = fmt.Sprintf("h%06d.example", i)
	}
	var id string
	addr := startCollectorWith(b, p, func(st store.Store) { id, _ = storeSample(b, st, "big", 1_764_064_800, names) })
	base := startUI(b, "--collector", addr, "--cert", reader.CertFile, "--key", reader.KeyFile, "--ca", p.CAFile())
	b.ResetTimer()
	for b.Loop() {
		resp, err := http.Get(base + "samples/" + id)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "h000099.example") {
			b.Fatalf("%s", resp.Status)
		}
	}
}

// A non-loopback --listen needs --allow-remote, and then the printed URL carries the access token,
// without which the console answers 401.
func TestUIRemoteNeedsToken(t *testing.T) {
	p := pkitest.New(t)
	p.Issue(t, auth.RoleCollector, "c", pki.IssueOptions{})
	reader := p.Issue(t, auth.RoleReader, "alice", pki.IssueOptions{})
	addr := startCollector(t, p)
	conn := []string{"--collector", addr, "--cert", reader.CertFile, "--key", reader.KeyFile, "--ca", p.CAFile()}
	if out, err := flowctl(append([]string{"ui", "--listen", "0.0.0.0:0"}, conn...)...); err == nil || !strings.Contains(err.Error(), "--allow-remote") {
		t.Fatalf("non-loopback without --allow-remote: %v\n%s", err, out)
	}
	u, err := url.Parse(startUI(t, append([]string{"--listen", "0.0.0.0:0", "--allow-remote"}, conn...)...))
	if err != nil {
		t.Fatal(err)
	}
	token := u.Query().Get("token")
	if len(token) != 48 {
		t.Fatalf("token %q in %s", token, u)
	}
	base := "http://127.0.0.1:" + u.Port() + "/"
	resp, err := http.Get(base)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without token: %s", resp.Status)
	}
	jar, _ := cookiejar.New(nil)
	resp, err = (&http.Client{Jar: jar}).Get(base + "?token=" + token)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "No hosts yet.") {
		t.Fatalf("with token: %s\n%s", resp.Status, body)
	}
}
