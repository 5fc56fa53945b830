r"""A Mamba-style block and a token model built from it, as pure functions over parameter dicts.

One block on :math:`x \in \mathbb R^{L \times d}` (``d_inner = expand · d``):

.. math::
    \begin{aligned}
    [v, z] &= x W_{in}, &
    v &\leftarrow \operatorname{SiLU}(\operatorname{conv}_k(v)) \ \text{(causal, depthwise)},\\
    [\delta, B, C] &= v W_x, &
    \Delta &= \operatorname{softplus}(\delta W_\Delta + b_\Delta) \ \text{(low rank } R\text{)},\\
    y &= \operatorname{SSM}_{A, D}(v; \Delta, B, C) \odot \operatorname{SiLU}(z), &
    \text{out} &= y W_{out}
    \end{aligned}

``selective=False`` gives the same block with a linear time-invariant SSM in place of the selective
one: an S4D layer (:mod:`s4lite.s4d`) whose Δ, B, C are parameters, not functions of the input.
The model: token embedding → ``n_layers`` × (RMSNorm → block, residual) → RMSNorm → logits.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import _check
from .s4d import init_s4d_layer, s4d_apply
from .selective import selective_scan

Array = jax.Array
Params = dict[str, Any]

SSM_KEYS = ("A_log", "dt_bias", "log_neg_re", "im", "B", "log_step")  # smaller lr, no decay


def _dense(key: Array, d_in: int, d_out: int, scale: float = 1.0) -> Array:
    bound = scale / np.sqrt(d_in)
    return jax.random.uniform(key, (d_in, d_out), minval=-bound, maxval=bound)


def init_block(
    key: Array, d_model: int, N: int = 16, expand: int = 2, d_conv: int = 4,
    dt_rank: int | None = None, dt_min: float = 1e-3, dt_max: float = 1e-1, selective: bool = True,
) -> Params:  # fmt: skip
    """Parameters of one block. A is S4D-Real, :math:`A_n = -(n+1)`; softplus(b_Δ) ∈ [dt_min, dt_max]."""
    for name, v in (("d_model", d_model), ("N", N), ("expand", expand), ("d_conv", d_conv)):
        _check.length(name, v)
    d_inner = expand * d_model
    R = dt_rank or max(1, -(-d_model // 16))
    k = jax.random.split(key, 6)
    p = {
        "in_proj": _dense(k[0], d_model, 2 * d_inner),
        "conv_w": _dense(k[1], d_conv, d_inner, np.sqrt(d_conv) / d_conv),
        "conv_b": jnp.zeros((d_inner,)),
        "out_proj": _dense(k[2], d_inner, d_model),
        "D": jnp.ones((d_inner,)),
    }
    if not selective:
        s4d_params = init_s4d_layer(k[3], d_inner, 2 * N, "lin", dt_min, dt_max)
        return {**p, "lti": {k_: v for k_, v in s4d_params.items() if k_ != "D"}}
    dt = jnp.exp(jax.random.uniform(k[4], (d_inner,), minval=np.log(dt_min), maxval=np.log(dt_max)))
    return {
        **p,
        "x_proj": _dense(k[3], d_inner, R + 2 * N),
        "dt_proj": _dense(k[5], R, d_inner, R**-0.5 * np.sqrt(R)),
        "dt_bias": dt + jnp.log(-jnp.expm1(-dt)),  # inverse softplus
        "A_log": jnp.log(jnp.tile(jnp.arange(1, N + 1, dtype=jnp.float32), (d_inner, 1))),
    }


def causal_conv1d(w: Array, b: Array, v: Array) -> Array:
    r"""Depthwise causal convolution, ``v (L, d)``:
    :math:`y_t = \sum_{j<k} w_{k-1-j} v_{t-j} + b`."""
    k = w.shape[0]
    padded = jnp.pad(v, ((k - 1, 0), (0, 0)))
    return sum(w[i] * padded[i : i + v.shape[0]] for i in range(k)) + b


def selective_ssm(p: Params, v: Array, method: str = "parallel") -> Array:
    r"""Δ, B, C from the input, then the selective scan: ``v (L, d_inner)`` → same."""
    N = p["A_log"].shape[1]
    R = p["dt_proj"].shape[0]
    dbc = v @ p["x_proj"]
    delta = jax.nn.softplus(dbc[:, :R] @ p["dt_proj"] + p["dt_bias"])
    B, C = dbc[:, R : R + N], dbc[:, R + N :]
    return selective_scan(v, delta, -jnp.exp(p["A_log"]), B, C, p["D"], method=method)


def block_apply(p: Params, x: Array, method: str = "parallel") -> Array:
    """One block on a single sequence ``x (L, d_model)`` → ``(L, d_model)``."""
    d_inner = p["D"].shape[0]
    vz = x @ p["in_proj"]
    v, z = vz[:, :d_inner], vz[:, d_inner:]
    v = jax.nn.silu(causal_conv1d(p["conv_w"], p["conv_b"], v))
    if "lti" in p:
        y = s4d_apply({**p["lti"], "D": p["D"]}, v)
    else:
        y = selective_ssm(p, v, method)
    return (y * jax.nn.silu(z)) @ p["out_proj"]


def rms_norm(scale: Array, x: Array, eps: float = 1e-5) -> Array:
    """:math:`x / \\sqrt{\\operatorname{mean}(x^2) + \\epsilon} \\cdot` scale, over the last axis."""
    return x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + eps) * scale


def init_model(
    key: Array, vocab: int, d_model: int = 64, n_layers: int = 2, N: int = 16,
    selective: bool = True, **block_kw: Any,
) -> Params:  # fmt: skip
    """A token model: embedding, ``n_layers`` residual Mamba-style blocks, norm, logits."""
    for name, v in (("vocab", vocab), ("n_layers", n_layers)):
        _check.length(name, v)
    kw = tuple(sorted(block_kw.items()))
    return _init_model(key, vocab, d_model, n_layers, N, selective, kw)


@partial(jax.jit, static_argnums=(1, 2, 3, 4, 5, 6))
def _init_model(
    key: Array, vocab: int, d_model: int, n_layers: int, N: int, selective: bool,
    kw: tuple,
) -> Params:  # fmt: skip
    """:func:`init_model`, compiled once per configuration (eager, it compiles op by op)."""
    block_kw = dict(kw)
    keys = jax.random.split(key, n_layers + 2)
    return {
        "embed": jax.random.normal(keys[0], (vocab, d_model)) * 0.1,
        "layers": [
            {"norm": jnp.ones((d_model,)), "block": init_block(k, d_model, N, selective=selective, **block_kw)}
            for k in keys[2:]
        ],
        "norm_f": jnp.ones((d_model,)),
        "head": _dense(keys[1], d_model, vocab),
    }


def model_logits(params: Params, tokens: Array, method: str = "parallel") -> Array:
    """Per-position logits: ``tokens (B, L)`` int → ``(B, L, vocab)``. Causal."""
    tokens = _check.as_array("tokens", tokens)
    if tokens.ndim != 2 or not jnp.issubdtype(tokens.dtype, jnp.integer):
        raise ValueError(f"tokens: expected integer token ids of shape (B, L), got {tokens.dtype} {tokens.shape}")

    def one(seq: Array) -> Array:
        h = params["embed"][seq]
        for layer in params["layers"]:
            h = h + block_apply(layer["block"], rms_norm(layer["norm"], h), method)
        return rms_norm(params["norm_f"], h) @ params["head"]

    return jax.vmap(one)(tokens)


def param_labels(params: Params) -> Any:
    """``"ssm"`` for A / Δ-bias / S4D Λ, B, log Δ leaves (smaller lr, no weight decay), else ``"other"``."""

    def label(path: Any, _: Any) -> str:
        keys = [getattr(k, "key", None) for k in path]
        return "ssm" if keys[-1] in SSM_KEYS and "block" in keys else "other"

    return jax.tree_util.tree_map_with_path(label, params)
