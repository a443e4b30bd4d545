"""models.Transformer / SelfAttention against analytic.transformer (neural-tangents' kernels).

Float64 throughout (the NNX parameters are cast after init). The empirical NTK
:math:`\\Theta_\\theta` of the finite network at init is a random matrix whose
relative Frobenius distance to the analytic NTK falls like width^(-1/2): the
attention weights, the value/output projections and the dense layers all
average over ``width`` features (the key/query gradient contributes
O(1/width)). Measured (mean over seeds):

* depth 1, 2 heads, no layer norm, W_qk_std=1.5, b_std=0.2: 0.22 at width 128,
  0.089 at width 512 (width 32 -> 512: ratio about 4, i.e. width^(-1/2));
* with ``layernorm="post"`` the seed-to-seed spread is larger (width 256: 0.05
  to 0.20) but the mean falls the same way: 0.11 (256), 0.047 (1024), 0.032
  (2048); neural-tangents' own finite network (its init_fn/apply_fn) gives
  0.16, 0.050, 0.042 at the same widths, so no init convention differs.
"""

from __future__ import annotations

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from ntk_reference import load_nt_transformer_params

from wideth import models
from wideth.functional import functional
from wideth.kernels import analytic, empirical

pytestmark = pytest.mark.filterwarnings("ignore:`FanIn` layers assume", "ignore:Linear scaling")


def _tokens(n=4, t=3, d=4, seed=2):
    return jax.random.normal(jax.random.PRNGKey(seed), (n, t, d), jnp.float64)


def _to64(net):
    graph, state = nnx.split(net)
    return nnx.merge(graph, jax.tree.map(lambda a: a.astype(jnp.float64), state))


