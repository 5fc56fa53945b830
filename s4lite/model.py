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

import functools
from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from . import _check
from .layer import Params, fft_conv, init_s4, recurrent_form, s4_apply, s4_kernel, s4_step

Array = jax.Array




def _dense(key: Array, d_in: int, d_out: int) -> Params:
    """A linear map with LeCun-uniform weights ``W (d_in, d_out)`` and zero bias."""
    bound = 1.0 / np.sqrt(d_in)
    W = jax.random.uniform(key, (d_in, d_out), minval=-bound, maxval=bound)
    return {"W": W, "b": jnp.zeros((d_out,))}


def _init_model_args(
    key: Array,
    d_input: int = 1,
    d_output: int = 10,
    d_model: int = 128,
    n_layers: int = 4,
    N: int = 64,
    dt_min: float = 1e-3,
    dt_max: float = 1e-1,
    measure: str = "legs",
    init_layer: Callable | None = None,
) -> tuple:
    sizes = {"d_input": d_input, "d_output": d_output, "d_model": d_model, "n_layers": n_layers}
    for name, v in sizes.items():
        _check.length(name, v)
    if init_layer is None:  # S4 with HiPPO (init_s4 checks N, dt_min, dt_max and measure)
        init_layer = lambda k, H, N_: init_s4(k, H, N_, dt_min, dt_max, measure)  # noqa: E731
    return key, d_input, d_output, d_model, n_layers, N, dt_min, dt_max, measure, init_layer


@_check.checked(_init_model_args)
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
    init_layer: Callable | None = None,
) -> dict[str, Any]:
    """Parameters of the deep model.

    ``init_layer(key, H, N)`` makes each sequence layer (default:
    :func:`~s4lite.layer.init_s4` with ``dt_min``, ``dt_max``, ``measure``).
    """
    keys = jax.random.split(key, 2 + 2 * n_layers)
    layers = [
        {
            "norm": {"scale": jnp.ones((d_model,)), "bias": jnp.zeros((d_model,))},
            "s4": init_layer(keys[2 + 2 * i], d_model, N),
            "mix": _dense(keys[3 + 2 * i], d_model, 2 * d_model),
        }
        for i in range(n_layers)
    ]
    return {
        "encoder": _dense(keys[0], d_input, d_model),
        "layers": layers,
        "head": _dense(keys[1], d_model, d_output),
    }


def count_params(params: Any) -> int:
    """Number of trainable real numbers in a parameter pytree."""
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))


def layer_norm(p: Params, x: Array, eps: float = 1e-5, axis: int = -1) -> Array:
    """LayerNorm over the channels: (x − mean) / sqrt(var + eps) · scale + bias.

    The channels are ``axis`` (default the last; 0 for channels-first arrays).
    """
    others = [a for a in range(x.ndim) if a != axis % x.ndim]
    scale = jnp.expand_dims(p["scale"], others)
    bias = jnp.expand_dims(p["bias"], others)
    return standardize(x, eps, axis) * scale + bias


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def standardize(x: Array, eps: float = 1e-5, axis: int = -1) -> Array:
    r"""``x̂ = (x − μ) r`` over ``axis``, :math:`r = (\sigma^2 + \epsilon)^{-1/2}`.

    Its gradient, written out so that it takes one pass over the rows (XLA's
    derivative of ``jnp.var`` takes several):
    :math:`\partial x = r\,(g - \overline{g} - \hat x\,\overline{g \hat x})`,
    bars being means over ``axis``.
    """
    mean, r = _mean_and_scale(x, eps, axis)
    return (x - mean) * r


def _mean_and_scale(x: Array, eps: float, axis: int) -> tuple[Array, Array]:
    """μ and r = (σ² + ε)^(−1/2) of each row (along ``axis``), kept with that axis of size 1."""
    mean = jnp.mean(x, axis=axis, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=axis, keepdims=True)
    return mean, jax.lax.rsqrt(var + eps)


def _standardize_fwd(x: Array, eps: float, axis: int):
    mean, r = _mean_and_scale(x, eps, axis)
    return (x - mean) * r, (x, mean, r)


def _standardize_bwd(eps: float, axis: int, res, g: Array):
    x, mean, r = res
    xh = (x - mean) * r
    g_mean = jnp.mean(g, axis=axis, keepdims=True)
    gx_mean = jnp.mean(g * xh, axis=axis, keepdims=True)
    return (r * (g - g_mean - xh * gx_mean),)


standardize.defvjp(_standardize_fwd, _standardize_bwd)


def _dropout_args(key: Array | None, x: Array, rate: Any) -> tuple:
    if _check.is_concrete(rate) and not 0.0 <= float(rate) < 1.0:
        raise ValueError(f"rate: expected a dropout rate in [0, 1), got {rate!r}")
    return key, x, rate


@_check.checked(_dropout_args)
def dropout(key: Array | None, x: Array, rate: float) -> Array:
    """Inverted dropout: keep an entry with probability 1 − rate and scale it up.

    Kept entries are divided by 1 − rate, so the expectation is unchanged. The identity
    when ``key`` is None or ``rate`` is 0. ``rate`` may be a traced array.
    """
    if key is None or (isinstance(rate, (int, float)) and rate == 0.0):
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0)


