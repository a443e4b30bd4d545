r"""Class structure of the Hessian, the tiny gradient subspace and neural collapse.

A ReLU MLP (two hidden layers of 256) is trained with SGD on the 10-class
digits: softmax cross-entropy against label-smoothed targets
(:math:`\varepsilon = 0.1`, :func:`smoothed_xent`) with weight decay
:math:`5\cdot10^{-3}`, so the loss plateaus instead of running to zero.
Papyan trains with plain cross-entropy and weight decay :math:`5\cdot10^{-4}`
for hundreds of epochs; label smoothing is our departure, chosen because it
reaches, within a CPU budget, the regime his counts need (measured, see
"Where it stops"). The Gauss--Newton matrix does not depend on the targets,
so what part A measures is the same function of the network. In-jit probes
(:func:`wideth.train.run`) record every ``every`` steps the parameters, the
top-:math:`C` Hessian eigenpairs of the training loss with the gradient's
share of their span (:func:`wideth.train.probes.top_subspace`) and NC1--NC4
of the last hidden layer (:func:`wideth.train.probes.neural_collapse`).

**A. Outliers (Papyan 2019, 2020).** At four snapshots the Gauss--Newton
matrix is split exactly into class-mean, cross-class and within-class parts
(:func:`wideth.hessian.ggn_decomposition`; derivation in
:mod:`wideth.hessian.structure`). The bulk edge is
:math:`e = \lambda_1(G_{\rm within})` (Lanczos); the outliers are the Lanczos
eigenvalues of :math:`G` above it. Claim (Papyan's measurement on trained
deepnets): there are about :math:`C` of them. Tolerance :math:`\pm 1`:
Papyan counts :math:`C` or :math:`C-1` depending on whether the global-mean
direction separates, and the count is an integer (no standard error applies).
Consistency (exact, Weyl): :math:`\#\{\lambda(G_B) > e\} \le \text{count} \le C^2`;
the three parts add up to :math:`G` on a random vector (float32: relative
error :math:`\le 10^{-4}`, a few hundred float32 roundings of the
:math:`NC`-term sums); the largest Lanczos eigenvalue of
:math:`G_{\rm class}` equals the largest eigenvalue of its :math:`C\times C`
Gram matrix (relative :math:`10^{-3}`, Lanczos in float32).

**B. A tiny subspace (Gur-Ari, Roberts & Dyer 2018).** Claims: (i) the
full-batch gradient has a large share :math:`\|P_C g\|^2/\|g\|^2` in the
top-:math:`C` Hessian eigenspace, far above the :math:`C/d` of a random
direction. Tested as: the lower 3-SE bound of its time average over the
second half of training (SE from batch means) exceeds :math:`10\,C/d`
(a random direction has mean :math:`C/d` and standard deviation
:math:`\approx\sqrt{2C}/d`, so :math:`10\,C/d` is many of its standard
deviations away). (ii) The subspace stabilises early: its similarity
:math:`\|Q_tQ_T^\top\|_F^2/C` between one tenth of the run and the end is at
least 1/2 (our threshold: most of the subspace kept; random: :math:`C/d`).

**C. Neural collapse (Papyan, Han & Donoho 2020).** Claims: from the first
probe with training error :math:`\le 0.5\%` to the end, NC1 (within/between variability),
NC2 (equinorm of the centred class means and their distance from the simplex
angle :math:`-1/(C-1)`), NC3 (self-duality with the readout) and NC4
(disagreement with the nearest-class-centre rule) all decrease (PHD Figs.
4--7: monotone in the terminal phase). PHD start the terminal phase at zero
error; a few of the 1,348 digits (one for seed 0 in quick mode) stay misclassified by
SGD for hundreds of epochs, so the phase here starts at :math:`\le 0.5\%`
error (at most 6 examples). Deterministic values of one run: the check is
the sign of the change.

Measured in quick mode (85,002 parameters, 3,000 steps of batch 64, about
140 epochs; seeds 0, 1, 2): outliers above the edge 9, 9, 9, 9 (seed 0) at
steps 0, 300, 1500, 3000; at the end 9, 10, 10. Nine stand clear of the
rest (seed 0: :math:`\lambda_9 = 0.87`, :math:`\lambda_{10} = 0.56`); the
tenth sits at the edge (seed 0: 0.56 under 0.59; seeds 1, 2: 0.546 over
0.540, 0.579 over 0.573), Papyan's :math:`C` or :math:`C-1`. :math:`G_B` alone has 9
eigenvalues above the edge for every seed. Gradient share 0.34, 0.44, 0.39
(3-SE lower bounds 0.23, 0.30, 0.30) against :math:`C/d = 1.2\cdot10^{-4}`;
subspace similarity 0.62, 0.60, 0.64. From the first probe at
:math:`\le 0.5\%` error (step 200, 200, 300) to the end: NC1 0.47 -> 0.12,
0.47 -> 0.11, 0.47 -> 0.11; NC2 equinorm 0.131 -> 0.116, 0.156 -> 0.128,
0.164 -> 0.136; NC2 equiangularity 0.166 -> 0.125, 0.149 -> 0.121,
0.156 -> 0.117; NC3 0.98 -> 0.26, 0.99 -> 0.26, 0.94 -> 0.27; NC4
0.045 -> 0, 0.053 -> 0, 0.041 -> 0.0015. All 11 checks pass for the three
seeds.

Where it stops (measured, seed 0 unless stated, final snapshot; count:
outliers above :math:`\lambda_1(G_{\rm within})`; NC2 eq.: equiangularity
from the first probe at :math:`\le 0.5\%` error to the end; lr 0.2 for one
hidden layer, 0.1 for more; plain cross-entropy unless a label smoothing
eps is given):

=================================  ==========  ==============  ======================
width x depth, weight decay        count       NC2 eq.         other
=================================  ==========  ==============  ======================
64x1, 1e-3, 600 steps (old quick)  2           0.186 -> 0.188
64x1, 1e-3, 3000 steps             2           0.186 -> 0.190
64x1, 5e-3, 3000                   2           0.188 -> 0.184
64x1, 1e-2, 3000                   3           0.187 -> 0.177
256x1, 5e-4, 3000                  2           0.185 -> 0.183
256x1, 5e-3, 3000                  2           0.185 -> 0.177
256x2, 5e-3, 3000                  3           0.202 -> 0.200  NC1 -> 0.20
256x2, 5e-3, 10000                 3           0.202 -> 0.198  NC1 -> 0.16
256x2, 5e-3, lr / 10 at T/3, 2T/3  4           0.202 -> 0.204
256x3, 5e-3, 3000                  4           0.211 -> 0.230
512x2, 1e-2, 4000                  4           0.186 -> 0.200
256x2, 2e-2, 3000                  8           0.210 -> 0.214  99.1%, NC4 grows
256x2, 3e-2, 3000                  8           0.212 -> 0.227  98.2% train accuracy
256x2, 5e-2, 3000                  10          0.235 -> 0.251  97.2%, NC1 grows
64x1, 5e-3, eps 0.1, 3000          9           0.159 -> 0.155  equinorm grows
256x2, 5e-4, eps 0.1, 3000         10          0.166 -> 0.170  NC3 flat
256x2, 5e-3, eps 0.05, 3000        9           0.174 -> 0.132
256x2, 5e-3, eps 0.1, 1500         9, 10, 9    falls, 3 seeds
256x2, 5e-3, eps 0.1, 3000         9, 10, 10   falls, 3 seeds  quick mode
=================================  ==========  ==============  ======================

With plain cross-entropy the count is 2--4 in every run that ends at
:math:`\le 0.6\%` training error (NC1 only down to 0.16--0.26; PHD's
terminal phase goes much further), and 8--10 only with weight decay
:math:`2\cdot10^{-2}` to :math:`5\cdot10^{-2}`, which leaves 0.9--2.8%
training error (no terminal phase; NC4 or NC1 grows); equiangularity
changes by -0.010 to +0.019 in them (quick mode: -0.028 to -0.041). The
Lanczos values are converged: at the end of the seed-0 quick run, 60 and
150 steps from two start vectors give the same top 12 eigenvalues of
:math:`G` and the same edge to 4 digits. The reason is in the within-class part
itself: in the plain 256x2 run (5e-3, 3000 steps) :math:`G_B` has no
eigenvalue above :math:`\lambda_1(G_{\rm within})`, and the top eigenvector
of :math:`G_{\rm within}` has 96% of its norm in the span of the
:math:`C^2` class means (label smoothing: 69%); the squared coefficient of
variation of :math:`\sqrt{p_{ic'}}` within a class
(:func:`softmax_weight_spread`, median over pairs) is 1.09 (label
smoothing: 0.13). With collapsed features this coefficient is, to leading
order, the within-class over class-mean ratio of a pair :math:`(c, c')` in
the readout block, so the spread of the examples' margins puts a
within-class eigenvalue on top of the class-mean outliers. Label smoothing
pulls every example to the same finite target margin; full collapse
(NC1 :math:`\to 0`) would give every example of a class the same logits,
which our plain runs do not reach. Without weight decay the plain count
falls to 1--2 as the loss goes to zero. The diagonal class part
:math:`G_{\rm class}` (means of :math:`\delta_{c,c}`, the
probability-weighted true-label gradients) is small at a trained
plain-cross-entropy network (:math:`\lambda_1 \approx 0.01`) because those
gradients vanish; the outliers are carried by the cross-class means.
Full-batch gradient descent instead of SGD gives a gradient share of about
:math:`C/d` (its stiff directions are damped fastest,
:math:`|1-\eta\lambda| < 1`).

References:
  Papyan, `Measurements of three-level hierarchical structure in the outliers
  in the spectrum of deepnet Hessians <https://arxiv.org/abs/1901.08244>`_, 2019;
  Papyan, `Traces of class/cross-class structure pervade deep learning spectra
  <https://arxiv.org/abs/2008.11865>`_, 2020;
  Gur-Ari, Roberts & Dyer, `Gradient descent happens in a tiny subspace
  <https://arxiv.org/abs/1812.04754>`_, 2018;
  Papyan, Han & Donoho, `Prevalence of neural collapse during the terminal
  phase of deep learning training <https://arxiv.org/abs/2008.08186>`_, PNAS 2020;
  Szegedy et al., `Rethinking the Inception architecture for computer vision
  <https://arxiv.org/abs/1512.00567>`_, 2016 (label smoothing);
  Müller, Kornblith & Hinton, `When does label smoothing help?
  <https://arxiv.org/abs/1906.02629>`_, 2019 (tighter penultimate-layer clusters).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.common import Config, Result, Sizes, check, cli, save_figure
from wideth import data, hessian, train
from wideth.train import noise

SIZES = Sizes(
    quick=dict(
        n_train=None,
        width=256,
        depth=2,
        lr=0.1,
        batch_size=64,
        weight_decay=5e-3,
        label_smoothing=0.1,
        steps=3000,
        every=100,
        lanczos=30,
        top_k=30,
        top_steps=60,
        slq_probes=4,
        slq_steps=60,
    ),
    full=dict(
        n_train=None,
        width=512,
        depth=3,
        lr=0.1,
        batch_size=64,
        weight_decay=5e-3,
        label_smoothing=0.1,
        steps=10000,
        every=250,
        lanczos=40,
        top_k=120,
        top_steps=240,
        slq_probes=16,
        slq_steps=120,
    ),
)
NUM_CLASSES = 10
NC_FIELDS = ("nc1", "nc2_equinorm", "nc2_equiangular", "nc3", "nc4")


def model(sz, seed: int = 0):
    """``(apply_fn, features_fn, params)`` of a ReLU MLP 64 -> width^depth -> 10."""
    from flax import nnx

    from wideth import functional, models

    net = models.MLP(
        64,
        sz.width,
        sz.depth,
        out_dim=NUM_CLASSES,
        activation="relu",
        parameterization="standard",
        rngs=nnx.Rngs(seed),
    )
    apply_fn, params = functional.as_apply(net)
    features_fn, _ = functional.features(net)
    return apply_fn, features_fn, params


def _readout(params):
    return params["readout"]["w"][...]


def smoothed_xent(logits: jax.Array, labels: jax.Array, smoothing: float = 0.0) -> jax.Array:
    r"""Softmax cross-entropy against label-smoothed targets (Szegedy et al. 2016).

    .. math::

        \mathcal L = -\frac1n\sum_i \sum_c q_{ic}\log\operatorname{softmax}(f_i)_c,
        \qquad q_i = (1-\varepsilon)\,e_{y_i} + \varepsilon/C .

    ``smoothing=0`` is the plain cross-entropy. The Gauss--Newton matrix of
    either loss is the same function of the network,
    :math:`\frac1N\sum_i J_i^\top(\operatorname{diag}p_i - p_ip_i^\top)J_i`
    (the targets do not enter it), so the measurement of part A is unchanged;
    only the trained network differs.
    """
    one_hot = jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype)
    return train.xent(logits, optax.smooth_labels(one_hot, smoothing))


def train_with_probes(sz, apply_fn, features_fn, params, x, y, key):
    """SGD, weight decay, :func:`smoothed_xent`; probes: params, loss, accuracy, top-C, NC1-NC4."""
    tx = optax.chain(optax.add_decayed_weights(sz.weight_decay), optax.sgd(sz.lr))
    loss = functools.partial(smoothed_xent, smoothing=sz.label_smoothing)
    step = train.train_step(apply_fn, loss, tx, metrics=())
    probes = {
        "params": lambda s, b: s.params,
        "loss": train.probes.loss(step, (x, y)),
        "accuracy": train.probes.metric(apply_fn, "accuracy", (x, y)),
        "subspace": train.probes.top_subspace(
            step.objective, (x, y), k=NUM_CLASSES, num_steps=sz.lanczos
        ),
        "collapse": train.probes.neural_collapse(
            apply_fn, features_fn, (x, y), NUM_CLASSES, weights_fn=_readout
        ),
    }
    state = train.TrainState.create(params, tx, key)
    sampler = train.minibatches(x, y, sz.batch_size)
    return train.run(step, state, sampler, sz.steps, probes=probes, every=sz.every)


def structure_at(sz, apply_fn, params, x, y, key) -> dict[str, Any]:
    """Outlier count, Gram spectra and the consistency numbers of part A at one snapshot."""
    dec = hessian.ggn_decomposition(apply_fn, params, x, y, NUM_CLASSES)
    sp = hessian.class_spectrum(dec.means)
    k1, k2, k3 = jax.random.split(key, 3)
    evals, _ = hessian.top_eigenpairs(dec.total, k=sz.top_k, num_steps=sz.top_steps, key=k1)
    edge = hessian.sharpness(dec.within, num_steps=sz.top_steps, key=k2)
    top_class = hessian.sharpness(dec.class_means, num_steps=2 * NUM_CLASSES, key=k2)
    v = jax.random.normal(k3, (dec.total.size,))
    gv = dec.total(v)
    parts = dec.class_means(v) + dec.cross_class(v) + dec.within(v)
    return dict(
        eigenvalues=np.asarray(evals, np.float64),
        edge=float(edge),
        count=int(hessian.count_above(evals, edge)),
        count_between=int(hessian.count_above(sp["between"], edge)),
        class_gram=np.asarray(sp["class"], np.float64),
        cross_gram=np.asarray(sp["cross"], np.float64),
        top_class_lanczos=float(top_class),
        identity_error=float(jnp.linalg.norm(gv - parts) / jnp.linalg.norm(gv)),
        dimension=int(dec.total.size),
        _within_op=dec.within,
        _total_op=dec.total,
        _means=dec.means,
    )


def span_share(vector: np.ndarray, rows: np.ndarray, rtol: float = 1e-6) -> float:
    r"""Fraction :math:`\|P v\|^2/\|v\|^2` of a vector in the row span of ``rows`` (SVD).

    Singular directions below ``rtol`` times the largest are dropped, so a
    rank-deficient set of rows is not padded with arbitrary directions.
    """
    v = np.asarray(vector, np.float64).ravel()
    a = np.asarray(rows, np.float64).reshape(-1, v.size)
    _, sv, vt = np.linalg.svd(a, full_matrices=False)
    q = vt[sv > rtol * sv[0]]
    return float(np.sum((q @ v) ** 2) / np.sum(v * v))


def within_in_class_span(snap: dict, num_steps: int, key) -> float:
    """Share of the top eigenvector of :math:`G_{\rm within}` in the span of the C^2 class means."""
    within = snap["_within_op"]
    _, vec = hessian.top_eigenpairs(within, k=1, num_steps=num_steps, key=key)
    v = within.space.ravel(jax.tree.map(lambda a: a[0], vec))
    return span_share(np.asarray(v), np.asarray(snap["_means"].means))


def softmax_weight_spread(apply_fn, params, x, y, num_classes: int = NUM_CLASSES) -> float:
    r"""Median over :math:`c' \ne c` of :math:`\operatorname{Var}(\sqrt{p_{ic'}})/
    (\operatorname{mean}\sqrt{p_{ic'}})^2` over the examples :math:`i` of class :math:`c`.

    With collapsed features (:math:`h_i \approx \mu_c`) and confident
    predictions (:math:`p_i \approx e_c`) the readout block of
    :math:`\delta_{i,c'}` is :math:`\sqrt{p_{ic'}}\,h_i\otimes(p_i - e_{c'})
    \approx \sqrt{p_{ic'}}\,\mu_c\otimes(e_c - e_{c'})`, so the within-class
    part of a pair :math:`(c,c')` over its class-mean part is, to leading
    order, this squared coefficient of variation: above 1 the within-class
    part is the larger one in the class directions themselves.
    """
    p = np.asarray(jax.nn.softmax(apply_fn(params, x), axis=-1), np.float64)
    sq, y = np.sqrt(p), np.asarray(y)
    ratios = []
    for c in range(num_classes):
        m = sq[y == c]
        for k in range(num_classes):
            if k != c and len(m):
                ratios.append(m[:, k].var() / m[:, k].mean() ** 2)
    return float(np.median(ratios))


def collapse_part(
    acc: np.ndarray, nc: dict[str, np.ndarray], max_error: float = 0.005
) -> dict[str, Any]:
    """NC values at the first probe with error <= ``max_error`` (else the best one) and the end."""
    zero = np.flatnonzero(acc >= 1.0 - max_error)
    start = int(zero[0]) if zero.size else int(np.argmax(acc))
    return dict(
        start_index=start,
        zero_error=bool(zero.size),
        start={f: float(nc[f][start]) for f in NC_FIELDS},
        end={f: float(nc[f][-1]) for f in NC_FIELDS},
    )


def subspace_part(overlap: np.ndarray, bases: np.ndarray, dimension: int) -> dict[str, Any]:
    """Time-averaged gradient share (second half, batch-means SE) and early-vs-final similarity."""
    half = overlap[len(overlap) // 2 :]
    mean, se = noise.time_average(half, min(5, len(half)))
    early = max(1, len(bases) // 10)
    sim = float(hessian.subspace_similarity(bases[early], bases[-1]))
    return dict(
        overlap_mean=mean,
        overlap_se=se,
        random_overlap=NUM_CLASSES / dimension,
        similarity_early_final=sim,
        early_index=early,
    )


def checks_for(final: dict, sub: dict, col: dict, num_classes: int = NUM_CLASSES) -> list:
    """The claims and consistency checks of the module docstring."""
    c = num_classes
    out = [
        check(
            "Papyan: outliers of the GGN above the within-class bulk edge (trained net)",
            c,
            final["count"],
            1,
            note="Papyan 2019/2020: about C outliers on trained deepnets; +-1 for the "
            "global-mean direction (C or C-1); integer count, no SE",
        ),
        check(
            "Weyl: #{lambda(G_B) > edge} <= count <= C^2",
            f"[{final['count_between']}, {c * c}]",
            final["count"],
            None,
            passed=bool(final["count_between"] <= final["count"] <= c * c),
            note="exact: G >= G_B (PSD parts) and rank(G_B) <= C^2",
            kind="consistency",
        ),
        check(
            "G v = (G_class + G_cross + G_within) v (relative error)",
            0.0,
            final["identity_error"],
            1e-4,
            note="exact identity; three separate routes; float32 rounding of the N*C-term sums",
            kind="consistency",
        ),
        check(
            "lambda_1(G_class): Lanczos on the operator vs the C x C Gram matrix",
            final["class_gram"][0],
            final["top_class_lanczos"],
            1e-3,
            relative=True,
            note="same non-zero spectrum (A^T A vs A A^T); float32 Lanczos",
            kind="consistency",
        ),
    ]
    lo = sub["overlap_mean"] - 3 * sub["overlap_se"]
    out.append(
        check(
            "Gur-Ari: gradient share in the top-C Hessian subspace, 2nd half (3-SE lower bound)",
            f"> 10 C/d = {10 * sub['random_overlap']:.4g}",
            lo,
            None,
            passed=bool(lo > 10 * sub["random_overlap"]),
            note=f"Gur-Ari, Roberts & Dyer 2018; mean {sub['overlap_mean']:.3f} +- "
            f"{sub['overlap_se']:.3f} (batch means); random direction C/d = "
            f"{sub['random_overlap']:.2g}",
        )
    )
    out.append(
        check(
            "Gur-Ari: top-C subspace at 1/10 of training vs the end (similarity)",
            ">= 0.5",
            sub["similarity_early_final"],
            None,
            passed=bool(sub["similarity_early_final"] >= 0.5),
            note="Gur-Ari et al. 2018 Fig. 3: the subspace stabilises early; random C/d",
        )
    )
    for f in NC_FIELDS:
        a, b = col["start"][f], col["end"][f]
        out.append(
            check(
                f"PHD neural collapse: {f} decreases from error <= 0.5% to the end",
                f"< {a:.4g}",
                b,
                None,
                passed=bool(b < a) if col["zero_error"] else False,
                note="Papyan, Han & Donoho 2020, Figs. 4-7 (terminal phase); deterministic "
                "values of one run: the sign of the change"
                + ("" if col["zero_error"] else "; training error <= 0.5% never reached"),
            )
        )
    return out


def plot(steps, snaps, sub_series, nc, slq, final):
    """Top spectra vs edge; SLQ density; gradient share and similarity; NC1-NC4."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(18, 3.8))
    ax = axes[0]
    for t, s in snaps.items():
        (line,) = ax.semilogy(
            np.arange(1, len(s["eigenvalues"]) + 1),
            s["eigenvalues"],
            "o-",
            ms=3,
            label=f"step {t}: {s['count']} outliers",
        )
        ax.axhline(s["edge"], color=line.get_color(), ls=":", lw=1)
    ax.axvline(NUM_CLASSES + 0.5, color="k", lw=0.8)
    ax.set(xlabel="index k", ylabel="λ_k(G)", title="GGN top eigenvalues; dotted: λ1(G_within)")
    ax.legend(fontsize=7)
    ax = axes[1]
    grid, dens = slq
    ax.semilogy(grid, np.maximum(dens, 1e-6))
    ax.axvline(final["edge"], color="r", ls=":", label="within-class edge")
    for v in final["class_gram"]:
        ax.axvline(v, color="g", lw=0.5)
    for v in final["cross_gram"][: NUM_CLASSES * 2]:
        ax.axvline(v, color="m", lw=0.3)
    ax.set(xlabel="λ", title="SLQ density of G (end); green: class, magenta: cross Gram")
    ax.legend(fontsize=7)
    ax = axes[2]
    ax.semilogy(steps, sub_series["overlap"], label="‖P_C g‖²/‖g‖²")
    ax.semilogy(steps, sub_series["similarity"], label="similarity to final subspace")
    ax.axhline(sub_series["random"], color="k", ls=":", label="random C/d")
    ax.set(xlabel="step", title="tiny subspace (Gur-Ari et al.)")
    ax.legend(fontsize=7)
    ax = axes[3]
    for f in NC_FIELDS:
        ax.semilogy(steps, np.maximum(nc[f], 1e-4), label=f)
    ax.set(xlabel="step", title="neural collapse (PHD)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plan(cfg: Config) -> dict[str, Any]:
    """Sizes, data, model and key (cheap)."""
    sz = SIZES(cfg)
    ds = data.digits(n_train=sz.n_train, one_hot=False, seed=cfg.seed)
    apply_fn, features_fn, params = model(sz, cfg.seed)
    dim = sum(int(np.size(a)) for a in jax.tree.leaves(params))
    return dict(
        sz=sz,
        x=ds.x_train,
        y=ds.y_train,
        apply_fn=apply_fn,
        features_fn=features_fn,
        params=params,
        dimension=dim,
        key=jax.random.key(cfg.seed),
    )


def run(cfg: Config) -> Result:
    """Train with probes, then the class structure at four snapshots (module docstring)."""
    p = plan(cfg)
    sz, x, y, key = p["sz"], p["x"], p["y"], p["key"]
    res = jax.jit(functools.partial(train_with_probes, sz, p["apply_fn"], p["features_fn"]))(
        p["params"], x, y, key
    )
    steps = np.asarray(res.probe_steps)
    acc = np.asarray(res.probes["accuracy"], np.float64)
    loss = np.asarray(res.probes["loss"], np.float64)
    nc = {f: np.asarray(getattr(res.probes["collapse"], f), np.float64) for f in NC_FIELDS}
    overlap = np.asarray(res.probes["subspace"]["grad_overlap"], np.float64)
    bases = np.asarray(res.probes["subspace"]["basis"])
    n = len(steps)
    idx = sorted({0, n // 10, n // 2, n - 1})
    snaps = {}
    for i in idx:
        params_i = jax.tree.map(lambda a, i=i: a[i], res.probes["params"])
        snaps[int(steps[i])] = structure_at(
            sz, p["apply_fn"], params_i, x, y, jax.random.fold_in(key, i)
        )
    final = snaps[int(steps[-1])]
    params_end = jax.tree.map(lambda a: a[-1], res.probes["params"])
    spread = {
        "within_top_in_class_span": within_in_class_span(
            final, sz.top_steps, jax.random.fold_in(key, 98)
        ),
        "softmax_weight_cv2": softmax_weight_spread(p["apply_fn"], params_end, x, y),
    }
    nodes, weights = hessian.spectral_density(
        final["_total_op"],
        num_probes=sz.slq_probes,
        num_steps=sz.slq_steps,
        key=jax.random.fold_in(key, 99),
    )
    top = float(final["eigenvalues"][0])
    grid = np.linspace(-0.05 * top, 1.1 * top, 400)
    dens = np.asarray(hessian.density_on_grid(nodes, weights, jnp.asarray(grid), 0.01 * top))
    sub = subspace_part(overlap, bases, final["dimension"])
    col = collapse_part(acc, nc)
    checks = checks_for(final, sub, col)
    sims = np.asarray(jax.vmap(lambda b: hessian.subspace_similarity(b, bases[-1]))(bases))
    fig = plot(
        steps,
        snaps,
        dict(overlap=overlap, similarity=sims, random=sub["random_overlap"]),
        nc,
        (grid, dens),
        final,
    )
    figures = [save_figure(fig, cfg, "hessian_structure")]
    public = {t: {k: v for k, v in s.items() if not k.startswith("_")} for t, s in snaps.items()}
    metrics = dict(
        steps=steps,
        loss=loss,
        accuracy=acc,
        grad_overlap=overlap,
        similarity_to_final=sims,
        top_eigenvalues=np.asarray(res.probes["subspace"]["eigenvalues"], np.float64),
        collapse=nc,
        snapshots=public,
        subspace=sub,
        collapse_summary=col,
        within_structure=spread,
        slq_grid=grid,
        slq_density=dens,
    )
    summary = (
        "outliers above the within-class edge by step: "
        + ", ".join(f"{t}: {s['count']}" for t, s in snaps.items())
        + f" (C={NUM_CLASSES}); gradient share {sub['overlap_mean']:.3f} vs random "
        f"{sub['random_overlap']:.4f}; subspace similarity {sub['similarity_early_final']:.3f}; "
        f"NC1 {col['start']['nc1']:.3f} -> {col['end']['nc1']:.3f}"
    )
    return Result(
        metrics=metrics, checks=checks, figures=figures, config=dict(vars(sz)), summary=summary
    )


def main(argv=None):
    """Command line entry point."""
    return cli(run, __doc__, argv)


if __name__ == "__main__":
    from experiments.hessian_structure import main as _main  # so metrics.json names it

    _main()
