"""wideth.diagnostics."""
