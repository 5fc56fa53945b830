"""The faster convolution variants, byte-wise dropout and bfloat16 activations, against float64 references."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s4lite import engine, model, toeplitz_pallas
from s4lite.fast_conv import (
    diagonal_sums_f32,
    lag_sums,
    toeplitz_bf16,
    toeplitz_conv_blocked,
    toeplitz_conv_fftgrad,
    toeplitz_conv_lean,
)
from s4lite.layer import fft_conv, init_s4, s4_apply, s4_kernel
from s4lite.model import classify, dropout_bytes, glu_mix, init_model, layer_norm
from s4lite.toeplitz_pallas import toeplitz_conv_tiled, toeplitz_conv_tiled_cf


def _rel(a, b):
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


@pytest.mark.parametrize("conv", [toeplitz_conv_lean, toeplitz_conv_fftgrad, toeplitz_conv_blocked])
def test_variant_matches_fft_convolution_and_its_gradients(conv):
    k = jax.random.split(jax.random.PRNGKey(0), 3)
    u = jax.random.normal(k[0], (3, 40, 4), jnp.float64)
    K = jax.random.normal(k[1], (4, 40), jnp.float64) * jnp.exp(-jnp.arange(40) / 10)
    w = jax.random.normal(k[2], u.shape, jnp.float64)
    # bfloat16 products keep 8 bits of mantissa: about 3e-3 relative error, by design
    assert _rel(jax.jit(conv)(u, K), jax.jit(fft_conv)(u, K)) < 1e-2
    g = jax.jit(jax.grad(lambda u, K: jnp.sum(conv(u, K) * w), (0, 1)))(u, K)  # jitted: one compilation
    r = jax.jit(jax.grad(lambda u, K: jnp.sum(fft_conv(u, K) * w), (0, 1)))(u, K)
    assert _rel(g[0], r[0]) < 1e-2
    tol = 1e-12 if conv is toeplitz_conv_fftgrad else 1e-2  # the FFT gradient is exact
    assert _rel(g[1], r[1]) < tol


def test_dropout_bytes_keeps_the_expectation():
    x = jnp.ones((64, 64, 16))
    y = dropout_bytes(jax.random.PRNGKey(1), x, 0.25)
    dropped = float(jnp.mean(y == 0))
    assert abs(dropped - 0.25) < 0.01  # 65,536 draws: standard error 0.0017
    assert np.isclose(float(y.max()), 1 / 0.75)
    assert dropout_bytes(jax.random.PRNGKey(1), x, 0.0) is x
    assert dropout_bytes(None, x, 0.25) is x  # evaluation: no key, no dropout


def test_diagonal_sums_match_an_explicit_loop():
    M = np.random.default_rng(0).standard_normal((3, 9, 9))
    ref = [[sum(M[h, i, i - m] for i in range(m, 9)) for m in range(9)] for h in range(3)]
    got = np.asarray(diagonal_sums_f32(jnp.asarray(M)))
    assert np.max(np.abs(got - np.array(ref))) < 1e-5  # summed in float32
    ref_up = [[sum(M[h, i, i + m] for i in range(9 - m)) if m else 0.0 for m in range(9)] for h in range(3)]
    got_up = np.asarray(diagonal_sums_f32(jnp.asarray(M), upper=True))
    assert np.max(np.abs(got_up - np.array(ref_up))) < 1e-5


@pytest.mark.parametrize("L, n", [(40, 4), (41, 4), (12, 3), (8, 8), (40, 1)])
def test_blocked_convolution_is_exact_where_bfloat16_is(L, n):
    """Small integers are exact in bfloat16 and their sums in float32: then the blocked product, its
    input gradient and its kernel gradient (diagonal sums over the blocks, the lags split between two
    neighbouring blocks) equal the float64 FFT convolution's, for L a multiple of n and not (41)."""
    u, K, w = _integers(L + n, (2, L, 3), (3, L), 2)
    _assert_equal_to(fft_conv, lambda u, K: toeplitz_conv_blocked(u, K, n), u, K, w)


def _integers(seed, u_shape, K_shape, span):
    """Integer-valued float64 ``u``, ``K`` and cotangent ``w`` in [−span, span]: exact in bfloat16."""
    k = jax.random.split(jax.random.PRNGKey(seed), 3)
    u = jax.random.randint(k[0], u_shape, -span, span + 1).astype(jnp.float64)
    K = jax.random.randint(k[1], K_shape, -span, span + 1).astype(jnp.float64)
    w = jax.random.randint(k[2], u_shape, -span + 1, span).astype(jnp.float64)
    return u, K, w


