"""wideth.optim."""
