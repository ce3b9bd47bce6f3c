package collector

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/collector/closer"
	"github.com/flowfleet/flowfleet/internal/pki"
	"github.com/flowfleet/flowfleet/internal/pki/pkitest"
	"github.com/flowfleet/flowfleet/internal/store"
)

var (
	crashBinOnce sync.Once
	crashBin     string
	crashBinErr  error
)

// collectorBinary builds ./cmd/collector once for the tests that run it as a real process.
func collectorBinary(t *testing.T) string {
	t.Helper()
	crashBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "flowfleet-collector-bin")
		if err != nil {
			crashBinErr = err
			return
		}
		crashBin = filepath.Join(dir, "collector")
		out, err := exec.Command("go", "build", "-o", crashBin, "../../cmd/collector").CombinedOutput()
		if err != nil {
			crashBinErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if crashBinErr != nil {
		t.Fatal(crashBinErr)
	}
	return crashBin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startCollectorProcess runs the collector binary and waits until it accepts connections.
func startCollectorProcess(t *testing.T, p *pkitest.PKI, dataDir, addr string, extra ...string) *exec.Cmd {
	t.Helper()
	files := p.Files(auth.RoleCollector, "collector")
	args := append([]string{"--listen", addr, "--metrics-listen", "", "--data-dir", dataDir, "--window", "60s",
		"--grace", "1h", "--max-flow-age", "0", // the flows are from 2023
		"--cert", files.CertFile, "--key", files.KeyFile, "--ca", files.CAFile}, extra...)
	cmd := exec.Command(collectorBinary(t), args...)
	logf, err := os.Create(filepath.Join(dataDir, fmt.Sprintf("collector-%d.log", time.Now().UnixNano())))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait(); logf.Close() })
	waitFor(t, "the collector to listen", func() bool {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return cmd
}

// A collector killed with SIGKILL right after acknowledging batches still has every acknowledged flow
// when it restarts, and closes the window into a sample holding all of them.
func TestAckedFlowsSurviveSIGKILL(t *testing.T) {
	p := newTestPKI(t)
	dataDir := t.TempDir()
	addr := freeAddr(t)
	proc := startCollectorProcess(t, p, dataDir, addr)
	sensor := p.Issue(t, auth.RoleSensor, "crash01", pki.IssueOptions{})
	s, err := openSensor(t, dialAs(t, addr, sensor), "crash-stream", 60)
	if err != nil {
		t.Fatal(err)
	}
	ws := int64(1_700_000_040)
	const batches, per = 20, 50
	for i := 0; i < batches; i++ {
		s.send(uint64(i+1), testFlows(ws, per, i*per))
	}
	for i := 0; i < batches; i++ {
		if _, dup := s.ack(); dup {
			t.Fatalf("unexpected duplicate")
		}
	}
	if err := proc.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, _ = proc.Process.Wait()

	startCollectorProcess(t, p, dataDir, addr)
	s2, err := openSensor(t, dialAs(t, addr, sensor), "crash-stream", 60)
	if err != nil {
		t.Fatal(err)
	}
	// The sensor never saw the acks of a batch it resends: the collector recognises it.
	s2.send(batches, testFlows(ws, per, (batches-1)*per))
	if seq, dup := s2.ack(); !dup || seq != batches {
		t.Fatalf("resent batch %d: ack %d dup %v, want a duplicate", batches, seq, dup)
	}
	s2.endWindow(ws, 60, 0)
	id, _ := closer.SampleName("crash01", ws, 1)
	waitFor(t, "the sample after restart", func() bool {
		st, err := store.Open(context.Background(), filepath.Join(dataDir, "flowfleet.db"))
		if err != nil {
			return false
		}
		defer st.Close()
		x, err := st.GetSample(context.Background(), id)
		if err != nil {
			return false
		}
		if x.FlowCount != batches*per {
			t.Fatalf("sample has %d flows, want %d", x.FlowCount, batches*per)
		}
		return true
	})
}
