"""Row-sharded kernel matrices on 1, 2 and 4 simulated CPU devices.

Simulated devices (``--xla_force_host_platform_device_count``) share the same
CPU cores, so this measures correctness and the overhead of sharding, not a
speed-up: the ideal here is a ratio of 1.0 to one device, not 1/devices.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from benchmarks._common import publish, table

N, D, DEPTH, BLOCK = 2048, 32, 3, 128

_CHILD = textwrap.dedent(
    f"""
    import json, time, jax, numpy as np
    from wideth.kernels import analytic, blocks
    x = jax.random.normal(jax.random.PRNGKey(0), ({N}, {D}))
    _, _, kernel_fn = analytic.mlp(depth={DEPTH}, width=512)
    fn = lambda a, b: kernel_fn(a, b, "ntk")
    mesh = blocks.row_mesh() if len(jax.devices()) > 1 else None
    run = lambda: jax.block_until_ready(blocks.blockwise(fn, x, x, {BLOCK}, mesh=mesh))
    k = run()
    times = []
    for _ in range(3):
        t0 = time.perf_counter(); run(); times.append(time.perf_counter() - t0)
    ref = np.asarray(analytic.kernel(kernel_fn, x, get="ntk"))
    err = float(np.max(np.abs(np.asarray(k) - ref)))
    print(json.dumps({{"devices": len(jax.devices()), "time": sorted(times)[1], "err": err}}))
    """
)


def _run(devices: int) -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    out = subprocess.run(
        [sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    results = [_run(d) for d in (1, 2, 4)]
    base = results[0]["time"]
    rows = [[r["devices"], r["time"], r["time"] / base, r["err"]] for r in results]
    md = (
        "## Row-sharded kernel matrices (simulated devices)\n\n"
        f"Analytic depth-{DEPTH} ReLU NTK, {N} x {N}, rows in blocks of {BLOCK}, sharded with "
        "`jax.shard_map` over a one-axis mesh. Simulated CPU devices share the same cores, so "
        "the time ratio measures sharding overhead (ideal 1.0), not speed-up; the max abs "
        "difference is against the unsharded `analytic.kernel`.\n\n"
        + table(["devices", "median time (s)", "ratio to 1 device", "max abs diff"], rows)
    )
    publish("sharding", md)


if __name__ == "__main__":
    main()
