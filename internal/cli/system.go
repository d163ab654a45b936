package cli

import (
	"fmt"
	"io"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cnet-dev/cnet/internal/api"
)

// versionInfo is what `cnet version --format` templates see, as docker's: .Client and .Server.
type versionInfo struct {
	Client struct {
		Version, APIVersion, GoVersion, Os, Arch string
	}
	Server *api.VersionResponse
}

func newVersionCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "version [OPTIONS]",
		Short: "Show the cnet version information",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var v versionInfo
			v.Client.Version, v.Client.APIVersion, v.Client.GoVersion = api.EngineVersion, api.Version, runtime.Version()
			v.Client.Os, v.Client.Arch = runtime.GOOS, runtime.GOARCH
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			server, serr := c.Version(cmd.Context())
			if serr == nil {
				v.Server = &server
			}
			out := cmd.OutOrStdout()
			if format != "" {
				t, err := parseTemplate(format, templateFuncs)
				if err != nil {
					return err
				}
				if err := t.Execute(out, v); err != nil {
					return err
				}
				fmt.Fprintln(out)
				return serr
			}
			fmt.Fprintf(out, "Client:\n Version:           %s\n API version:       %s\n Go version:        %s\n OS/Arch:           %s/%s\n",
				v.Client.Version, v.Client.APIVersion, v.Client.GoVersion, v.Client.Os, v.Client.Arch)
			if v.Server != nil {
				fmt.Fprintf(out, "\nServer: %s\n Engine:\n  Version:          %s\n  API version:      %s (minimum version %s)\n  Go version:       %s\n  Git commit:       %s\n  OS/Arch:          %s/%s\n  Kernel version:   %s\n",
					server.Platform.Name, server.Version, server.APIVersion, server.MinAPIVersion, server.GoVersion, server.GitCommit, server.Os, server.Arch, server.KernelVersion)
			}
			return serr
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format the output using the given Go template")
	return cmd
}

func newInfoCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "info [OPTIONS]",
		Short: "Display system-wide information",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			in, err := c.Info(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if format != "" {
				t, err := parseTemplate(format, templateFuncs)
				if err != nil {
					return err
				}
				if err := t.Execute(out, in); err != nil {
					return err
				}
				fmt.Fprintln(out)
				return nil
			}
			writeInfo(out, in)
			return nil
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format the output using the given Go template")
	return cmd
}

// writeInfo prints the server part of docker info's layout, for what cnet has.
func writeInfo(out io.Writer, in api.Info) {
	fmt.Fprintf(out, "Server:\n Containers: %d\n  Running: %d\n  Paused: %d\n  Stopped: %d\n Images: %d\n",
		in.Containers, in.ContainersRunning, in.ContainersPaused, in.ContainersStopped, in.Images)
	fmt.Fprintf(out, " Server Version: %s\n Storage Driver: %s\n Logging Driver: %s\n", in.ServerVersion, in.Driver, in.LoggingDriver)
	fmt.Fprintf(out, " Plugins:\n  Network: %s\n  Log: %s\n Swarm: %s\n", strings.Join(in.Plugins.Network, " "), strings.Join(in.Plugins.Log, " "), in.Swarm.LocalNodeState)
	fmt.Fprintf(out, " Kernel Version: %s\n Operating System: %s\n OSType: %s\n Architecture: %s\n CPUs: %d\n Total Memory: %s\n",
		in.KernelVersion, in.OperatingSystem, in.OSType, in.Architecture, in.NCPU, humanSize(in.MemTotal))
	fmt.Fprintf(out, " Name: %s\n ID: %s\n Docker Root Dir: %s\n", in.Name, in.ID, in.DockerRootDir)
	if len(in.RegistryConfig.InsecureRegistryCIDRs)+len(in.RegistryConfig.IndexConfigs) > 0 {
		fmt.Fprintln(out, " Insecure Registries:")
		for name := range in.RegistryConfig.IndexConfigs {
			fmt.Fprintf(out, "  %s\n", name)
		}
		for _, cidr := range in.RegistryConfig.InsecureRegistryCIDRs {
			fmt.Fprintf(out, "  %s\n", cidr)
		}
	}
}
