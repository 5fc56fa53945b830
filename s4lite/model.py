r"""A deep S4 network: encoder → L residual blocks → pooling → classifier (or per-step outputs).

One block, pre-norm (as in the S4 code base):

.. math::
    z = \operatorname{LayerNorm}(x),\quad
    z = \operatorname{Dropout}(\operatorname{GELU}(\operatorname{S4}(z))),\quad
    z = \operatorname{Dropout}(\operatorname{GLU}(z W + b)),\quad
    x \leftarrow x + z

The S4 layer mixes along time (each channel separately); the GLU mixes channels at each position.
Parameters are nested dicts/lists of arrays; every function here is pure.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import _check
from .layer import Params, init_s4, recurrent_form, s4_apply, s4_step

Array = jax.Array


def _dense(key: Array, d_in: int, d_out: int) -> Params:
    """A linear map with LeCun-uniform weights ``W (d_in, d_out)`` and zero bias."""
    bound = 1.0 / np.sqrt(d_in)
    return {"W": jax.random.uniform(key, (d_in, d_out), minval=-bound, maxval=bound), "b": jnp.zeros((d_out,))}


def init_model(
    key: Array,
    d_input: int = 1,
    d_output: int = 10,
    d_model: int = 128,
    n_layers: int = 4,
    N: int = 64,
    dt_min: float = 1e-3,
    dt_max: float = 1e-1,
    measure: str = "legs",
) -> dict[str, Any]:
    """Parameters of the deep S4 model."""
    for name, v in (("d_input", d_input), ("d_output", d_output), ("d_model", d_model), ("n_layers", n_layers)):
        _check.length(name, v)
    keys = jax.random.split(key, 2 + 2 * n_layers)
    layers = []
    for i in range(n_layers):
        layers.append(
            {
                "norm": {"scale": jnp.ones((d_model,)), "bias": jnp.zeros((d_model,))},
                "s4": init_s4(keys[2 + 2 * i], d_model, N, dt_min, dt_max, measure),
                "mix": _dense(keys[3 + 2 * i], d_model, 2 * d_model),
            }
        )
    return {
        "encoder": _dense(keys[0], d_input, d_model),
        "layers": layers,
        "head": _dense(keys[1], d_model, d_output),
    }


def count_params(params: Any) -> int:
    """Number of trainable real numbers in a parameter pytree."""
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))


def layer_norm(p: Params, x: Array, eps: float = 1e-5) -> Array:
    """LayerNorm over the last axis: (x − mean) / sqrt(var + eps) · scale + bias."""
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.var(x, axis=-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + eps) * p["scale"] + p["bias"]


def dropout(key: Array | None, x: Array, rate: float) -> Array:
    """Inverted dropout (identity when ``key`` is None or ``rate`` is 0); ``rate`` must lie in [0, 1)."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"rate: expected a dropout rate in [0, 1), got {rate!r}")
    if key is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0)


def glu_mix(p: Params, z: Array) -> Array:
    """Position-wise GLU: ``a * sigmoid(b)`` where ``[a, b] = z W + b``."""
    a, b = jnp.split(z @ p["W"] + p["b"], 2, axis=-1)
    return a * jax.nn.sigmoid(b)


def block(
    p: Params, x: Array, key: Array | None = None, rate: float = 0.0, conv: str = "fft", kernel: str = "auto"
) -> Array:
    """One residual block on ``x (..., L, H)``."""
    k1, k2 = (None, None) if key is None else jax.random.split(key)
    z = layer_norm(p["norm"], x)
    z = dropout(k1, jax.nn.gelu(s4_apply(p["s4"], z, conv, kernel)), rate)
    z = dropout(k2, glu_mix(p["mix"], z), rate)
    return x + z


def model_features(
    params: dict[str, Any], x: Array, key: Array | None = None, rate: float = 0.0, conv: str = "fft", kernel: str = "auto"
) -> Array:
    """Encoder and all blocks: ``x (B, L, d_input)`` → ``(B, L, d_model)``."""
    h = x @ params["encoder"]["W"] + params["encoder"]["b"]
    keys = [None] * len(params["layers"]) if key is None else list(jax.random.split(key, len(params["layers"])))
    for p, k in zip(params["layers"], keys):
        h = block(p, h, k, rate, conv, kernel)
    return h


def classify(
    params: dict[str, Any], x: Array, key: Array | None = None, rate: float = 0.0, conv: str = "fft", kernel: str = "auto"
) -> Array:
    """Sequence classification: mean-pool the features over time, then the linear head → ``(B, d_output)``."""
    x = _check.as_array("x", x)
    if x.ndim != 3 or x.shape[-1] != params["encoder"]["W"].shape[0]:
        raise ValueError(f"x: expected shape (B, L, {params['encoder']['W'].shape[0]}), got {x.shape}")
    h = jnp.mean(model_features(params, x, key, rate, conv, kernel), axis=1)
    return h @ params["head"]["W"] + params["head"]["b"]


def sequence_outputs(
    params: dict[str, Any], x: Array, key: Array | None = None, rate: float = 0.0, conv: str = "fft", kernel: str = "auto"
) -> Array:
    """Per-position outputs (for autoregressive models): ``x (B, L, d_input)`` → ``(B, L, d_output)``. Causal."""
    h = model_features(params, x, key, rate, conv, kernel)
    return h @ params["head"]["W"] + params["head"]["b"]


# ----------------------------------------------------------------------------------------------
# Recurrent mode of the whole network (generation): O(N) per step and layer, same outputs.
# ----------------------------------------------------------------------------------------------


def init_recurrent(params: dict[str, Any], L: int, batch: int | None = None) -> tuple[list, list]:
    """Per-layer RNN forms for length-``L`` sequences and zero states (``(H, N)`` or ``(batch, H, N)``)."""
    forms = [recurrent_form(p["s4"], L) for p in params["layers"]]
    states = []
    for _, C in forms:
        shape = C.shape if batch is None else (batch,) + C.shape
        states.append(jnp.zeros(shape, C.dtype))
    return forms, states


def step_outputs(params: dict[str, Any], forms: list, states: list, x_k: Array) -> tuple[list, Array]:
    """One time step through the network: ``x_k (d_input,)`` → ``(new states, output (d_output,))``."""
    h = x_k @ params["encoder"]["W"] + params["encoder"]["b"]
    new_states = []
    for p, (disc, C), s in zip(params["layers"], forms, states):
        z = layer_norm(p["norm"], h)
        s, z = s4_step(disc, C, p["s4"]["D"], s, z)
        z = glu_mix(p["mix"], jax.nn.gelu(z))
        h = h + z
        new_states.append(s)
    return new_states, h @ params["head"]["W"] + params["head"]["b"]
