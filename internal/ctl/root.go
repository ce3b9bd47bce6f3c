// Package ctl holds flowctl's command tree: offline conversion (convert), collector queries (samples,
// hosts), certificates (certs) and the NetworkSage tools (sage). Each command reads its settings from
// flags, a config file and FLOWFLEET_* environment variables through its own viper instance, so tests
// can build a fresh tree.
package ctl

import (
	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/flowfleet/flowfleet/internal/cli"
)

// NewRootCommand builds the flowctl command tree.
func NewRootCommand() *cobra.Command {
	vp := cli.NewViper()
	root := &cobra.Command{
		Use:   "flowctl",
		Short: "Convert captures and flow logs to BayseFlow, and query a FlowFleet collector",
		Long: `flowctl is FlowFleet's command-line tool.

It converts packet captures (PCAP, PCAPNG, CAP), Zeek conn.log/dns.log (TSV or JSON), Interflow JSON and
NetFlow v9 CSV into BayseFlow files exactly as the reference converter bayse-tools 1.0.5 does, and it
talks to a FlowFleet collector over mutual TLS.

Settings come from flags, from FLOWFLEET_* environment variables (FLOWFLEET_NAME_CACHE for --name-cache)
and from a config file: --config, else FLOWFLEET_CONFIG, else the client config that 'flowctl config
init' writes ($XDG_CONFIG_HOME/flowfleet/flowctl.yaml) when it exists.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().String("config", "", "config file (YAML, TOML or JSON) with flowctl settings")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		return loadConfig(vp, cmd)
	}
	root.AddCommand(newConvertCommand(vp), newShowCommand(vp), newSamplesCommand(vp), newFlowsCommand(vp), newHostsCommand(vp),
		newSageCommand(vp), newConfigCommand(vp), newCertsCommand(), newUICommand(vp))
	cli.AddVersion(root)
	return root
}

// loadConfig reads the config file, if any, and binds the command's flags so that a flag given on the
// command line wins over the environment, which wins over the file.
func loadConfig(vp *viper.Viper, cmd *cobra.Command) error {
	if err := vp.BindPFlags(cmd.Flags()); err != nil {
		return err
	}
	path, err := configPath(cmd)
	if err != nil || path == "" {
		return err
	}
	return cli.ReadConfigFile(vp, path)
}
