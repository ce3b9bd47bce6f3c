package ctl

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/pki"
	"github.com/flowfleet/flowfleet/internal/pki/pkitest"
)

// flowctl config init writes the default client config once; after it, queries need no connection flags,
// and flags and FLOWFLEET_* variables still win over the file, as config view shows.
func TestConfigInitThenBareQueries(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "xdg"))
	t.Setenv(configFileEnv, "")
	p := pkitest.New(t)
	p.Issue(t, auth.RoleCollector, "c", pki.IssueOptions{})
	reader := p.Issue(t, auth.RoleReader, "alice", pki.IssueOptions{})
	addr := startCollector(t, p)
	caFile := p.CAFile()

	// Without a config, a query says what is missing.
	if out, err := flowctl("samples", "list", "--collector", addr); err == nil || !strings.Contains(err.Error(), "--cert is required") {
		t.Fatalf("a query with no certificate: err %v, out %q", err, out)
	}

	out, err := flowctl("config", "init", "--collector", addr, "--cert", reader.CertFile, "--key", reader.KeyFile, "--ca", caFile)
	if err != nil {
		t.Fatalf("config init: %v\n%s", err, out)
	}
	path := filepath.Join(dir, "xdg", "flowfleet", "flowctl.yaml")
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("config init wrote no %s: %v (said %q)", path, err, out)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600 (it names a private key)", path, st.Mode().Perm())
	}
	if _, err := flowctl("config", "init", "--collector", addr, "--cert", reader.CertFile, "--key", reader.KeyFile, "--ca", caFile); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Errorf("a second config init without --force: err %v, want a refusal that names --force", err)
	}

	if out, err := flowctl("samples", "list"); err != nil || !strings.Contains(out, "ID") {
		t.Fatalf("a bare samples list after config init: %v\n%s", err, out)
	}
	if out, err := flowctl("hosts", "list", "-o", "json"); err != nil || !strings.HasPrefix(strings.TrimSpace(out), "[") {
		t.Fatalf("a bare hosts list after config init: %v\n%s", err, out)
	}

	view := func(args ...string) map[string]setting {
		t.Helper()
		out, err := flowctl(append([]string{"config", "view", "-o", "json"}, args...)...)
		if err != nil {
			t.Fatalf("config view: %v\n%s", err, out)
		}
		var v struct {
			ConfigFile string    `json:"configFile"`
			Settings   []setting `json:"settings"`
		}
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if v.ConfigFile != path {
			t.Errorf("config view names file %q, want %q", v.ConfigFile, path)
		}
		m := map[string]setting{}
		for _, s := range v.Settings {
			m[s.Key] = s
		}
		return m
	}
	m := view()
	if s := m["collector"]; s.Value != addr || s.Source != "file "+path {
		t.Errorf("collector: %+v, want %s from the file", s, addr)
	}
	if s := m["timeout"]; s.Source != "default" || s.Value != "10s" {
		t.Errorf("timeout: %+v, want the default 10s", s)
	}
	t.Setenv("FLOWFLEET_COLLECTOR", "env.example:7443")
	if s := view()["collector"]; s.Value != "env.example:7443" || s.Source != "env FLOWFLEET_COLLECTOR" {
		t.Errorf("collector with FLOWFLEET_COLLECTOR set: %+v", s)
	}
	if s := view("--collector", "flag.example:7443")["collector"]; s.Value != "flag.example:7443" || s.Source != "flag --collector" {
		t.Errorf("collector with --collector: %+v", s)
	}
}

func TestConfigInitChecksItsInput(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--cert", "a", "--key", "b", "--ca", "c"}, "--collector is required"},
		{[]string{"--collector", "nohostport", "--cert", "a", "--key", "b", "--ca", "c"}, "--collector \"nohostport\""},
		{[]string{"--collector", "h:1", "--cert", filepath.Join(dir, "missing.pem"), "--key", "b", "--ca", "c"}, "--cert:"},
	} {
		_, err := flowctl(append([]string{"config", "init"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("config init %q: err %v, want it to say %q", tc.args, err, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "flowfleet", "flowctl.yaml")); err == nil {
		t.Error("a refused config init wrote a file")
	}
}
