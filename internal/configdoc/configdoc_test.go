package configdoc

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowfleet/flowfleet/internal/collector"
	"github.com/flowfleet/flowfleet/internal/ctl"
	"github.com/flowfleet/flowfleet/internal/sensor"
)

var update = flag.Bool("update", false, "rewrite docs/config.md")

func render() string {
	return Render(
		Program{Name: "collector", About: "The collector (`cmd/collector`).", Cmd: collector.NewCommand()},
		Program{Name: "sensor", About: "The sensor (`cmd/sensor`).", Cmd: sensor.NewCommand(nil)},
		Program{Name: "flowctl", About: "The command-line tool (`cmd/ctl`).", Cmd: ctl.NewRootCommand()},
	)
}

func TestConfigDocIsCurrent(t *testing.T) {
	path := filepath.Join("..", "..", "docs", "config.md")
	got := render()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run: go test ./internal/configdoc -update)", err)
	}
	if string(want) != got {
		t.Fatalf("docs/config.md is stale: run go test ./internal/configdoc -update")
	}
	for _, must := range []string{"`--window`", "`FLOWFLEET_SPOOL_DIR`", "`--name-cache`", "`--data-dir`"} {
		if !strings.Contains(got, must) {
			t.Errorf("the reference lacks %s", must)
		}
	}
}
