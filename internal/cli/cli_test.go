package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Flags, then the environment, then the file: the file gives what neither of the others sets.
func TestSettingsLayers(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(file, []byte("data-dir: /from/file\nlog-level: debug\nname: file-name\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvName("data-dir"), "/from/env")
	vp := NewViper()
	vp.SetDefault("name", "default-name")
	if err := ReadConfigFile(vp, file); err != nil {
		t.Fatal(err)
	}
	if got := vp.GetString("data-dir"); got != "/from/env" {
		t.Errorf("data-dir = %q, want the environment's over the file's", got)
	}
	if got := vp.GetString("log-level"); got != "debug" {
		t.Errorf("log-level = %q, want the file's", got)
	}
	if got := vp.GetString("name"); got != "file-name" {
		t.Errorf("name = %q, want the file's over the default", got)
	}
	if EnvName("networksage.api-key") != "FLOWFLEET_NETWORKSAGE_API_KEY" {
		t.Errorf("EnvName: %s", EnvName("networksage.api-key"))
	}
}

func TestReadConfigFileErrors(t *testing.T) {
	vp := NewViper()
	if err := ReadConfigFile(vp, ""); err != nil {
		t.Fatalf("no file: %v", err)
	}
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	if err := ReadConfigFile(vp, missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("a missing file: %v, want an error naming it", err)
	}
}
