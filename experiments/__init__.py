"""Reproductions of classic infinite/finite-width results, one module each.

Every module runs as ``python -m experiments.NAME [--quick|--full] [--out DIR]
[--seed S] [--quiet]`` and writes ``metrics.json`` plus PNG figures.
"""

#: Experiments in the order the report lists them.
EXPERIMENTS = (
    "catapult",
    "edge_of_stability",
    "double_descent",
    "implicit_bias",
    "criticality",
    "finite_width",
    "pl_adaptive",
    "scaling_laws",
    "linear_regions",
    "depth_fluctuations",
    "sgd_stationarity",
    "hessian_structure",
    "pl_conditioning",
    "bayes_deep_linear",
)
