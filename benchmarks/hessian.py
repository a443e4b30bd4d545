"""Hessian spectra: Lanczos vs power iteration with deflation, orthogonalisation cost, SLQ, matfree.

Model: a ReLU MLP 64-288-256-10 (95,274 parameters) on sklearn digits
(1,024 training images, standardised), trained briefly with Adam on softmax
cross-entropy so the Hessian has its outlier eigenvalues. All methods use the
same flat Hessian-vector product (``wideth.hessian.hessian(...).linearized()``, one
linearisation of the gradient, jitted), so HVP counts and times compare
algorithms, not implementations of the HVP.

* Top-10 eigenvalues to 1e-3 relative error against a 200-step Lanczos
  reference: ``wideth.hessian.top_eigenpairs`` (fewest Lanczos steps that
  reach the tolerance; T_m is the leading block of one long run, so one run
  gives every m) vs power iteration with deflation as in PyHessian
  (Yao et al. 2020: restart per eigenvalue, orthogonalise against the found
  eigenvectors, stop when the Rayleigh quotient changes by < 1e-3 relative,
  at most 100 iterations), plus power iteration stopped by an oracle when it
  is within 1e-3 of the reference (its best case).
* Reorthogonalisation overhead per Lanczos step as a fraction of one HVP.
* 64-step SLQ with 8 Rademacher probes: time and compiled memory; matfree
  (``decomp.tridiag_sym``, full reorthogonalisation) on the same operator and
  probes, and matfree's ``eig.eigh_partial`` for the top-10 at the same m.

Run: ``python -m benchmarks.hessian [--quick]``.
"""

from __future__ import annotations

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks._common import publish, table, timeit
from wideth import hessian, train

TOL = 1e-3
K = 10


def _problem(n: int, sizes: tuple[int, ...], train_steps: int):
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    x, y = jnp.asarray(x[:n], jnp.float32), jax.nn.one_hot(y[:n], 10)
    key = jax.random.PRNGKey(0)
    params = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        key, k = jax.random.split(key)
        params.append({"w": jax.random.normal(k, (a, b)) * jnp.sqrt(2.0 / a), "b": jnp.zeros(b)})

    def apply(p, x):
        for layer in p[:-1]:
            x = jax.nn.relu(x @ layer["w"] + layer["b"])
        return x @ p[-1]["w"] + p[-1]["b"]

    def loss(p):
        return train.xent(apply(p, x), y)

    tx = optax.adam(1e-3)
    step = train.train_step(apply, "xent", tx, metrics=())
    state = train.TrainState.create(params, tx)
    trained = jax.jit(lambda s: train.run(step, s, (x, y), train_steps).state.params)(state)
    return trained, loss


