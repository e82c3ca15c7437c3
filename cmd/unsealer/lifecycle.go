package main

import (
	"github.com/spf13/cobra"

	"github.com/keyshare/keyshare/internal/unsealer"
)

// lifecycleCommands are init, unseal and rekey (see internal/lifecycle).
func lifecycleCommands(load func(*cobra.Command) (unsealer.Config, error)) []*cobra.Command {
	_ = load
	return nil
}
