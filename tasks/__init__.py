"""Luigi tasks, one module per stage. Each declares params, requires and output, then calls the core."""
