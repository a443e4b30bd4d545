"""Counting XLA compilations in tests (JAX's compile log, a public switch)."""

import contextlib
import logging

import jax


@contextlib.contextmanager
def count_compiles():
    """Count XLA compilations (JAX's compile log) inside the block."""
    records: list[str] = []

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            msg = record.getMessage()
            if msg.startswith("Compiling"):
                records.append(msg)

    handler = Handler(level=logging.DEBUG)
    loggers = [logging.getLogger(n) for n in ("jax", "jax._src")]
    old = [(lg.level, lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    try:
        with jax.log_compiles(True):
            yield records
    finally:
        for lg, (level, prop) in zip(loggers, old, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)
            lg.propagate = prop
