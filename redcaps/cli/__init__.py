"""The `redcaps` command: the original tool's subcommands and the filter commands."""
