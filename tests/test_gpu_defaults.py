"""The implementation a run gets when it names none: chosen once from the device (conv, kernel, activations)."""

from __future__ import annotations

import jax.numpy as jnp
import pytest

from s4lite import engine, layer, model
from s4lite.fast_conv import toeplitz_conv_lean


@pytest.mark.parametrize(
    "capability, conv, dtype",
    [(None, "fft", None), (7.5, "fft", None), (8.0, "toeplitz_lean", jnp.bfloat16), (9.0, "toeplitz_lean", jnp.bfloat16)],
)
def test_auto_choices_follow_the_device(monkeypatch, capability, conv, dtype):
    """CPU and Colab's T4 (7.5): FFT convolution, float32; compute capability >= 8.0: lean bf16 Toeplitz, bf16."""
    monkeypatch.setattr(engine, "gpu_compute_capability", lambda: capability)
    engine.resolve_backend.cache_clear()
    try:
        cfg = engine.validate(engine.TrainConfig())  # the defaults: conv, kernel, activations all "auto"
        assert (cfg.conv, cfg.kernel, cfg.activations) == ("auto", "auto", "auto")
        backend = engine.resolve(cfg)
    finally:
        engine.resolve_backend.cache_clear()
    assert engine.resolve_conv("auto") == conv
    assert backend.conv is {"fft": layer.fft_conv, "toeplitz_lean": toeplitz_conv_lean}[conv]
    assert backend.dtype == dtype
    assert backend.dropout is model.dropout  # Bernoulli masks unless --dropout-bits bytes