def _assert_equal_to(reference, conv, u, K, w):
    """``conv``'s output, input gradient and kernel gradient equal ``reference``'s (to 1e-9)."""
    got_y, got_back = jax.vjp(jax.jit(conv), u, K)
    ref_y, ref_back = jax.vjp(reference, u, K)
    for a, b in zip((got_y, *got_back(w)), (ref_y, *ref_back(w))):
        assert float(jnp.max(jnp.abs(a - b))) < 1e-9


def test_bfloat16_activations_stay_close_to_float32():
    """The whole classifier with bf16 activations (lean Toeplitz) vs float32 activations (FFT)."""
    params = init_model(jax.random.PRNGKey(0), d_model=16, n_layers=2, N=8)
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 64, 1), jnp.float32)
    run = jax.jit(classify, static_argnames="backend")
    ref = run(params, x, backend=engine.resolve_backend("s4", "fft", "xla"))
    bf16 = engine.resolve_backend("s4", "toeplitz_lean", "xla", activations="bfloat16")
    got = run(params, x, backend=bf16)
    assert got.dtype == ref.dtype  # the residual stream and the head keep their type
    err = _rel(got, ref)
    assert 1e-5 < err < 3e-2, err  # bf16 keeps 8 mantissa bits: visibly different, still close


def test_bfloat16_activations_refuse_the_fft_convolution():
    with pytest.raises(ValueError, match="^activations: bfloat16 needs a Toeplitz"):
        engine.resolve_backend("s4", "fft", "xla", activations="bfloat16")


def test_bfloat16_activations_with_an_fft_convolution_are_refused_up_front():
    cfg = engine.TrainConfig(activations="bfloat16", conv="fft")
    with pytest.raises(ValueError, match="^--activations: bfloat16 needs a Toeplitz convolution"):
        engine.validate(cfg)
    assert engine.resolve_activations("auto", "fft") == "float32"
    assert engine.resolve_activations("auto", "toeplitz_lean") == "bfloat16"
    assert engine.resolve_activations("float32", "toeplitz_lean") == "float32"


@pytest.mark.parametrize("L", [1, 2, 5, 40])
def test_toeplitz_matrix_matches_an_explicit_loop(L):
    """The gather-free construction (a repeated circulant row) is T[h, i, j] = K[h, i − j], exactly."""
    K = jax.random.normal(jax.random.PRNGKey(L), (3, L))
    Kb = np.asarray(K.astype(jnp.bfloat16).astype(jnp.float32))
    ref = np.zeros((3, L, L), np.float32)
    for i in range(L):
        for j in range(i + 1):
            ref[:, i, j] = Kb[:, i - j]
    assert np.array_equal(np.asarray(toeplitz_bf16(K).astype(jnp.float32)), ref)


def test_dropout_bytes_reads_each_byte_of_each_word_once():
    """Entry h of the last axis keeps iff byte h mod 4 (little end first) of word h // 4 is ≥ 64."""
    key, x = jax.random.PRNGKey(3), jnp.ones((5, 7, 10))
    words = np.asarray(jax.random.bits(key, (5, 7, 3), jnp.uint32))
    byte = (words[..., :, None] >> (8 * np.arange(4, dtype=np.uint32))) & 0xFF  # (5, 7, 3, 4)
    keep = byte.reshape(5, 7, 12)[..., :10] >= 64  # rate 0.25 = 64/256
    assert np.array_equal(np.asarray(dropout_bytes(key, x, 0.25)), np.where(keep, 1 / 0.75, 0.0))


def test_s4_layer_folds_the_skip_into_the_kernel():
    """s4_apply convolves with K̄ + D δ: equal to a convolution plus the separate skip D u."""
    p = jax.tree.map(lambda a: a.astype(jnp.float64), init_s4(jax.random.PRNGKey(0), 4, 8))
    p["D"] = jnp.array([0.5, -1.0, 2.0, 0.0])
    u = jax.random.normal(jax.random.PRNGKey(1), (2, 50, 4), jnp.float64)
    ref = fft_conv(u, s4_kernel(p, 50)) + p["D"] * u
    err = float(jnp.max(jnp.abs(s4_apply(p, u) - ref)))
    assert err < 1e-12, err


def test_glu_as_two_products_equals_one_product_split():
    k = jax.random.split(jax.random.PRNGKey(4), 3)
    p = {"W": jax.random.normal(k[0], (6, 12), jnp.float64), "b": jax.random.normal(k[1], (12,), jnp.float64)}
    z = jax.random.normal(k[2], (3, 5, 6), jnp.float64)
    a, g = jnp.split(z @ p["W"] + p["b"], 2, axis=-1)
    err = float(jnp.max(jnp.abs(glu_mix(p, z) - a * jax.nn.sigmoid(g))))
    assert err < 1e-14, err


