"""The activation registry's derivatives: closed forms against jax.grad."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wideth import activations

_PARAMS = {
    "abrelu": {"a": 0.3, "b": 1.5},
    "monomial": {"degree": 3},
    "rectified_monomial": {"degree": 3},
    "hermite": {"degree": 3},
    "polynomial": {"coef": (1.0, 2.0, 0.5)},
    "numerical": {"fn": jnp.sin},
}
_SPECS = [(n, _PARAMS[n]) if n in _PARAMS else n for n in activations.NAMES] + [
    ("erf", {"a": 2.0, "b": 0.5, "c": 1.0}),
    ("numerical", {"fn": jnp.tanh, "df": lambda z: 1.0 - jnp.tanh(z) ** 2}),
]


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize(
    "spec", _SPECS, ids=[f"{s if isinstance(s, str) else s[0]}-{i}" for i, s in enumerate(_SPECS)]
)
def test_derivative_equals_autodiff(spec, order, x64):
    """phi' and phi'' (closed forms where registered) equal nested jax.grad away from kinks."""
    act = activations.resolve(spec)
    z = jnp.linspace(-3.0, 3.0, 25) + 0.013
    g = lambda t: jnp.asarray(act.fn(t), t.dtype)
    for _ in range(order):
        g = jax.grad(g)
    np.testing.assert_allclose(
        activations.derivative(spec, order)(z), jax.vmap(g)(z), rtol=1e-12, atol=1e-12
    )


def test_derivative_conventions_and_a_wrong_closed_form_fails(x64):
    """relu'(0) = 0 as jax.nn.relu's gradient, relu'' = 0; sigmoid'' differs from sigmoid'."""
    assert float(activations.derivative("relu")(jnp.asarray(0.0))) == 0.0
    assert float(activations.derivative("relu", 2)(jnp.asarray(0.7))) == 0.0
    z = jnp.linspace(-2.0, 2.0, 9) + 0.1
    d1, d2 = activations.derivative("sigmoid", 1)(z), activations.derivative("sigmoid", 2)(z)
    assert float(jnp.max(jnp.abs(d1 - d2))) > 0.1
