// Command docker-tls is the docker-tls Docker CLI plugin. Installed as
// ~/.docker/cli-plugins/docker-tls it runs as `docker tls …`; run directly it
// takes the same words (`docker-tls ca init`) and the docker CLI's global
// flags (--config, --context, …).
package main

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

	"github.com/docker-tls/docker-tls/plugin"
)

// version is stamped by the Makefile (-X main.version=…).
var version = "dev"

func meta() metadata.Metadata {
	return metadata.Metadata{
		SchemaVersion:    "0.1.0",
		Vendor:           "docker-tls",
		Version:          version,
		ShortDescription: "Mutual TLS for remote Docker engines: CAs, certificates, contexts",
		URL:              "https://github.com/docker-tls/docker-tls",
	}
}

func main() {
	// The docker CLI asks every plugin for its metadata, on every docker
	// command that lists plugins (docker --help, docker tls …): answered
	// here, as the plugin framework would, without building the command
	// tree or a Docker CLI first.
	if len(os.Args) == 2 && os.Args[1] == metadata.MetadataSubcommandName {
		enc := json.NewEncoder(os.Stdout)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "     ")
		if err := enc.Encode(meta()); err != nil {
			os.Exit(1)
		}
		return
	}
	if cliplugin.RunningStandalone() {
		os.Exit(runStandalone())
	}
	cliplugin.Run(plugin.NewRootCommand, meta())
}

// runStandalone runs the same command tree as the plugin, with the docker
// CLI's global flags parsed in front of it, the way docker/cli's plugin
// framework does for `docker tls`.
func runStandalone() int {
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
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
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
