r"""Synthetic token tasks for selective models.

**Selective copying** (the Mamba paper's first synthetic task). A sequence of ``L`` positions holds
``k`` data tokens at random positions (in their order of appearance) and a *noise* token everywhere
else; then ``k`` *marker* tokens ask for the data tokens back, in order:

.. code-block:: text

    inputs   .  3  .  .  .  1  .  4  .  .  |  ?  ?  ?
    targets  (ignored)                     |  3  1  4

Vocabulary: 0 = noise, 1 … ``n_colors`` = data tokens, ``n_colors + 1`` = marker. A linear
time-invariant model has to place its kernel's mass at fixed lags; the lags here change from one
sequence to the next, so it needs a content-based choice of what to keep.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from . import _check

Array = jax.Array


def _copying_args(key: Any, n: Any, L: Any, k: Any = 4, n_colors: Any = 8) -> tuple:
    n, L, k, n_colors = (_check.length(name, v) for name, v in (("n", n), ("L", L), ("k", k), ("n_colors", n_colors)))
    if k > L:
        raise ValueError(f"k: expected at most L={L} data tokens, got {k}")
    return key, n, L, k, n_colors


@_check.checked(_copying_args)
def selective_copying(
    key: Array, n: int, L: int, k: int = 4, n_colors: int = 8
) -> dict[str, Array]:
    """``n`` examples of length ``L + k``: ``inputs``, ``targets`` (int32) and ``mask``
    (bool: the last k positions), all ``(n, L + k)``. Deterministic given ``key``."""
    return _draw(key, n, L, k, n_colors)  # one compiled program per shape


@partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _draw(key: Array, n: int, L: int, k: int, n_colors: int) -> dict[str, Array]:
    k_pos, k_tok = jax.random.split(key)
    order = jnp.argsort(jax.random.uniform(k_pos, (n, L)), axis=1)
    positions = jnp.sort(order[:, :k], axis=1)  # (n, k): where the data tokens sit
    data = jax.random.randint(k_tok, (n, k), 1, n_colors + 1).astype(jnp.int32)
    rows = jnp.arange(n)[:, None]
    body = jnp.zeros((n, L), jnp.int32).at[rows, positions].set(data)
    marker = jnp.full((n, k), n_colors + 1, jnp.int32)
    inputs = jnp.concatenate([body, marker], axis=1)
    targets = jnp.concatenate([jnp.zeros((n, L), jnp.int32), data], axis=1)
    mask = jnp.concatenate([jnp.zeros((n, L), bool), jnp.ones((n, k), bool)], axis=1)
    return {"inputs": inputs, "targets": targets, "mask": mask}


def vocab_size(n_colors: int) -> int:
    """noise + colors + marker."""
    return n_colors + 2


def masked_accuracy(logits: Array, targets: Array, mask: Array) -> Array:
    """Share of masked positions where the arg-max token is the target."""
    hit = (jnp.argmax(logits, -1) == targets) & mask
    return jnp.sum(hit) / jnp.maximum(jnp.sum(mask), 1)


def masked_cross_entropy(logits: Array, targets: Array, mask: Array) -> Array:
    """Mean cross-entropy over the masked positions."""
    logp = jax.nn.log_softmax(logits, -1)
    nll = -jnp.take_along_axis(logp, targets[..., None], -1)[..., 0]
    return jnp.sum(nll * mask) / jnp.maximum(jnp.sum(mask), 1)