def test_layer_norm_gradient_written_out_equals_automatic_differentiation():
    """standardize's hand-written VJP vs JAX's derivative of the (x − mean)/sqrt(var + eps) form."""
    from s4lite.model import layer_norm

    k = jax.random.split(jax.random.PRNGKey(7), 4)
    x = jax.random.normal(k[0], (3, 6, 9), jnp.float64) * 3 + 1
    p = {"scale": jax.random.normal(k[1], (9,), jnp.float64), "bias": jax.random.normal(k[2], (9,), jnp.float64)}
    w = jax.random.normal(k[3], x.shape, jnp.float64)

    def by_var(p, x, eps=1e-5):
        m, v = jnp.mean(x, -1, keepdims=True), jnp.var(x, -1, keepdims=True)
        return (x - m) * jax.lax.rsqrt(v + eps) * p["scale"] + p["bias"]

    assert float(jnp.max(jnp.abs(layer_norm(p, x) - by_var(p, x)))) < 1e-13
    g = jax.grad(lambda p, x: jnp.sum(layer_norm(p, x) * w), (0, 1))(p, x)
    r = jax.grad(lambda p, x: jnp.sum(by_var(p, x) * w), (0, 1))(p, x)
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(r)):
        assert float(jnp.max(jnp.abs(a - b))) < 1e-12


@pytest.mark.parametrize("B, L, b", [(2, 40, 16), (3, 64, 16), (1, 33, 32), (2, 16, 16)])
def test_tiled_convolution_is_exact_where_bfloat16_is(B, L, b):
    """The Pallas kernels (here in Pallas's interpreter): tiles of T formed from K where they are
    multiplied, tiles above the diagonal skipped, the kernel gradient from the lag blocks C_d.
    On small integers (exact in bfloat16, and their sums in float32) the output, the input gradient
    and the kernel gradient equal the float64 FFT convolution's; L a multiple of b and not, B not a
    power of two (padded)."""
    u, K, w = _integers(L + b, (B, L, 3), (3, L), 3)
    _assert_equal_to(fft_conv, lambda u, K: toeplitz_conv_tiled(u, K, b), u, K, w)


def test_tiled_convolution_keeps_the_input_type_and_matches_lean_on_real_numbers():
    k = jax.random.split(jax.random.PRNGKey(3), 2)
    u = jax.random.normal(k[0], (2, 48, 4)).astype(jnp.bfloat16)
    K = jax.random.normal(k[1], (4, 48)) * jnp.exp(-jnp.arange(48) / 10)
    y = jax.jit(lambda u, K: toeplitz_conv_tiled(u, K, 16))(u, K)
    assert y.dtype == jnp.bfloat16 and y.shape == u.shape
    assert _rel(y.astype(jnp.float32), toeplitz_conv_lean(u, K).astype(jnp.float32)) < 1e-2


def test_lag_sums_match_an_explicit_loop():
    """``lag_sums``: entry (i, j) of block d counts at lag d b + i − j; negative lags are dropped."""
    H, n, b = 2, 3, 4
    C = np.random.default_rng(1).standard_normal((H, n, b, b))
    ref = np.zeros((H, n * b))
    for h, d, i, j in np.ndindex(H, n, b, b):
        m = d * b + i - j
        if 0 <= m < n * b:
            ref[h, m] += C[h, d, i, j]
    assert np.max(np.abs(np.asarray(lag_sums(jnp.asarray(C))) - ref)) < 1e-5  # summed in float32


def _conv_cf_fft(u, K):
    """The FFT convolution on channels-first ``(H, B, L)`` arrays (a reference)."""
    return jnp.transpose(fft_conv(jnp.transpose(u, (1, 2, 0)), K), (2, 0, 1))


def test_channels_first_blocks_equal_channels_last_blocks():
    """The model with its blocks run on (H, B, L) arrays (layer norm over axis 0, the GLU mixing
    axis 0, the kernel's length from the last axis) computes the same numbers, and the same
    gradients, as the model on (B, L, H) arrays: same operations, another memory order."""
    params = init_model(jax.random.PRNGKey(0), d_model=16, n_layers=2, N=8)
    x = jax.random.normal(jax.random.PRNGKey(1), (3, 40, 1), jnp.float64)
    last = model.Backend()
    first = model.Backend(conv=_conv_cf_fft, channels_first=True)
    assert float(jnp.max(jnp.abs(classify(params, x, None, 0.0, first)
                                 - classify(params, x, None, 0.0, last)))) < 1e-12  # fmt: skip
    grads = [jax.grad(lambda p, b=b: jnp.sum(classify(p, x, None, 0.0, b) ** 2))(params)
             for b in (last, first)]  # fmt: skip
    assert max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(*map(jax.tree.leaves, grads))) < 1e-12
    y_first = model.sequence_outputs(params, x, None, 0.0, first)
    assert y_first.shape == (3, 40, 10)
    assert float(jnp.max(jnp.abs(y_first - model.sequence_outputs(params, x)))) < 1e-12