def _power_iteration(hv, d, k, key, ref, max_iter, oracle):
    """PyHessian's power iteration with deflation; returns (eigenvalues, HVP count, capped)."""

    @jax.jit
    def step(v, vecs):
        v = v - vecs.T @ (vecs @ v)  # orthonormalise against the found eigenvectors
        v = v / jnp.linalg.norm(v)
        w = hv(v)
        return jnp.vdot(w, v), w / jnp.linalg.norm(w)

    vecs = jnp.zeros((k, d), jnp.float32)
    evals, count, capped = [], 0, 0
    for i in range(k):
        v = jax.random.normal(jax.random.fold_in(key, i), (d,), jnp.float32)
        v = v / jnp.linalg.norm(v)
        lam = None
        for _ in range(max_iter):
            tmp, v = step(v, vecs)
            tmp = float(tmp)
            count += 1
            if oracle:
                lam = tmp
                if abs(lam - ref[i]) / abs(ref[i]) < TOL:
                    break
            elif lam is None:
                lam = tmp
            elif abs(lam - tmp) / (abs(lam) + 1e-6) < TOL:
                break
            else:
                lam = tmp
        else:
            capped += 1
        evals.append(lam)
        vecs = vecs.at[i].set(v)
    return np.array(evals), count, capped


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    quick = "--quick" in argv
    n, sizes, train_steps = (
        (256, (64, 64, 64, 10), 50) if quick else (1024, (64, 288, 256, 10), 300)
    )
    params, loss = _problem(n, sizes, train_steps)
    op = hessian.hessian(loss, params)
    matvec, d, dtype = op.linearized(), op.size, op.dtype  # one linearisation, reused
    hv = jax.jit(matvec)
    flat_op = hessian.from_matvec(lambda v: matvec(v), jnp.zeros(d, dtype))
    key = jax.random.PRNGKey(1)
    print(f"parameters: {d}", flush=True)

    # Reference: a long Lanczos run; one run of m_max steps also gives every T_m.
    m_ref, m_max = (120, 80) if quick else (200, 120)
    ref, _ = hessian.top_eigenpairs(loss, params, k=K, num_steps=m_ref, key=jax.random.PRNGKey(7))
    ref = np.asarray(ref)
    v0 = jax.random.normal(key, (d,), dtype)
    alphas, betas, _ = hessian.lanczos(flat_op, v0, m_max)
    m_needed = None
    for m in range(K, m_max + 1):
        theta = np.linalg.eigvalsh(np.asarray(hessian.tridiagonal(alphas[:m], betas[:m])))[::-1][:K]
        if np.max(np.abs(theta - ref) / np.abs(ref)) < TOL:
            m_needed = m
            break
    assert m_needed is not None, "Lanczos did not reach the tolerance"

    top = jax.jit(lambda p, k: hessian.top_eigenpairs(loss, p, k=K, num_steps=m_needed, key=k))
    ours_evals = np.asarray(top(params, key)[0])
    t_lanczos = timeit(lambda: top(params, key), repeats=3, warmup=0)
    err_lanczos = float(np.max(np.abs(ours_evals - ref) / np.abs(ref)))

    max_oracle = 400
    t0 = time.perf_counter()
    py_evals, py_count, py_capped = _power_iteration(hv, d, K, key, ref, 100, oracle=False)
    t_py = time.perf_counter() - t0
    err_py = float(np.max(np.abs(np.sort(py_evals)[::-1] - ref) / np.abs(ref)))
    t0 = time.perf_counter()
    or_evals, or_count, or_capped = _power_iteration(hv, d, K, key, ref, max_oracle, oracle=True)
    t_or = time.perf_counter() - t0
    err_or = float(np.max(np.abs(np.sort(or_evals)[::-1] - ref) / np.abs(ref)))
    print("lanczos", m_needed, t_lanczos, "power", py_count, t_py, or_count, t_or, flush=True)

    # Orthogonalisation overhead: Lanczos on a diagonal operator of the same size
    # (a matvec that costs nothing) is the reorthogonalisation alone; and the whole
    # Lanczos run against m bare HVPs.
    vec = jax.random.normal(key, (d,), dtype)
    t_hvp = timeit(lambda: hv(vec), repeats=20)
    scales = jax.random.uniform(key, (d,), dtype, 0.5, 1.5)
    diag = hessian.from_matvec(lambda v, s: s * v, vec, scales)
    t_orth = timeit(lambda: hessian.lanczos(diag, vec, m_needed), repeats=3) / m_needed
    t_lz = timeit(lambda: hessian.lanczos(flat_op, v0, m_needed), repeats=3)
    overhead_direct = t_orth / t_hvp
    overhead_total = (t_lz - m_needed * t_hvp) / (m_needed * t_hvp)

    # SLQ: 64 steps, 8 probes, ours vs matfree on the same operator and probes.
    from matfree import decomp, eig

    num_probes, m_slq = 8, 64
    probes = jax.random.rademacher(key, (num_probes, d), dtype=jnp.int8).astype(dtype)
    tridiag = decomp.tridiag_sym(m_slq, custom_vjp=False)

    def matfree_one(v):
        res = tridiag(matvec, v / jnp.linalg.norm(v))
        theta, s = jnp.linalg.eigh(res.J_small)
        return theta, s[0] ** 2

    # Both probe strategies, ours and matfree's on the same operator and probes
    # (the probes spectral_density draws from ``key``, handed to matfree as they are).
    slq_rows, slq_time, slq_out = [], {}, {}
    for strategy, pb in (("one probe at a time (CPU default)", 1), ("all probes vmapped", 8)):
        ours = jax.jit(
            lambda p, k, pb=pb: hessian.spectral_density(
                loss, p, num_probes=num_probes, num_steps=m_slq, key=k, probe_batch_size=pb
            )
        )
        o_nodes, o_weights = jax.block_until_ready(ours(params, key))  # compiles and runs
        t_o = timeit(lambda ours=ours: ours(params, key), repeats=1, warmup=0)
        mem = ours.lower(params, key).compile().memory_analysis()
        mem_mb = (
            (mem.temp_size_in_bytes + mem.output_size_in_bytes) / 2**20
            if mem is not None
            else float("nan")
        )
        mapper = jax.lax.map if pb == 1 else (lambda f, xs: jax.vmap(f)(xs))
        mf = jax.jit(lambda probes, mapper=mapper: mapper(matfree_one, probes))
        mf_nodes, mf_weights = jax.block_until_ready(mf(probes))  # compiles and runs
        t_mf = timeit(lambda mf=mf: mf(probes), repeats=1, warmup=0)
        slq_time[pb], slq_out[pb] = t_o, (o_nodes, o_weights, mf_nodes, mf_weights, mem_mb)
        slq_rows.append((strategy, t_o, t_mf, mem_mb))
    o_nodes, o_weights, mf_nodes, mf_weights, _ = slq_out[1]
    t_o_slq, mem_mb = slq_time[1], slq_out[1][4]
    same_probes = max(
        float(np.max(np.abs(np.asarray(v[2]) - np.asarray(v[0])))) for v in slq_out.values()
    )
    # Exact per-probe moments v'Hv/|v|^2 and |Hv|^2/|v|^2 from direct HVPs.
    hp = jax.vmap(hv)(probes)
    m1 = np.asarray(jnp.sum(probes * hp, 1) / d)
    m2 = np.asarray(jnp.sum(hp * hp, 1) / d)

    def moment_err(nd, wt):
        nd, wt = np.asarray(nd, np.float64), np.asarray(wt, np.float64)
        e1 = np.max(np.abs((wt * nd).sum(1) - m1) / np.abs(m1))
        e2 = np.max(np.abs((wt * nd**2).sum(1) - m2) / np.abs(m2))
        return max(e1, e2), float(np.max(np.abs(wt.sum(1) - 1)))

    (o_mom, o_w1), (mf_mom, mf_w1) = (
        moment_err(o_nodes, o_weights),
        moment_err(mf_nodes, mf_weights),
    )

    mf_eigh = jax.jit(
        lambda v: eig.eigh_partial(decomp.tridiag_sym(m_needed, custom_vjp=False))(matvec, v)
    )
    mf_vals = np.asarray(mf_eigh(v0)[0])[::-1][:K]
    t_mf_top = timeit(lambda: mf_eigh(v0), repeats=3, warmup=0)
    err_mf_top = float(np.max(np.abs(mf_vals - ref) / np.abs(ref)))

    rows = [
        ["Lanczos (wideth.top_eigenpairs)", m_needed, t_lanczos, err_lanczos, 1.0],
        [
            "power iteration + deflation, PyHessian stop",
            py_count,
            t_py,
            err_py,
            py_count / m_needed,
        ],
        ["power iteration + deflation, oracle stop", or_count, t_or, err_or, or_count / m_needed],
    ]
    md = [
        f"MLP {'-'.join(map(str, sizes))} ({d:,} parameters, ReLU) on {n} sklearn digits, "
        f"softmax cross-entropy after {train_steps} Adam steps, float32. Top-{K} Hessian "
        f"eigenvalues to {TOL:g} relative error against a {m_ref}-step Lanczos reference "
        f"(largest: {ref[0]:.4g}, 10th: {ref[-1]:.4g}). HVP = one jitted linearised "
        "Hessian-vector product, the same for every method.",
        "",
        table(["method", "HVPs", "wall time (s)", "max rel. error", "HVPs / Lanczos HVPs"], rows),
        "",
        "PyHessian's stopping rule (relative change of the Rayleigh quotient < 1e-3, at most "
        "100 iterations) stops before the eigenvalue is accurate when neighbouring "
        "eigenvalues are close; the oracle row stops at the first iterate within 1e-3 of the "
        "reference (power iteration's best case, not available in practice), at most "
        f"{max_oracle} iterations per eigenvalue ({or_capped} of {K} hit that cap; "
        f"{py_capped} of {K} hit PyHessian's cap of 100). Wall times of the power iterations "
        "include one Python dispatch per HVP.",
        "",
        table(
            ["quantity", "value"],
            [
                ["one HVP (ms)", 1e3 * t_hvp],
                [
                    f"one Lanczos step on a free (diagonal) operator, {m_needed}-step basis (ms)",
                    1e3 * t_orth,
                ],
                ["reorthogonalisation / HVP (direct)", overhead_direct],
                [f"(Lanczos {m_needed} steps - {m_needed} HVPs) / {m_needed} HVPs", overhead_total],
            ],
        ),
        "",
        f"SLQ with {num_probes} Rademacher probes x {m_slq} Lanczos steps "
        "(``spectral_density``, jitted), with the probes one at a time (``lax.map``, the "
        "default on the CPU) or all vmapped together (the default on an accelerator): "
        f"{slq_time[1]:.3g} s vs {slq_time[8]:.3g} s, i.e. "
        f"{1e3 * slq_time[1] / (num_probes * m_slq):.3g} vs "
        f"{1e3 * slq_time[8] / (num_probes * m_slq):.3g} ms per probe-step against "
        f"{1e3 * t_hvp:.3g} ms for one bare HVP; compiled temporary + output memory "
        f"{slq_out[1][4]:.1f} vs {slq_out[8][4]:.1f} MiB (the {num_probes} bases alone are "
        f"{num_probes * m_slq * d * 4 / 2**20:.1f} MiB). matfree's full-reorthogonalisation "
        "``decomp.tridiag_sym`` runs on the same operator and probes with the same probe "
        "strategy; accuracy (one probe at a time) = worst relative error of the per-probe "
        "quadrature moments sum(w theta) and sum(w theta^2) against the exact v'Hv/d and "
        f"|Hv|^2/d (Gauss quadrature with {m_slq} nodes is exact for them). Largest "
        "difference between our and matfree's quadrature nodes on the same probes: "
        f"{same_probes:.2g}.",
        "",
        table(
            [
                "probe strategy",
                "wideth SLQ (s)",
                "matfree SLQ (s)",
                "matfree / ours",
                "wideth memory (MiB)",
            ],
            [[st, to, tm, tm / to, mm] for st, to, tm, mm in slq_rows],
        ),
        "",
        table(
            ["method", "wall time (s)", "moment rel. error", "max abs(sum w - 1)", "time / ours"],
            [
                ["wideth SLQ", t_o_slq, o_mom, o_w1, 1.0],
                ["matfree SLQ", slq_rows[0][2], mf_mom, mf_w1, slq_rows[0][2] / t_o_slq],
                [
                    f"wideth top-{K} ({m_needed} steps)",
                    t_lanczos,
                    err_lanczos,
                    "",
                    1.0,
                ],
                [
                    f"matfree eig.eigh_partial top-{K} ({m_needed} steps)",
                    t_mf_top,
                    err_mf_top,
                    "",
                    t_mf_top / t_lanczos,
                ],
            ],
        ),
        "",
        "Absolute times depend on the machine's load: compare the ratios, measured side by "
        "side in one run. Run: `python -m benchmarks.hessian`.",
    ]
    text = "## hessian\n\n" + "\n".join(md)
    publish("hessian", text, write=not quick)


if __name__ == "__main__":
    main()
