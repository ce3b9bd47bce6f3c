// Package cli is the command plumbing the three programs share: one way to layer settings (flags, then
// FLOWFLEET_* environment variables, then a config file) with viper. Only the command layer
// (internal/collector/command.go, internal/sensor/command.go, internal/ctl) uses it; domain code takes
// typed configuration.
package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/flowfleet/flowfleet/internal/buildinfo"

	"github.com/spf13/viper"
)

// EnvPrefix names every setting in the environment: FLOWFLEET_<FLAG>, with "-" and "." as "_"
// (FLOWFLEET_DATA_DIR for --data-dir).
const EnvPrefix = "FLOWFLEET"

// NewViper returns a fresh settings tree that reads FLOWFLEET_* variables. Each command builds its own,
// so tests build fresh trees.
func NewViper() *viper.Viper {
	vp := viper.New()
	vp.SetEnvPrefix(EnvPrefix)
	vp.SetEnvKeyReplacer(strings.NewReplacer("-", "_", ".", "_"))
	vp.AutomaticEnv()
	return vp
}

// EnvName is the environment variable of a flag: EnvName("data-dir") is FLOWFLEET_DATA_DIR.
func EnvName(flag string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(flag))
}

// ReadConfigFile layers a config file (YAML, TOML or JSON, by its extension; flag names as keys) under
// the flags and the environment; "" reads nothing.
func ReadConfigFile(vp *viper.Viper, path string) error {
	if path == "" {
		return nil
	}
	vp.SetConfigFile(path)
	if err := vp.ReadInConfig(); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// AddVersion gives a root command `--version` and a `version` subcommand, both printing String.
func AddVersion(root *cobra.Command) {
	root.Version = buildinfo.Version()
	root.SetVersionTemplate(buildinfo.String(root.Name()) + "\n")
	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), buildinfo.String(root.Name()))
			return err
		},
	})
}

// The logging flags of every program; logx.New builds the logger from their values.
const (
	FlagLogFormat = "log-format"
	FlagLogLevel  = "log-level"
)

// AddLogFlags adds --log-format (text) and --log-level (info).
func AddLogFlags(f *pflag.FlagSet) {
	f.String(FlagLogFormat, "text", "log format: text or json")
	f.String(FlagLogLevel, "info", "log level: debug, info, warn or error")
}