def _ntk_errors(widths, seeds, x, depth, n_heads, **kw):
    analytic_kw = {k: v for k, v in kw.items() if k not in ("W_std", "b_std", "tokens")}
    _, _, kernel_fn = analytic.transformer(
        depth, 1, n_heads, "relu", kw["W_std"], kw["b_std"], **analytic_kw
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        k = np.asarray(analytic.kernel(kernel_fn, x, get="ntk"))
    errs = {}
    for width in widths:
        e = []
        for seed in range(seeds):
            net = models.Transformer(4, width, depth, 1, n_heads, rngs=nnx.Rngs(seed), **kw)
            theta = np.asarray(empirical.ntk(_to64(net), None, x))
            e.append(np.linalg.norm(theta - k) / np.linalg.norm(k))
        errs[width] = float(np.mean(e))
    return errs, k


def _analytic_ntk(x, depth=1, **kw):
    _, _, kernel_fn = analytic.transformer(depth, 1, 2, "relu", 2**0.5, 0.2, **kw)
    return np.asarray(analytic.kernel(kernel_fn, x, get="ntk"))


def test_transformer_empirical_ntk_is_near_analytic_at_width_256(x64):
    """One width (the rate is the slow test below): 2 inits, measured 0.15."""
    x = _tokens()
    errs, k = _ntk_errors((256,), 2, x, 1, 2, W_std=2**0.5, b_std=0.2, W_qk_std=1.5)
    assert errs[256] < 0.25, errs
    # the kernel of uniform attention (W_qk_std=0) is farther away: 0.44
    other = _analytic_ntk(x, W_qk_std=0.0)
    assert np.linalg.norm(other - k) / np.linalg.norm(k) > 0.3


@pytest.mark.slow
def test_transformer_empirical_ntk_converges_to_analytic(x64):
    x = _tokens()
    kw = dict(W_std=2**0.5, b_std=0.2, W_qk_std=1.5)
    errs, k = _ntk_errors((32, 128, 512), 3, x, 1, 2, **kw)
    assert errs[512] < 0.15, errs
    assert errs[32] / errs[512] > 2, errs  # width^(-1/2): 4
    assert errs[32] > errs[128] > errs[512], errs


@pytest.mark.slow
def test_transformer_layernorm_empirical_ntk_converges_to_analytic(x64):
    x = _tokens()
    kw = dict(W_std=2**0.5, b_std=0.0, W_qk_std=1.5, layernorm="post")
    errs, k = _ntk_errors((256, 1024), 4, x, 1, 2, **kw)
    assert errs[1024] < 0.08, errs
    assert errs[256] / errs[1024] > 1.4, errs


# ----------------------------------------------------------------------------- masks


def _padded_tokens():
    """3 sequences of 4 tokens; sequence 0 has its last token padded, sequence 1 three."""
    x = _tokens(3, 4, 4)
    mask = jnp.zeros((3, 4), bool).at[0, 3].set(True).at[1, 1:].set(True)
    return x, mask


_load_nt_params = load_nt_transformer_params


@pytest.mark.parametrize(
    "mechanism,layernorm,pool",
    [
        pytest.param("softmax", "post", "global", marks=pytest.mark.slow),
        ("relu", None, "flatten"),
    ],
)
def test_masked_forward_equals_neural_tangents_mask_constant(x64, mechanism, layernorm, pool):
    """NT fills masked tokens with mask_constant; the model takes the boolean mask."""
    x, mask = _padded_tokens()
    kw = dict(W_qk_std=1.3, mechanism=mechanism, layernorm=layernorm, pool=pool)
    init_fn, apply_fn, _ = analytic.transformer(1, 8, 2, "erf", 1.2, 0.3, out_dim=2, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, nt_params = init_fn(jax.random.PRNGKey(0), x.shape)
    net = _to64(
        models.Transformer(
            4,
            8,
            1,
            2,
            2,
            activation="erf",
            W_std=1.2,
            b_std=0.3,
            tokens=4,
            rngs=nnx.Rngs(0),
            **kw,
        )
    )
    _load_nt_params(net, nt_params, 0.3)
    f, params = functional(net)
    f = jax.jit(f)
    c = 7.0  # no unmasked entry equals it
    x_nt = jnp.where(mask[..., None], c, x)
    ref = jax.jit(functools.partial(apply_fn, mask_constant=c))(nt_params, x_nt)
    ref = getattr(ref, "masked_value", ref)
    np.testing.assert_allclose(f(params, x, mask), ref, rtol=1e-10, atol=1e-12)
    # the padded values do not matter; without the mask they do
    np.testing.assert_allclose(f(params, x_nt, mask), ref, rtol=1e-10, atol=1e-12)
    assert np.max(np.abs(f(params, x) - ref)) > 1e-3


@pytest.mark.slow
def test_masked_empirical_ntk_is_near_analytic_mask_constant(x64):
    """Width 256, 2 inits: measured 0.12, against 0.75 to the kernel that ignores the mask."""
    x, mask = _padded_tokens()
    c = 7.0
    x_nt = jnp.where(mask[..., None], c, x)
    _, _, kernel_fn = analytic.transformer(1, 1, 2, "relu", 2**0.5, 0.2, W_qk_std=1.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        k = np.asarray(analytic.kernel(kernel_fn, x_nt, get="ntk", mask_constant=c))
        k_unmasked = np.asarray(analytic.kernel(kernel_fn, x, get="ntk"))
    e = []
    for seed in range(2):
        net = models.Transformer(4, 256, 1, 1, 2, b_std=0.2, W_qk_std=1.5, rngs=nnx.Rngs(seed))
        theta = empirical.ntk(
            _to64(net), None, x, apply_kwargs={"mask": mask}, vmap_axes=(0, 0, {"mask": 0})
        )
        theta = np.asarray(theta)
        e.append(np.linalg.norm(theta - k) / np.linalg.norm(k))
    err = float(np.mean(e))
    far = np.linalg.norm(k_unmasked - k) / np.linalg.norm(k)
    assert err < 0.25 and far > 2 * err, (err, far)


@pytest.mark.slow
@pytest.mark.parametrize("mechanism", ["softmax", "abs"])
def test_padding_a_sequence_does_not_change_its_output(x64, mechanism):
    """pool="global": a sequence padded with masked tokens = the short sequence alone."""
    x, mask = _padded_tokens()
    net = models.Transformer(
        4,
        16,
        2,
        3,
        2,
        b_std=0.3,
        W_qk_std=1.5,
        mechanism=mechanism,
        layernorm="post",
        rngs=nnx.Rngs(1),
    )
    apply_fn, params = functional(_to64(net))
    f = jax.jit(apply_fn)
    out = f(params, x, mask)
    np.testing.assert_allclose(out[0], f(params, x[:1, :3])[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out[1], f(params, x[1:2, :1])[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out[2], f(params, x)[2], rtol=1e-10, atol=1e-12)
    assert np.max(np.abs(out[:2] - f(params, x)[:2])) > 1e-3
    # the attention layer alone never looks at masked tokens either
    att = net.attention[0]
    h = jax.random.normal(jax.random.PRNGKey(5), (3, 4, 16), jnp.float64)
    np.testing.assert_allclose(att(h, mask)[0, :3], att(h[:1, :3])[0], rtol=1e-10, atol=1e-12)


def test_fully_masked_sequence_raises_when_concrete_and_gives_the_readout_bias_under_jit(x64):
    """pool="global" over no tokens: a concrete mask raises; a traced one gives the
    readout of zero features, NT's ``masked_value`` (1e-10), finite, and leaves the
    other sequences unchanged."""
    x, mask = _padded_tokens()
    full = mask.at[1].set(True)  # sequence 1: every token padded
    init_fn, apply_fn, _ = analytic.transformer(1, 8, 2, "erf", 1.2, 0.3, W_qk_std=1.3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, nt_params = init_fn(jax.random.PRNGKey(0), x.shape)
    net = _to64(models.Transformer(4, 8, 1, 1, 2, activation="erf", W_std=1.2, b_std=0.3,
                                   W_qk_std=1.3, rngs=nnx.Rngs(0)))  # fmt: skip
    _load_nt_params(net, nt_params, 0.3)
    with pytest.raises(ValueError, match=r"^mask: expected at least one unmasked token .* \[1\]"):
        net(x, full)
    f, params = functional(net)
    got = jax.jit(f)(params, x, full)
    c = 7.0
    ref = jax.jit(functools.partial(apply_fn, mask_constant=c))(
        nt_params, jnp.where(full[..., None], c, x)
    )
    assert bool(ref.mask[1, 0]) and not bool(ref.mask[0, 0])  # NT flags the empty output
    np.testing.assert_allclose(got, ref.masked_value, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got[1], 0.3 * net.readout.b[...], rtol=1e-12)
    np.testing.assert_allclose(
        np.asarray(got)[[0, 2]], np.asarray(jax.jit(f)(params, x, mask))[[0, 2]], rtol=1e-12
    )
    # flatten pooling is defined on an empty sequence: no error
    flat = models.Transformer(4, 8, 1, pool="flatten", tokens=4, rngs=nnx.Rngs(0))
    assert np.all(np.isfinite(flat(x.astype(jnp.float32), full)))


def test_analytic_kernel_rejects_fully_masked_rows(x64):
    """NT's kernel_fn gives a fully masked sequence zero kernel rows (measured: row 1 of
    the NNGP and NTK exactly 0), so ``analytic.kernel`` refuses it by name."""
    x, mask = _padded_tokens()
    c = 7.0
    _, _, kernel_fn = analytic.transformer(1, 1, 2, "relu", 2**0.5, 0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nt = _compat_nt_kernel(kernel_fn, jnp.where(mask.at[1].set(True)[..., None], c, x), c)
        np.testing.assert_array_equal(nt[1], 0.0)
        with pytest.raises(ValueError, match=r"^mask_constant: .*fully masked.* \[1\]"):
            analytic.kernel(
                kernel_fn, jnp.where(mask.at[1].set(True)[..., None], c, x), mask_constant=c
            )
        # x2 too
        with pytest.raises(ValueError, match=r"^mask_constant: .*x2"):
            analytic.kernel(
                kernel_fn, x, jnp.where(mask.at[1].set(True)[..., None], c, x), mask_constant=c
            )


def _compat_nt_kernel(kernel_fn, x, c):
    """NT's kernel_fn called directly (no wideth validation)."""
    return np.asarray(jax.jit(lambda a: kernel_fn(a, None, "ntk", mask_constant=c))(x))


# ------------------------------------------------------------------ positional embeddings


_POS = {
    "sum": dict(pos_emb_type="sum"),
    "sum-decay-values": dict(
        pos_emb_type="sum", pos_emb_decay_fn=lambda d: jnp.exp(-d / 2), pos_emb_p_norm=1.5,
        val_pos_emb=True, W_pos_emb_std=0.8,
    ),
    "concat-values": dict(pos_emb_type="concat", n_chan_pos_emb=5, val_pos_emb=True),
    "concat-decay": dict(
        pos_emb_type="concat", pos_emb_decay_fn=lambda d: 1.0 / (1.0 + d), W_pos_emb_std=1.3
    ),
}  # fmt: skip


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("sum", marks=pytest.mark.slow),
        "sum-decay-values",
        "concat-values",
        pytest.param("concat-decay", marks=pytest.mark.slow),
    ],
)
def test_positional_embeddings_forward_equals_neural_tangents(x64, name):
    """NT's GlobalSelfAttention(pos_emb_type=...) apply_fn with the same parameters,
    with and without a mask (float64, 1e-10); the embeddings change the output."""
    x, mask = _padded_tokens()
    pe = _POS[name]
    kw = dict(W_qk_std=1.3, layernorm="post", **pe)
    init_fn, apply_fn, _ = analytic.transformer(1, 8, 2, "erf", 1.2, 0.3, out_dim=2, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, nt_params = init_fn(jax.random.PRNGKey(0), x.shape)
    net = models.Transformer(4, 8, 1, 2, 2, activation="erf", W_std=1.2, b_std=0.3, tokens=4,
                             rngs=nnx.Rngs(0), **kw)  # fmt: skip
    net = _to64(net)
    _load_nt_params(net, nt_params, 0.3)
    f, params = functional(net)
    f = jax.jit(f)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = jax.jit(apply_fn)(nt_params, x)
        c = 7.0
        ref_m = jax.jit(functools.partial(apply_fn, mask_constant=c))(
            nt_params, jnp.where(mask[..., None], c, x)
        ).masked_value
    np.testing.assert_allclose(f(params, x), ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(f(params, x, mask), ref_m, rtol=1e-10, atol=1e-12)
    # the embeddings matter: zeroing them changes the outputs
    net.attention[0].pos_emb[...] = jnp.zeros_like(net.attention[0].pos_emb[...])
    f0, p0 = functional(net)
    assert np.max(np.abs(f0(p0, x) - ref)) > 1e-3


def test_positional_embedding_model_arguments():
    net = models.Transformer(4, 8, 2, tokens=3, pos_emb_type="concat", rngs=nnx.Rngs(0))
    assert net.attention[0].pos_emb[...].shape == (1, 3, 8)
    assert net.attention[0].key[...].shape == (4, 16, 8)  # keys see 8 + 8 channels
    assert net.attention[0].value[...].shape == (4, 8, 8)  # values do not
    assert models.Transformer(4, 8, 1, rngs=nnx.Rngs(0)).attention[0].pos_emb is None
    with pytest.raises(ValueError, match=r"^tokens: the sequence length is required"):
        models.Transformer(4, 8, 1, pos_emb_type="sum", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"^x: expected sequences of length tokens=3"):
        net(jnp.ones((2, 4, 4)))


def _pos_ntk_errors(widths, seeds, x, pe):
    """:func:`_ntk_errors` of one block with positional embeddings ``pe``."""
    kw = dict(W_std=2**0.5, b_std=0.2, W_qk_std=1.5, tokens=x.shape[1], **pe)
    return _ntk_errors(widths, seeds, x, 1, 2, **kw)


def test_positional_embedding_empirical_ntk_is_near_analytic_at_width_256(x64):
    """concat embeddings seen by the values too, width 256, 2 inits (the rate is the slow
    test below); the kernel without embeddings is 0.97 away."""
    x = _tokens()
    errs, k = _pos_ntk_errors((256,), 2, x, dict(pos_emb_type="concat", val_pos_emb=True))
    _, _, plain = analytic.transformer(1, 1, 2, "relu", 2**0.5, 0.2, W_qk_std=1.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        k0 = np.asarray(analytic.kernel(plain, x, get="ntk"))
    far = np.linalg.norm(k0 - k) / np.linalg.norm(k)
    assert errs[256] < 0.25 and far > 3 * errs[256], (errs, far)


@pytest.mark.slow
@pytest.mark.parametrize(
    "pe",
    [
        dict(pos_emb_type="concat", val_pos_emb=True),
        dict(
            pos_emb_type="sum", pos_emb_decay_fn=lambda d: jnp.exp(-d / 2), pos_emb_p_norm=1.5,
            val_pos_emb=True, W_pos_emb_std=0.8,
        ),
    ],
    ids=["concat-values", "sum-decay-values"],
)  # fmt: skip
def test_positional_embedding_empirical_ntk_converges_to_analytic(x64, pe):
    """Measured (3 inits) 0.40, 0.21, 0.078 (concat) and 0.49, 0.28, 0.076 (sum with a
    decay) at widths 32, 128, 512: a ratio of 5 to 6.5 over 16x width (width^(-1/2): 4)."""
    errs, _ = _pos_ntk_errors((32, 128, 512), 3, _tokens(), pe)
    assert errs[512] < 0.15, errs
    assert errs[32] / errs[512] > 2, errs
    assert errs[32] > errs[128] > errs[512], errs
