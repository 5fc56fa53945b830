"""The implementation a run gets when it names none: chosen once from the device (conv, kernel, activations)."""

from __future__ import annotations

import jax.numpy as jnp
import pytest

from s4lite import engine, layer, model
from s4lite.fast_conv import toeplitz_conv_lean


@pytest.mark.parametrize(
    "capability, conv, dtype, dropout",
    [
        (None, "fft", None, model.dropout),
        (7.5, "fft", None, model.dropout_bytes),
        (8.0, "toeplitz_lean", jnp.bfloat16, model.dropout_bytes),
        (9.0, "toeplitz_lean", jnp.bfloat16, model.dropout_bytes),
    ],
)
def test_auto_choices_follow_the_device(monkeypatch, capability, conv, dtype, dropout):
    """CPU: FFT, float32, Bernoulli masks; Colab's T4 (7.5): the same with byte masks;
    compute capability >= 8.0: lean bf16 Toeplitz, bf16 activations, byte masks."""
    monkeypatch.setattr(engine, "gpu_compute_capability", lambda: capability)
    engine.resolve_backend.cache_clear()
    try:
        cfg = engine.validate(engine.TrainConfig())  # the defaults: conv, kernel, activations all "auto"
        assert (cfg.conv, cfg.kernel, cfg.activations, cfg.dropout_bits) == ("auto",) * 4
        backend = engine.resolve(cfg)
    finally:
        engine.resolve_backend.cache_clear()
    assert engine.resolve_conv("auto") == conv
    assert backend.conv is {"fft": layer.fft_conv, "toeplitz_lean": toeplitz_conv_lean}[conv]
    assert backend.dtype == dtype
    assert backend.dropout is dropout
