// Package pluginmain is the main function of both docker-tls executables:
// the plugin (cmd/docker-tls) and its database helper (cmd/docker-tls-db,
// the same program with the database drivers linked; package dbhelper says
// why there are two). Installed as ~/.docker/cli-plugins/docker-tls it runs
// as `docker tls …`; run directly it takes the same words (`docker-tls ca
// init`) and the docker CLI's global flags (--config, --context, …).
package pluginmain

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli-plugins/metadata"
	cliplugin "github.com/docker/cli/cli-plugins/plugin"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/internal/dbhelper"
	"github.com/docker-tls/docker-tls/plugin"
)

func meta(version string) metadata.Metadata {
	return metadata.Metadata{
		SchemaVersion:    "0.1.0",
		Vendor:           "docker-tls",
		Version:          version,
		ShortDescription: "Mutual TLS for remote Docker engines: CAs, certificates, contexts",
		URL:              "https://github.com/docker-tls/docker-tls",
	}
}

// Main runs docker-tls with os.Args and exits.
func Main(version string) {
	// The docker CLI asks every plugin for its metadata, on every docker
	// command that lists plugins (docker --help, docker tls …): answered
	// here, as the plugin framework would, without building the command
	// tree or a Docker CLI first.
	if len(os.Args) == 2 && os.Args[1] == metadata.MetadataSubcommandName {
		enc := json.NewEncoder(os.Stdout)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "     ")
		if err := enc.Encode(meta(version)); err != nil {
			os.Exit(1)
		}
		return
	}
	if cliplugin.RunningStandalone() {
		os.Exit(runStandalone(version))
	}
	cliplugin.Run(func(dockerCLI command.Cli) *cobra.Command {
		root := plugin.NewRootCommand(dockerCLI)
		// docker/cli's plugin framework asks a plugin that has its own
		// PersistentPreRunE to call the framework's from it.
		root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
			if err := handOff(cmd); err != nil {
				return err
			}
			return cliplugin.PersistentPreRunE(cmd, args)
		}
		return root
	}, meta(version))
}

// handOff runs a command that opens a CA's database in the helper
// (dbhelper.HandOff), and says what to do if the helper is missing.
func handOff(cmd *cobra.Command) error {
	err := dbhelper.HandOff(cmd)
	if errors.As(err, new(*dbhelper.MissingError)) {
		return fmt.Errorf("%w: install docker-tls again (make install puts both in place)", err)
	}
	return err
}

// runStandalone runs the same command tree as the plugin, with the docker
// CLI's global flags parsed in front of it, the way docker/cli's plugin
// framework does for `docker tls`.
func runStandalone(version string) int {
	dockerCLI, err := command.NewDockerCli()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	root := plugin.NewRootCommand(dockerCLI)
	root.Use = "docker-tls"
	root.Version = version
	root.TraverseChildren = true
	opts, flags := cli.SetupPluginRootCommand(root)
	root.SetIn(dockerCLI.In())
	root.SetOut(dockerCLI.Out())
	root.SetErr(dockerCLI.Err())
	tcmd := cli.NewTopLevelCommand(root, dockerCLI, opts, flags)
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if err := handOff(cmd); err != nil {
			return err
		}
		return tcmd.Initialize()
	}
	cmd, args, err := tcmd.HandleGlobalFlags()
	if err == nil {
		cmd.SetArgs(args)
		err = cmd.Execute()
	}
	if err == nil {
		return 0
	}
	var st cli.StatusError
	if errors.As(err, &st) {
		if st.Status != "" {
			fmt.Fprintln(dockerCLI.Err(), st.Status)
		}
		if st.StatusCode == 0 {
			return 1
		}
		return st.StatusCode
	}
	fmt.Fprintln(dockerCLI.Err(), err)
	return 1
}
