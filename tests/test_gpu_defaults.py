"""The implementation a run gets when it names none: chosen once from the device (conv, kernel, activations)."""

from __future__ import annotations

import jax.numpy as jnp
import pytest

from s4lite import engine, layer, model
from s4lite.toeplitz_pallas import toeplitz_conv_tiled_cf


@pytest.mark.parametrize(
    "capability, conv, dtype, dropout",
    [
        (None, "fft", None, model.dropout),
        (7.5, "fft", None, model.dropout_bytes),
        (8.0, "toeplitz_tiled", jnp.bfloat16, model.dropout_bytes),
        (9.0, "toeplitz_tiled", jnp.bfloat16, model.dropout_bytes),
    ],
)
def test_auto_choices_follow_the_device(monkeypatch, capability, conv, dtype, dropout):
    """CPU: FFT, float32, Bernoulli masks; Colab's T4 (7.5): the same with byte masks;
    compute capability >= 8.0: tiled bf16 Toeplitz (Pallas), channels first, bf16 activations, byte masks."""
    monkeypatch.setattr(engine, "gpu_compute_capability", lambda: capability)
    engine.resolve_backend.cache_clear()
    try:
        cfg = engine.validate(engine.TrainConfig())  # the defaults: conv, kernel, activations all "auto"
        assert (cfg.conv, cfg.kernel, cfg.activations, cfg.dropout_bits) == ("auto",) * 4
        backend = engine.resolve(cfg)
    finally:
        engine.resolve_backend.cache_clear()
    assert engine.resolve_conv("auto") == conv
    if conv == "fft":
        assert backend.conv is layer.fft_conv and not backend.channels_first
    else:  # the tiled Pallas kernels, with the blocks run channels first
        assert backend.conv.func is toeplitz_conv_tiled_cf and backend.channels_first
    assert backend.dtype == dtype
    assert backend.dropout is dropout
