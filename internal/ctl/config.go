package ctl

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"
	"sigs.k8s.io/yaml"

	"github.com/flowfleet/flowfleet/pkg/atomicfile"
)

// clientKeys are the connection settings `flowctl config init` writes and every collector query reads
// (addConnFlags), in the order `flowctl config view` shows them.
var clientKeys = []string{"collector", "cert", "key", "ca", "server-name", "timeout"}

// configFileEnv names the config file in the environment, like --config.
const configFileEnv = "FLOWFLEET_CONFIG"

// DefaultConfigPath is the client config flowctl reads when neither --config nor FLOWFLEET_CONFIG names
// one: $XDG_CONFIG_HOME/flowfleet/flowctl.yaml (~/.config/flowfleet/flowctl.yaml when unset).
func DefaultConfigPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no config directory: %w", err)
	}
	return filepath.Join(dir, "flowfleet", "flowctl.yaml"), nil
}

// configPath returns the config file in force: --config, then FLOWFLEET_CONFIG, then the default path
// if that file exists ("" when none applies).
func configPath(cmd *cobra.Command) (string, error) {
	if f := cmd.Flags().Lookup("config"); f != nil && f.Changed {
		return f.Value.String(), nil
	}
	if p := os.Getenv(configFileEnv); p != "" {
		return p, nil
	}
	p, err := DefaultConfigPath()
	if err != nil {
		return "", nil // no home directory: no default file, which is not an error
	}
	if _, err := os.Stat(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil
		}
		return "", fmt.Errorf("config %s: %w", p, err)
	}
	return p, nil
}

func newConfigCommand(vp *viper.Viper) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Write and show flowctl's client config (which collector, which certificate)",
		Long: `flowctl reads its settings from flags, FLOWFLEET_* environment variables and a config file, in that order
of precedence. The config file is --config, else FLOWFLEET_CONFIG, else the default client config
$XDG_CONFIG_HOME/flowfleet/flowctl.yaml (~/.config/flowfleet/flowctl.yaml) when it exists.

Write the default client config once with 'flowctl config init', and queries need no flags:

  flowctl config init --collector collector.example:7443 --cert reader.pem --key reader-key.pem --ca ca.pem
  flowctl samples list`,
	}
	cmd.AddCommand(newConfigInitCommand(), newConfigViewCommand(vp))
	return cmd
}

func newConfigInitCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Write the client config: collector address and certificate files",
		Example: `  flowctl config init --collector collector.example:7443 --cert reader.pem --key reader-key.pem --ca ca.pem
  flowctl config init --file ./flowctl.yaml --collector 10.0.0.5:7443 --cert … --key … --ca … --force`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runConfigInit(cmd) },
	}
	addTargetFlags(cmd, "")
	f := cmd.Flags()
	f.String("file", "", "where to write (default: $XDG_CONFIG_HOME/flowfleet/flowctl.yaml)")
	f.Bool("force", false, "replace an existing file")
	return cmd
}

// runConfigInit checks the settings and writes them, with absolute file names, readable by the owner only.
func runConfigInit(cmd *cobra.Command) error {
	f := cmd.Flags()
	get := func(name string) string { v, _ := f.GetString(name); return strings.TrimSpace(v) }
	settings := map[string]string{}
	addr := get("collector")
	if addr == "" {
		return errors.New("--collector is required (host:port of the collector)")
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("--collector %q: %w", addr, err)
	}
	settings["collector"] = addr
	for _, name := range []string{"cert", "key", "ca"} {
		p := get(name)
		if p == "" {
			return fmt.Errorf("--%s is required", name)
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return fmt.Errorf("--%s: %w", name, err)
		}
		if _, err := os.ReadFile(abs); err != nil {
			return fmt.Errorf("--%s: %w", name, err)
		}
		settings[name] = abs
	}
	if err := checkValidity(settings["cert"], time.Now()); err != nil {
		return err
	}
	if sn := get("server-name"); sn != "" {
		settings["server-name"] = sn
	}
	path := get("file")
	if path == "" {
		var err error
		if path, err = DefaultConfigPath(); err != nil {
			return fmt.Errorf("%w: name a file with --file", err)
		}
	}
	if force, _ := f.GetBool("force"); !force {
		if _, err := os.Stat(path); err == nil {
			return fmt.Errorf("%s exists: add --force to replace it", path)
		}
	}
	body, err := yaml.Marshal(settings)
	if err != nil {
		return err
	}
	body = append([]byte("# flowctl client config, written by flowctl config init\n"), body...)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("config directory: %w", err)
	}
	if err := atomicfile.WriteFile(path, body, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: flowctl now reaches %s with %s\n", path, addr, settings["cert"])
	return nil
}

func newConfigViewCommand(vp *viper.Viper) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "view",
		Short: "Show the connection settings in force and where each comes from",
		Example: `  flowctl config view
  FLOWFLEET_COLLECTOR=other:7443 flowctl config view -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runConfigView(cmd, vp) },
	}
	addConnFlags(cmd)
	cmd.Flags().StringP("output", "o", "table", "output: table or json")
	return cmd
}

// setting is one row of `flowctl config view`.
type setting struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Source string `json:"source"`
}

// resolveSettings says, for each connection key, the value in force and its source: flag, environment
// variable, config file or default.
func resolveSettings(cmd *cobra.Command, vp *viper.Viper) ([]setting, string) {
	file := vp.ConfigFileUsed()
	var out []setting
	for _, k := range clientKeys {
		s := setting{Key: k, Value: vp.GetString(k), Source: "default"}
		env := "FLOWFLEET_" + strings.ToUpper(strings.ReplaceAll(k, "-", "_"))
		switch {
		case cmd.Flags().Changed(k):
			s.Source = "flag --" + k
		case os.Getenv(env) != "":
			s.Source = "env " + env
		case file != "" && vp.InConfig(k):
			s.Source = "file " + file
		}
		out = append(out, s)
	}
	return out, file
}

func runConfigView(cmd *cobra.Command, vp *viper.Viper) error {
	rows, file := resolveSettings(cmd, vp)
	w := cmd.OutOrStdout()
	switch o, _ := cmd.Flags().GetString("output"); o {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			ConfigFile string    `json:"configFile"`
			Settings   []setting `json:"settings"`
		}{file, rows})
	case "table", "":
		return writeSettings(w, rows, file)
	default:
		return fmt.Errorf("-o %q: want table or json", o)
	}
}

func writeSettings(w io.Writer, rows []setting, file string) error {
	if file == "" {
		def, _ := DefaultConfigPath()
		fmt.Fprintf(w, "config file: none (write %s with: flowctl config init)\n", def)
	} else {
		fmt.Fprintf(w, "config file: %s\n", sanitize(file))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tVALUE\tSOURCE")
	for _, r := range rows {
		v := r.Value
		if v == "" {
			v = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Key, sanitize(v), sanitize(r.Source))
	}
	return tw.Flush()
}