def test_the_tiled_backend_runs_channels_first_and_stays_close_to_the_fft():
    """``--conv toeplitz_tiled``: channels-first blocks, bfloat16 activations, the Pallas kernels
    (interpreted here); the classifier's outputs within bfloat16 error of the float32 FFT model's."""
    engine.resolve_backend.cache_clear()
    backend = engine.resolve_backend("s4", "toeplitz_tiled", "xla", "bilinear", "auto", "bernoulli")
    assert backend.channels_first and backend.dtype == jnp.bfloat16
    assert backend.conv.func is toeplitz_conv_tiled_cf
    params = init_model(jax.random.PRNGKey(0), d_model=16, n_layers=2, N=8)
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 40, 1))
    tiled = model.Backend(backend.kernel, partial(toeplitz_conv_tiled_cf, b=16), dtype=jnp.bfloat16,
                          channels_first=True)  # fmt: skip
    assert _rel(jax.jit(classify, static_argnums=4)(params, x, None, 0.0, tiled), classify(params, x)) < 3e-2


def test_layer_norm_and_glu_over_the_channel_axis_of_channels_first_arrays():
    k = jax.random.split(jax.random.PRNGKey(7), 4)
    x = jax.random.normal(k[0], (8, 3, 5), jnp.float64) * 2 + 1  # (H, B, L)
    p = {"scale": jax.random.normal(k[1], (8,), jnp.float64), "bias": jnp.linspace(-1, 1, 8)}
    w = jax.random.normal(k[2], x.shape, jnp.float64)
    last = partial(jnp.moveaxis, source=0, destination=-1)  # (H, B, L) → (B, L, H)
    first = partial(jnp.moveaxis, source=-1, destination=0)
    assert float(jnp.max(jnp.abs(layer_norm(p, x, axis=0) - first(layer_norm(p, last(x)))))) < 1e-13
    g = jax.grad(lambda x: jnp.sum(layer_norm(p, x, axis=0) * w))(x)
    r = jax.grad(lambda x: jnp.sum(first(layer_norm(p, last(x))) * w))(x)
    assert float(jnp.max(jnp.abs(g - r))) < 1e-12
    mix = {"W": jax.random.normal(k[3], (8, 16), jnp.float64), "b": jnp.linspace(-1, 1, 16)}
    assert float(jnp.max(jnp.abs(glu_mix(mix, x, axis=0) - first(glu_mix(mix, last(x)))))) < 1e-13


def test_tiled_convolution_over_several_blocks_of_sequences(monkeypatch):
    """More sequences than one program holds (here blocks of 16 for 40 sequences, padded to 48):
    the outputs per block, the kernel gradient's sums added over the blocks, still exact."""
    monkeypatch.setattr(toeplitz_pallas, "BATCH_BLOCK", 16)
    u, K, w = _integers(11, (2, 40, 24), (2, 24), 3)  # u (H, B, L)
    _assert_equal_to(_conv_cf_fft, lambda u, K: toeplitz_conv_tiled_cf(u, K, 16), u, K, w)


@pytest.mark.parametrize(
    "arg, call",
    [
        ("b", lambda u, K: toeplitz_conv_tiled(u, K, 48)),
        ("b", lambda u, K: toeplitz_conv_tiled(u, K, 8)),
        ("warps", lambda u, K: toeplitz_conv_tiled(u, K, 16, 3)),
        ("stages", lambda u, K: toeplitz_conv_tiled(u, K, 16, 4, 0)),
        ("u", lambda u, K: toeplitz_conv_tiled(u[0], K)),
        ("K", lambda u, K: toeplitz_conv_tiled(u, K[:, :-1])),
        ("K", lambda u, K: toeplitz_conv_tiled_cf(u, K)),  # (B, L, H) where (H, B, L) is expected
        ("b", lambda u, K: toeplitz_conv_tiled_cf(jnp.transpose(u, (2, 0, 1)), K, 20)),
    ],
)
def test_tiled_convolution_refuses_bad_input_in_one_line(arg, call):
    u, K = jnp.ones((2, 24, 3)), jnp.ones((3, 24))
    with pytest.raises(ValueError, match=rf"^{arg}: expected"):
        call(u, K)
