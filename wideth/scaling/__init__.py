"""wideth.scaling."""
