// Command startfloor is the start-up floor make bench compares docker-tls
// with: a Docker CLI plugin that links only docker/cli's plugin and command
// packages, and does nothing. Whatever docker-tls takes beyond it to answer
// the metadata call is its own.
package main

import (
	"github.com/docker/cli/cli-plugins/metadata"
	"github.com/docker/cli/cli-plugins/plugin"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"
)

func main() {
	plugin.Run(func(command.Cli) *cobra.Command {
		return &cobra.Command{Use: "floor", RunE: func(*cobra.Command, []string) error { return nil }}
	}, metadata.Metadata{SchemaVersion: "0.1.0", Vendor: "docker-tls", Version: "floor"})
}
