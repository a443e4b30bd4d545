"""Docstring examples in the library are executed, so they stay true."""

import doctest
import importlib
import pkgutil

import pytest

import wideth

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(wideth.__path__, prefix="wideth.")
    if not m.name.endswith("__main__")
)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
