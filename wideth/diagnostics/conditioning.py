r"""Conditioning of the tangent kernel and the PL inequalities that follow from it.

For a network with outputs :math:`F(\theta) \in \mathbb R^{nk}` on a batch and a
loss :math:`\mathcal L(\theta) = \ell(F(\theta))`, the gradient is
:math:`\nabla\mathcal L = J^\top\nabla\ell` and the empirical NTK Gram is
:math:`K = JJ^\top` (size :math:`nk \times nk`). The local PL ratio

.. math::

    \mu(\theta) = \frac{\|\nabla\mathcal L(\theta)\|^2}{2\,(\mathcal L(\theta) - \ell^\star)},
    \qquad \ell^\star = \inf_F \ell(F),

is then sandwiched by the extreme eigenvalues of :math:`K` (Liu, Zhu & Belkin
2022, Thm. 3; Balboni's thesis, ch. 4): since :math:`\|\nabla\mathcal L\|^2 =
\nabla\ell^\top K\nabla\ell`,

.. math::

    \lambda_{\min}(K)\,\mu_\ell \;\le\; \mu(\theta) \;\le\; \lambda_{\max}(K)\,\beta_\ell,

where :math:`\mu_\ell` is the PL constant of :math:`\ell` in output space
(:math:`\tfrac12\|\nabla\ell\|^2 \ge \mu_\ell(\ell - \ell^\star)`) and
:math:`\beta_\ell` its smoothness (:math:`\|\nabla\ell\|^2 \le 2\beta_\ell(\ell -
\ell^\star)` for a convex :math:`\beta_\ell`-smooth :math:`\ell`). For the mean
squared error :math:`\ell = \frac1{2n}\|F - y\|^2` (:func:`wideth.losses.mse`)
both constants are :math:`1/n` (:func:`square_loss_constants`), so the sandwich
is the Rayleigh quotient of the residual, exactly.

For an :math:`L`-smooth loss and gradient descent with step :math:`1/L` the
descent lemma :math:`\mathcal L_{i+1} \le \mathcal L_i - \|\nabla\mathcal
L_i\|^2/(2L)` reads :math:`\mathcal L_{i+1} - \ell^\star \le (1 -
\mu(\theta_i)/L)(\mathcal L_i - \ell^\star)`, so along the trajectory

.. math::

    \frac{\mathcal L_k - \ell^\star}{\mathcal L_0 - \ell^\star} \le
    \prod_{i<k}\Big(1 - \frac{\mu(\theta_i)}{L}\Big)

(:func:`pl_product_bound`; Balboni's thesis, ch. 4 and 7; Liu, Zhu & Belkin
2022, Thm. 6 with the local :math:`\mu`). The hypothesis is that :math:`L` bounds
the curvature of :math:`\mathcal L` on every segment
:math:`[\theta_i, \theta_{i+1}]`.

At initialisation the conditioning of :math:`K` is set by the architecture. In
the infinite-width limit the NNGP and NTK Grams of a fully connected network
with :math:`\sigma_b = 0` and weights scaled so that the pre-activation variance
stays 1 (:math:`\sigma_w^2 = 1/E[\phi(z)^2]`) follow the dual activation
:math:`\rho(c) = E[\phi(u)\phi(v)]/E[\phi(z)^2]` of :mod:`wideth.kernels.meanfield`
entrywise (:func:`dual_kernels`). Writing :math:`\phi = \sum_j a_j h_j` in
normalised Hermite polynomials, :math:`\rho(c) = \sum_j a_j^2 c^j / \sum_j
a_j^2`: a zero-mean activation (:math:`a_0 = 0`) has :math:`|\rho(c)| \le |c|`
with equality only at :math:`|c| = 1` for a non-linear :math:`\phi`, so off-diagonal
correlations contract to 0 with depth, the Grams approach a multiple of the
identity and their condition number falls towards 1 (Balboni's thesis, ch. 6).
A non-centred activation (ReLU: :math:`\rho(0) = 1/\pi`) drives all
correlations to 1 instead, the Gram towards a rank-one matrix, and its
condition number grows.

:func:`gershgorin_bound` is the cheap proxy :math:`\max_i \sum_j |K_{ij}| \ge
\lambda_{\max}(K)` (Gershgorin's circle theorem); it over-estimates by at most a
factor :math:`\sqrt{nk}` (:math:`\|K\|_\infty \le \sqrt{m}\,\|K\|_2` for an
:math:`m \times m` matrix).

References:
    Liu, Zhu & Belkin, `Loss landscapes and optimization in over-parameterized
    non-linear systems and neural networks <https://arxiv.org/abs/2003.00307>`_, 2022.
    Balboni, PhD thesis, ch. 4 (PL and the tangent kernel), 6 (conditioning at
    initialisation), 7 (PL along training).
    Daniely, Frostig & Singer, `Toward deeper understanding of neural networks: the
    power of initialization and a dual view on expressivity
    <https://arxiv.org/abs/1602.05897>`_, 2016 (dual activations).
    Gershgorin, Über die Abgrenzung der Eigenwerte einer Matrix, 1931.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from wideth import _checks
from wideth.kernels import meanfield

__all__ = [
    "condition_number",
    "dual_kernels",
    "gershgorin_bound",
    "normalised_weight_variance",
    "ntk_extreme_eigenvalues",
    "ntk_gram",
    "pl_kernel_bounds",
    "pl_product_bound",
    "square_loss_constants",
]

#: Largest ``n * k`` for which ``method="auto"`` forms the NTK Gram densely.
DENSE_MAX = 512

_METHODS = ("auto", "dense", "lanczos")
_DUAL = ("relu", "erf", "tanh", "identity")


def _square(name: str, gram: Any) -> jax.Array:
    k = _checks.array(name, gram, ndim=2, kind="real")
    if k.shape[0] != k.shape[1] or k.shape[0] == 0:
        raise ValueError(f"{name}: expected a non-empty square matrix, got {_checks.shape_str(k)}")
    _checks.symmetric(name, k)
    return k


def gershgorin_bound(gram: jax.Array) -> jax.Array:
    r"""Gershgorin's upper bound on the largest eigenvalue, :math:`\max_i \sum_j |K_{ij}|`.

    .. math::

        \lambda_{\max}(K) \le \max_i \Big(K_{ii} + \sum_{j \ne i}|K_{ij}|\Big)
        \le \max_i \sum_j |K_{ij}| \le \sqrt m\,\lambda_{\max}(K)

    for a symmetric positive semi-definite :math:`m \times m` matrix (every
    eigenvalue lies in a Gershgorin disc; the last step is
    :math:`\|K\|_\infty \le \sqrt m\,\|K\|_2`).

    Args:
      gram: ``(m, m)`` matrix (batched ``(..., m, m)`` under ``vmap``).

    Returns:
      Scalar bound.

    Examples:
      >>> float(gershgorin_bound(jnp.array([[2.0, -1.0], [-1.0, 2.0]])))
      3.0

    References:
      Gershgorin, 1931; Horn & Johnson, Matrix Analysis, 2nd ed., Thm. 6.1.1, 2013.
    """
    k = _square("gram", gram)
    return jnp.max(jnp.sum(jnp.abs(k), axis=-1))


def condition_number(gram: jax.Array) -> jax.Array:
    r"""Spectral condition number :math:`\kappa(K) = \lambda_{\max}(K)/\lambda_{\min}(K)` (dense).

    Args:
      gram: symmetric ``(m, m)`` matrix.

    Returns:
      Scalar :math:`\kappa`; ``inf`` if :math:`\lambda_{\min} \le 0`.

    Examples:
      >>> float(condition_number(jnp.diag(jnp.array([1.0, 4.0]))))
      4.0
    """
    k = _square("gram", gram)
    if not jnp.issubdtype(k.dtype, jnp.floating):
        k = k.astype(jnp.result_type(float))
    ev = jnp.linalg.eigvalsh(0.5 * (k + k.T))
    return jnp.where(ev[0] > 0, ev[-1] / jnp.where(ev[0] > 0, ev[0], 1), jnp.inf)


def ntk_gram(apply_fn: Any, params: Any, x: jax.Array) -> jax.Array:
    r"""The full empirical NTK Gram :math:`K = JJ^\top` on a batch, ``(nk, nk)``, dense.

    Rows are ordered example-major (:math:`(i, a) \mapsto ik + a`), the layout of the
    flattened outputs ``apply_fn(params, x).reshape(-1)``; unlike
    :func:`wideth.kernels.empirical.ntk` the outputs are not traced out.

    Args:
      apply_fn: ``apply_fn(params, x) -> (n, k)`` or an ``nnx.Module`` (``params=None``).
      params: parameter pytree.
      x: inputs ``(n, ...)``.

    Returns:
      ``(n k, n k)`` symmetric positive semi-definite matrix.
    """
    from wideth.kernels import empirical

    x = _checks.array("x", x, min_ndim=1, min_rows=1, kind="number")
    k4 = empirical.ntk(apply_fn, params, x, full=True)  # (n, n, k, k)
    n, _, k, _ = k4.shape
    return jnp.transpose(k4, (0, 2, 1, 3)).reshape(n * k, n * k)


def ntk_extreme_eigenvalues(
    apply_fn: Any,
    params: Any,
    x: jax.Array,
    *,
    method: str = "auto",
    num_steps: int = 64,
    key: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    r""":math:`(\lambda_{\min}(K), \lambda_{\max}(K))` of the empirical NTK Gram on a batch.

    ``"dense"`` forms :math:`K` (:func:`ntk_gram`) and diagonalises it;
    ``"lanczos"`` runs ``num_steps`` fully reorthogonalised Lanczos steps on the
    matrix-free operator :func:`wideth.hessian.ntk` (one VJP and one JVP each) and
    returns the extreme Ritz values, which lie *inside* the spectrum:
    :math:`\theta_{\min} \ge \lambda_{\min}` and :math:`\theta_{\max} \le
    \lambda_{\max}`, exact once ``num_steps`` reaches :math:`nk`. The largest
    eigenvalue converges in a few tens of steps; the smallest of an
    ill-conditioned :math:`K` needs many more, so use ``num_steps`` close to
    :math:`nk` when :math:`\lambda_{\min}` enters a lower bound. ``"auto"`` is
    dense for :math:`nk \le` :data:`DENSE_MAX` and Lanczos above.

    Args:
      apply_fn: ``apply_fn(params, x) -> (n, k)`` or an ``nnx.Module`` (``params=None``).
      params: parameter pytree.
      x: inputs ``(n, ...)``.
      method: ``"auto"``, ``"dense"`` or ``"lanczos"``.
      num_steps: Lanczos steps (clipped to :math:`nk`).
      key: PRNG key of the Lanczos start vector (default ``jax.random.key(0)``).

    Returns:
      ``(lam_min, lam_max)``, two scalars.

    Raises:
      ValueError: unknown ``method``, bad ``num_steps``, malformed inputs.

    References:
      Jacot, Gabriel & Hongler, Neural Tangent Kernel, 2018;
      Golub & Van Loan, Matrix Computations, 4th ed., ch. 10, 2013.
    """
    from wideth import hessian

    _checks.choice("method", method, _METHODS)
    num_steps = _checks.positive_int("num_steps", num_steps)
    key = jax.random.key(0) if key is None else _checks.prng_key("key", key)
    op = hessian.ntk(apply_fn, params, x)
    if method == "dense" or (method == "auto" and op.size <= DENSE_MAX):
        ev = jnp.linalg.eigvalsh(ntk_gram(apply_fn, params, x))
        return ev[0], ev[-1]
    m = min(num_steps, op.size)
    v0 = jax.random.normal(key, (op.size,), op.dtype)
    alphas, betas, _ = hessian.lanczos(op, v0, m)
    theta = hessian.tridiagonal_eigh(alphas, betas)[0]
    return theta[0], theta[-1]


def square_loss_constants(n: int) -> tuple[float, float]:
    r"""Output-space PL constant and smoothness of :math:`\ell(F) = \frac1{2n}\|F - y\|^2`.

    .. math::

        \nabla\ell = (F - y)/n,\quad \tfrac12\|\nabla\ell\|^2 = \tfrac1n\,\ell,\quad
        \nabla^2\ell = I/n \;\Rightarrow\; \mu_\ell = \beta_\ell = 1/n,\ \ell^\star = 0.

    Args:
      n: number of examples the loss averages over.

    Returns:
      ``(mu_ell, beta_ell)``.
    """
    n = _checks.positive_int("n", n)
    return 1.0 / n, 1.0 / n


def pl_kernel_bounds(
    lam_min: jax.Array | float,
    lam_max: jax.Array | float,
    mu_ell: jax.Array | float,
    beta_ell: jax.Array | float,
) -> tuple[jax.Array, jax.Array]:
    r"""Bounds :math:`\lambda_{\min}(K)\mu_\ell \le \mu(\theta) \le \lambda_{\max}(K)\beta_\ell`.

    .. math::

        \mu(\theta) = \frac{\nabla\ell^\top K\,\nabla\ell}{2(\ell - \ell^\star)}
        \in \Big[\lambda_{\min}(K)\frac{\|\nabla\ell\|^2}{2(\ell - \ell^\star)},\;
        \lambda_{\max}(K)\frac{\|\nabla\ell\|^2}{2(\ell - \ell^\star)}\Big]
        \subseteq [\lambda_{\min}\mu_\ell,\ \lambda_{\max}\beta_\ell].

    Hypotheses: :math:`\mathcal L = \ell\circ F`, :math:`\ell` is
    :math:`\mu_\ell`-PL and :math:`\beta_\ell`-smooth and convex in output space
    with infimum :math:`\ell^\star`, and :math:`\mu(\theta)` is measured with
    :math:`\ell^\star` (Liu, Zhu & Belkin 2022, Thm. 3; Balboni, ch. 4).

    Args:
      lam_min: :math:`\lambda_{\min}(K)` (any shape; broadcasts).
      lam_max: :math:`\lambda_{\max}(K) \ge \lambda_{\min}(K)`.
      mu_ell: output-space PL constant :math:`\mu_\ell > 0`.
      beta_ell: output-space smoothness :math:`\beta_\ell \ge \mu_\ell`.

    Returns:
      ``(lower, upper)`` arrays.
    """
    lo = _checks.array("lam_min", lam_min, kind="real")
    hi = _checks.array("lam_max", lam_max, kind="real")
    mu = _checks.scalar("mu_ell", mu_ell, 0.0, low_open=True)
    beta = _checks.scalar("beta_ell", beta_ell, 0.0, low_open=True)
    try:
        jnp.broadcast_shapes(lo.shape, hi.shape)
    except ValueError:
        raise ValueError(
            f"lam_max: expected a shape that broadcasts with lam_min {lo.shape}, got {hi.shape}"
        ) from None
    if not _checks.is_tracer((lo, hi)) and bool(jnp.any(hi < lo)):
        bad = int(jnp.sum(jnp.broadcast_to(hi < lo, jnp.broadcast_shapes(lo.shape, hi.shape))))
        raise ValueError(f"lam_max: expected lam_max >= lam_min, got {bad} entries below lam_min")
    return lo * mu, hi * beta


def pl_product_bound(mu: jax.Array, smoothness: jax.Array | float) -> jax.Array:
    r"""Descent-lemma bound :math:`\prod_{i<k}(1 - \mu(\theta_i)/L)` on the loss ratio.

    The bounded quantity is :math:`(\mathcal L_k - \ell^\star)/(\mathcal L_0 - \ell^\star)`.

    .. math::

        b_0 = 1,\qquad b_k = \prod_{i=0}^{k-1}\Big(1 - \frac{\mu(\theta_i)}{L}\Big).

    Holds for gradient descent with step :math:`1/L` when :math:`L` bounds the
    curvature of the loss on every segment of the path (descent lemma; Balboni,
    ch. 4 and 7). Factors are clipped at 0 (a factor below 0 means
    :math:`\mu > L`, impossible for an :math:`L`-smooth loss, and already
    violates the hypothesis).

    Args:
      mu: ``(T,)``, ``T >= 1``, local PL ratios
        :math:`\mu(\theta_0), \dots, \mu(\theta_{T-1}) \ge 0`.
      smoothness: :math:`L > 0` (scalar, or ``(T,)`` per step).

    Returns:
      ``(T + 1,)`` bounds :math:`b_0, \dots, b_T`.
    """
    m = _checks.array("mu", mu, ndim=1, min_rows=1, kind="real")
    _checks.in_range("mu", m, 0.0)  # PL ratios are >= 0
    lip = _checks.array("smoothness", smoothness, ndim=(0, 1), kind="real")
    _checks.in_range("smoothness", lip, 0.0, low_open=True)
    if lip.ndim == 1 and lip.shape != m.shape:
        raise ValueError(
            f"smoothness: expected a scalar or shape {m.shape} like mu, got {lip.shape}"
        )
    if not jnp.issubdtype(m.dtype, jnp.floating):
        m = m.astype(jnp.result_type(float))
    factors = jnp.clip(1.0 - m / lip, 0.0, None)
    return jnp.concatenate([jnp.ones((1,), m.dtype), jnp.cumprod(factors)])


def normalised_weight_variance(activation: str) -> float:
    r""":math:`\sigma_w^2 = 1/E_{z\sim\mathcal N(0,1)}[\phi(z)^2]`: the weight variance that keeps
    the pre-activation variance at 1 when :math:`\sigma_b = 0`.

    Equivalently, the network uses the unit-variance activation
    :math:`\phi/\sqrt{E\phi^2}` with :math:`\sigma_w = 1`. ReLU gives 2 (He);
    erf gives :math:`\pi/(2\arcsin(2/3))`.

    Args:
      activation: ``"relu"``, ``"erf"``, ``"tanh"`` or ``"identity"``.

    Returns:
      :math:`\sigma_w^2`.
    """
    activation = _check_dual(activation)
    q1 = meanfield._second_moment(activation, 1.0, meanfield.QUAD)
    return float(1.0 / q1)


def _check_dual(activation: Any) -> str:
    if not isinstance(activation, str) or activation not in _DUAL:
        raise ValueError(f"activation: expected one of {_DUAL}, got {activation!r}")
    return activation


def dual_kernels(
    corr: jax.Array, activation: str, depth: int, *, quad: tuple[int, int] = meanfield.MIN_QUAD
) -> tuple[jax.Array, jax.Array]:
    r"""Infinite-width NNGP and NTK Grams by iterating the dual activation, depth 0 to ``depth``.

    For an MLP with ``D`` hidden layers, :math:`\sigma_b = 0`,
    :math:`\sigma_w^2 =` :func:`normalised_weight_variance` in every layer (so
    the pre-activation variance is 1 throughout), NTK parameterisation and
    inputs with :math:`\sigma_w^2\|x\|^2/d = 1`, the output kernels of
    :func:`wideth.kernels.analytic.mlp` are

    .. math::

        \Sigma^{0} = \Theta^{0} = C,\qquad
        \Sigma^{l+1} = \rho(\Sigma^{l}),\qquad
        \Theta^{l+1} = \Sigma^{l+1} + \dot\rho(\Sigma^{l})\odot\Theta^{l},

    entrywise, with the normalised dual activation :math:`\rho(c) = E[\phi(u)\phi(v)]
    /E[\phi(z)^2]` (``wideth.kernels.meanfield.correlation_map`` at :math:`q = 1`)
    and its derivative :math:`\dot\rho(c) = E[\phi'(u)\phi'(v)]/E[\phi(z)^2]`
    (Price's theorem), :math:`(u, v)` standard normals with correlation
    :math:`c` (Jacot et al. 2018, Thm. 1; Daniely et al. 2016).

    Args:
      corr: ``(n, n)`` input correlation matrix :math:`C_{ij} = x_i\cdot x_j /
        (\|x_i\|\|x_j\|)` (unit diagonal, entries in :math:`[-1, 1]`).
      activation: ``"relu"``, ``"erf"``, ``"tanh"`` or ``"identity"``.
      depth: number of hidden layers :math:`D \ge 0`.
      quad: quadrature grid of :mod:`wideth.kernels.meanfield` (tanh only). The
        default :data:`~wideth.kernels.meanfield.MIN_QUAD` is accurate to 1.3e-9 at
        the variance :math:`q = 1` used here (measured in that module) and ten
        times cheaper than :data:`~wideth.kernels.meanfield.QUAD`.

    Returns:
      ``(nngp, ntk)``, each ``(depth + 1, n, n)``: entry ``l`` is the output
      kernel of the network with ``l`` hidden layers.

    Raises:
      ValueError: non-square ``corr``, a diagonal that is not 1, entries outside
        :math:`[-1, 1]`, unknown activation, negative depth.
    """
    activation = _check_dual(activation)
    c = _square("corr", corr)
    depth = _checks.nonnegative_int("depth", depth)
    quad = meanfield._check_quad(quad)
    if not jnp.issubdtype(c.dtype, jnp.floating):
        c = c.astype(jnp.result_type(float))
    if not _checks.is_tracer(c):
        tol = 1e-5 if c.dtype == jnp.float32 else 1e-10
        if float(jnp.max(jnp.abs(jnp.diag(c) - 1))) > tol:
            raise ValueError("corr: expected a unit diagonal (a correlation matrix)")
        if float(jnp.max(jnp.abs(c))) > 1 + tol:
            worst = float(jnp.max(jnp.abs(c)))
            raise ValueError(f"corr: expected entries in [-1, 1], got max |C| = {worst}")
    c = jnp.clip(c, -1.0, 1.0)
    w_var = 1.0 / meanfield._second_moment(activation, jnp.asarray(1.0, c.dtype), quad)
    one = jnp.asarray(1.0, c.dtype)

    def rho(s):
        f = lambda v: meanfield._corr(activation, v, one, w_var, 0.0, quad)
        return jax.vmap(f)(s.ravel()).reshape(s.shape)

    def rho_dot(s):
        f = lambda v: meanfield._corr_slope(activation, v, one, w_var, 0.0, quad)
        return jax.vmap(f)(s.ravel()).reshape(s.shape)

    def layer(carry, _):
        sig, th = carry
        new_sig = rho(sig)
        new_th = new_sig + rho_dot(sig) * th
        return (new_sig, new_th), (new_sig, new_th)

    _, (sigs, ths) = lax.scan(layer, (c, c), None, length=depth)
    return jnp.concatenate([c[None], sigs]), jnp.concatenate([c[None], ths])
