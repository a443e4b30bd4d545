r"""Training as values: losses, a pure step over a state pytree, a vmappable loop, a driver.

* :mod:`wideth.losses` (re-exported here) -- the loss registry (``mse``, ``xent``) and ``accuracy``;
* :func:`train_step` -- ``step(state, batch) -> (state, metrics)`` over a :class:`TrainState`;
* :func:`run` -- one ``lax.scan`` over steps with in-jit probes (:mod:`~wideth.train.probes`),
  jittable and ``vmap``-able over seeds, hyperparameters (:func:`with_hyperparams`) and
  initial parameters;
* :func:`fit` -- the host driver: chunks of :func:`run`, progress bar, held-out data,
  callbacks, the last finite state on divergence.

A learning-rate x seed sweep with a sharpness probe:

.. code-block:: python

    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)
    step = train.train_step(apply_fn, "mse", tx)
    probes = {"sharpness": train.probes.sharpness(step)}

    @jax.jit
    @functools.partial(jax.vmap, in_axes=(0, None))      # learning rates
    @functools.partial(jax.vmap, in_axes=(None, 0))      # seeds
    def sweep(lr, seed):
        state = train.TrainState.create(init(seed), tx, jax.random.key(seed))
        state = train.with_hyperparams(state, learning_rate=lr)
        return train.run(step, state, (x, y), 1000, probes=probes, every=50)
"""

from wideth import losses as losses
from wideth.losses import LOSSES as LOSSES
from wideth.losses import METRICS as METRICS
from wideth.losses import accuracy as accuracy
from wideth.losses import get_loss as get_loss
from wideth.losses import is_classification as is_classification
from wideth.losses import mse as mse
from wideth.losses import xent as xent

from . import noise as noise
from . import probes as probes
from .fit import FitResult as FitResult
from .fit import fit as fit
from .loop import Minibatches as Minibatches
from .loop import RunResult as RunResult
from .loop import Stacked as Stacked
from .loop import minibatches as minibatches
from .loop import run as run
from .loop import stacked as stacked
from .step import TrainState as TrainState
from .step import TrainStep as TrainStep
from .step import global_norm as global_norm
from .step import train_step as train_step
from .step import with_hyperparams as with_hyperparams

__all__ = [
    "LOSSES",
    "METRICS",
    "FitResult",
    "Minibatches",
    "RunResult",
    "Stacked",
    "TrainState",
    "TrainStep",
    "accuracy",
    "fit",
    "get_loss",
    "global_norm",
    "is_classification",
    "losses",
    "minibatches",
    "mse",
    "noise",
    "probes",
    "run",
    "stacked",
    "train_step",
    "with_hyperparams",
    "xent",
]
