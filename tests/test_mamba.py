"""The Mamba-style block and model: shapes, causality, sequential = parallel scan, the LTI variant,
and the optimizer labels."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s4lite import mamba

# jitted entry points: one compilation per shape and scan method instead of eager op-by-op dispatch
logits = jax.jit(mamba.model_logits, static_argnums=2)
init_model = jax.jit(mamba.init_model, static_argnums=(1, 2, 3, 4, 5))


@pytest.fixture(scope="module")
def model():
    return init_model(jax.random.PRNGKey(0), 6, 8, 2, 4)


def test_shapes_and_scan_methods_agree(model):
    tokens = jax.random.randint(jax.random.PRNGKey(1), (2, 10), 0, 6)
    seq = logits(model, tokens, "sequential")
    par = logits(model, tokens, "parallel")
    assert seq.shape == (2, 10, 6)
    np.testing.assert_allclose(seq, par, rtol=1e-9, atol=1e-9)


def test_causal(model):
    tokens = jax.random.randint(jax.random.PRNGKey(2), (1, 12), 0, 6)
    changed = tokens.at[0, 7:].set((tokens[0, 7:] + 1) % 6)
    a = logits(model, tokens, "sequential")
    b = logits(model, changed, "sequential")
    np.testing.assert_allclose(a[0, :7], b[0, :7], atol=1e-12)
    assert not np.allclose(a[0, 7:], b[0, 7:])


def test_causal_conv1d_is_causal_depthwise():
    w = jnp.arange(1.0, 7.0).reshape(3, 2)
    v = jnp.zeros((5, 2)).at[1, 0].set(1.0)
    y = mamba.causal_conv1d(w, jnp.zeros(2), v)
    # an impulse at t=1 in channel 0 shows the taps w[2], w[1], w[0] at t = 1, 2, 3
    np.testing.assert_allclose(y[:, 0], [0, w[2, 0], w[1, 0], w[0, 0], 0])
    np.testing.assert_allclose(y[:, 1], 0)


def test_delta_positive_and_input_dependent(model):
    p = model["layers"][0]["block"]
    v = jax.random.normal(jax.random.PRNGKey(3), (7, p["D"].shape[0]))
    R = p["dt_proj"].shape[0]
    delta = jax.nn.softplus((v @ p["x_proj"])[:, :R] @ p["dt_proj"] + p["dt_bias"])
    assert np.all(delta > 0) and not np.allclose(delta[0], delta[1])
    # at v = 0 the step is softplus(dt_bias), inside [dt_min, dt_max] = [1e-3, 1e-1]
    d0 = jax.nn.softplus(p["dt_bias"])
    assert np.all((d0 >= 1e-3 * (1 - 1e-5)) & (d0 <= 1e-1 * (1 + 1e-5)))


def test_lti_variant_and_labels():
    lti = init_model(jax.random.PRNGKey(0), 6, 8, 1, 4, False)
    tokens = jnp.zeros((1, 9), jnp.int32)
    assert logits(lti, tokens, "parallel").shape == (1, 9, 6)
    labels = mamba.param_labels(lti)
    blk = labels["layers"][0]["block"]
    assert blk["lti"]["log_neg_re"] == "ssm" and blk["lti"]["C"] == "other" and blk["in_proj"] == "other"
    sel = mamba.param_labels(jax.eval_shape(lambda k: mamba.init_model(k, 6, 8, 1, 4), jax.random.PRNGKey(0)))
    assert sel["layers"][0]["block"]["A_log"] == "ssm" and sel["embed"] == "other"


def test_bad_tokens(model):
    with pytest.raises(ValueError, match=r"^tokens\b"):
        mamba.model_logits(model, jnp.zeros((2, 3)))