def dropout_bytes(key: Array | None, x: Array, rate: float) -> Array:
    """:func:`dropout` from one random byte per element: a quarter of the random bits.

    Entry h of the last axis reads byte h mod 4 of 32-bit word ⌊h / 4⌋: shifts and
    masks only, so the mask is computed where it is used. ``rate`` (a Python number)
    is rounded to a multiple of 1/256 (0.25 is exact); kept entries are divided by
    1 − (rounded rate), so the expectation is still ``x``.
    """
    q = round(float(rate) * 256)
    if key is None or q == 0:
        return x
    H = x.shape[-1]
    words = jax.random.bits(key, x.shape[:-1] + (-(-H // 4),), jnp.uint32)
    shift = (jnp.arange(H, dtype=jnp.uint32) % 4) * 8
    byte = (jnp.repeat(words, 4, axis=-1)[..., :H] >> shift) & 0xFF
    return jnp.where(byte >= q, x / (1 - q / 256), 0).astype(x.dtype)


@dataclass(frozen=True)
class Backend:
    """How the blocks compute, chosen once where a run starts (:func:`s4lite.engine.resolve`).

    ``kernel(params, L) -> (H, L)`` and ``conv(u, K) -> y`` compute the sequence layer, ``dropout``
    draws the masks, and ``dtype`` is the type of the activations inside a block (None: the
    input's; the residual stream and the weights keep theirs). ``channels_first``: the blocks
    run on ``(H, B, L)`` arrays and ``conv`` takes that layout: each channel's sequences are
    contiguous rows (what the tiled Pallas convolution reads), and the GLU's products are
    plain matrix products over all positions, so no transposes sit between the parts. The
    default: XLA kernel, FFT convolution, Bernoulli dropout, no cast, ``(B, L, H)``. Hashable,
    so it can be a static argument.
    """

    kernel: Callable[[Params, int], Array] = s4_kernel
    conv: Callable[[Array, Array], Array] = fft_conv
    dropout: Callable[[Array | None, Array, float], Array] = dropout
    dtype: Any = None
    channels_first: bool = False


DEFAULT = Backend()


def glu_mix(p: Params, z: Array, axis: int = -1) -> Array:
    """Position-wise GLU: ``a * sigmoid(g)`` where ``[a, g] = z W + b``, mixing the channels.

    The two halves of ``W (H, 2H)`` are applied as two products: no ``(…, 2H)`` array is formed
    and split, and none is concatenated in the backward pass. ``axis=0``: ``z`` is ``(H, …)``,
    channels first, and so is the result (``Wᵀ z``).
    """
    H = p["W"].shape[-1] // 2

    def affine(W: Array, bias: Array) -> Array:
        if axis == 0:  # z (H, …): Wᵀ z, the bias along axis 0
            return jnp.tensordot(W, z, axes=(0, 0)) + jnp.expand_dims(bias, range(1, z.ndim))
        return z @ W + bias

    a = affine(p["W"][:, :H], p["b"][:H])
    g = affine(p["W"][:, H:], p["b"][H:])
    return a * jax.nn.sigmoid(g)


def _cast(p: Params, dtype: Any) -> Params:
    return jax.tree.map(lambda a: a.astype(dtype), p)


def _keys(key: Array | None, n: int) -> list:
    return [None] * n if key is None else list(jax.random.split(key, n))


def block(
    p: Params,
    x: Array,
    key: Array | None = None,
    rate: float = 0.0,
    backend: Backend = DEFAULT,
) -> Array:
    """One pre-norm residual block on ``x (..., L, H)``.

    ``(H, ..., L)`` if ``backend.channels_first``: the same operations, channels on
    axis 0.
    """
    k1, k2 = _keys(key, 2)
    cf, channels = backend.channels_first, 0 if backend.channels_first else -1
    z = layer_norm(p["norm"], x, axis=channels).astype(backend.dtype or x.dtype)
    z = s4_apply(p["s4"], z, backend.kernel, backend.conv, channels_first=cf)
    z = backend.dropout(k1, jax.nn.gelu(z), rate)
    mix = _cast(p["mix"], z.dtype)
    z = backend.dropout(k2, glu_mix(mix, z, axis=channels), rate)
    return x + z


def model_features(
    params: dict[str, Any],
    x: Array,
    key: Array | None = None,
    rate: float = 0.0,
    backend: Backend = DEFAULT,
) -> Array:
    """Encoder and all blocks: ``x (B, L, d_input)`` → ``(B, L, d_model)``."""
    h = x @ params["encoder"]["W"] + params["encoder"]["b"]
    if backend.channels_first:
        h = jnp.transpose(h, (2, 0, 1))  # (H, B, L) through the blocks
    for p, k in zip(params["layers"], _keys(key, len(params["layers"]))):
        h = block(p, h, k, rate, backend)
    return jnp.transpose(h, (1, 2, 0)) if backend.channels_first else h


def _classify_args(
    params: dict[str, Any],
    x: Any,
    key: Array | None = None,
    rate: float = 0.0,
    backend: Backend = DEFAULT,
) -> tuple:
    x = _check.as_array("x", x)
    d_input = params["encoder"]["W"].shape[0]
    if x.ndim != 3 or x.shape[-1] != d_input:
        raise ValueError(f"x: expected shape (B, L, {d_input}), got {x.shape}")
    return params, x, key, rate, backend


@_check.checked(_classify_args)
def classify(
    params: dict[str, Any],
    x: Array,
    key: Array | None = None,
    rate: float = 0.0,
    backend: Backend = DEFAULT,
) -> Array:
    """Classification: time-averaged features through the head, ``(B, d_output)``."""
    h = jnp.mean(model_features(params, x, key, rate, backend), axis=1)
    return h @ params["head"]["W"] + params["head"]["b"]


@_check.checked(_classify_args)
def sequence_outputs(
    params: dict[str, Any],
    x: Array,
    key: Array | None = None,
    rate: float = 0.0,
    backend: Backend = DEFAULT,
) -> Array:
    """Causal per-position outputs: ``(B, L, d_input)`` → ``(B, L, d_output)``."""
    h = model_features(params, x, key, rate, backend)
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
