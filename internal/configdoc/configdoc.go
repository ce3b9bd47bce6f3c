// Package configdoc renders the configuration reference (docs/config.md) from the programs' own command
// definitions, so that every flag, environment variable and default in the document is the one the code
// has. Its test fails when docs/config.md is stale; `go test ./internal/configdoc -update` rewrites it.
package configdoc

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Program is one executable's command tree.
type Program struct {
	Name  string
	About string
	Cmd   *cobra.Command
}

// Render returns the Markdown reference for the programs.
func Render(programs ...Program) string {
	var b strings.Builder
	b.WriteString("# Configuration reference\n\n")
	b.WriteString("Generated from the code by `go test ./internal/configdoc -update`; do not edit by hand.\n\n")
	b.WriteString("Every setting is a flag, a `FLOWFLEET_*` environment variable (the flag name upper-cased, `-` → `_`)\n")
	b.WriteString("and a key of the file given with `--config` (YAML, TOML or JSON; keys are the flag names). A flag on\n")
	b.WriteString("the command line wins over the environment, which wins over the file.\n")
	for _, p := range programs {
		fmt.Fprintf(&b, "\n## %s\n\n%s\n", p.Name, p.About)
		walk(&b, p.Cmd, p.Name)
	}
	return b.String()
}

func walk(b *strings.Builder, c *cobra.Command, path string) {
	if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
		return
	}
	var flags []*pflag.Flag
	c.LocalFlags().VisitAll(func(f *pflag.Flag) {
		if f.Name != "help" && !f.Hidden {
			flags = append(flags, f)
		}
	})
	if len(flags) > 0 {
		fmt.Fprintf(b, "\n### `%s`\n\n%s\n\n", path, c.Short)
		b.WriteString("| flag | environment | default | meaning |\n| --- | --- | --- | --- |\n")
		sort.Slice(flags, func(i, j int) bool { return flags[i].Name < flags[j].Name })
		for _, f := range flags {
			def := f.DefValue
			if dir, err := os.UserCacheDir(); err == nil && strings.HasPrefix(def, dir) {
				def = "$XDG_CACHE_HOME" + strings.TrimPrefix(def, dir) // the same on every machine
			}
			if def == "" || def == "[]" {
				def = "—"
			} else {
				def = "`" + def + "`"
			}
			env := "FLOWFLEET_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
			name := "`--" + f.Name + "`"
			if f.Shorthand != "" {
				name = "`-" + f.Shorthand + "`, " + name
			}
			fmt.Fprintf(b, "| %s | `%s` | %s | %s |\n", name, env, def, strings.ReplaceAll(f.Usage, "|", "\\|"))
		}
	}
	subs := c.Commands()
	sort.Slice(subs, func(i, j int) bool { return subs[i].Name() < subs[j].Name() })
	for _, s := range subs {
		walk(b, s, path+" "+s.Name())
	}
}
