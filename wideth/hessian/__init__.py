"""wideth.hessian."""
