"""Command-line tools beside the LightningCLI subcommands."""
