"""The faster convolution variants and the byte-wise dropout, against the float64 FFT convolution."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s4lite.fast_conv import dropout_bytes, toeplitz_conv_fftgrad, toeplitz_conv_lean
from s4lite.layer import fft_conv


def _rel(a, b):
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


@pytest.mark.parametrize("conv", [toeplitz_conv_lean, toeplitz_conv_fftgrad])
def test_variant_matches_fft_convolution_and_its_gradients(conv):
    k = jax.random.split(jax.random.PRNGKey(0), 3)
    u = jax.random.normal(k[0], (3, 40, 4), jnp.float64)
    K = jax.random.normal(k[1], (4, 40), jnp.float64) * jnp.exp(-jnp.arange(40) / 10)
    w = jax.random.normal(k[2], u.shape, jnp.float64)
    # bfloat16 products keep 8 bits of mantissa: about 3e-3 relative error, by design
    assert _rel(conv(u, K), fft_conv(u, K)) < 1e-2
    g = jax.grad(lambda u, K: jnp.sum(conv(u, K) * w), (0, 1))(u, K)
    r = jax.grad(lambda u, K: jnp.sum(fft_conv(u, K) * w), (0, 1))(u, K)
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
