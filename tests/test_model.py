"""Tests for s4lite.model: parameter shapes and count, outputs, causality, CNN == RNN, dropout, LayerNorm.

Exactness checks run in float64 (tests/conftest.py); model parameters are cast with :func:`f64`.
Tiny sizes: d_model ≤ 8, N = 8, L ≤ 40.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s4lite import layer, model

D_IN, D_OUT, H, N_LAYERS, N = 2, 3, 8, 2, 8


def f64(params):
    return jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), params)


@partial(jax.jit, static_argnums=(1, 2, 3, 4, 5))
def _init(key, d_input, d_output, d_model, n_layers, N_):
    return model.init_model(key, d_input, d_output, d_model, n_layers, N_)


@pytest.fixture(scope="module")
def params():
    """A small float64 model whose LayerNorm scales/biases and skip terms are moved off their initial
    values (1, 0, 1), so that every path of the network is exercised by the checks."""
    p = f64(_init(jax.random.PRNGKey(0), D_IN, D_OUT, H, N_LAYERS, N))
    keys = iter(jax.random.split(jax.random.PRNGKey(1), 3 * N_LAYERS))
    for layer in p["layers"]:
        layer["norm"]["scale"] = 1.0 + 0.2 * jax.random.normal(next(keys), (H,), jnp.float64)
        layer["norm"]["bias"] = 0.2 * jax.random.normal(next(keys), (H,), jnp.float64)
        layer["s4"]["D"] = jax.random.normal(next(keys), (H,), jnp.float64)
    return p


sequence_outputs = jax.jit(model.sequence_outputs)
classify = jax.jit(model.classify, static_argnames=("rate", "backend"))


# ----------------------------------------------------------------------------------------------
# parameters
# ----------------------------------------------------------------------------------------------


def expected_count(d_input: int, d_output: int, d_model: int, n_layers: int, N: int) -> int:
    """Parameters of the deep model, from the layer definitions (not from the pytree)."""
    encoder = d_input * d_model + d_model
    norm = 2 * d_model
    # per channel: log(−Re Λ), Im Λ (N/2 each), P, B, C̃ (N/2 complex each), log Δ, D
    s4 = d_model * (N // 2 + N // 2 + 3 * 2 * (N // 2) + 2)
    mix = d_model * 2 * d_model + 2 * d_model
    head = d_model * d_output + d_output
    return encoder + n_layers * (norm + s4 + mix) + head


def manual_count(p) -> int:
    """Walk the documented structure by hand and add up the sizes."""
    size = lambda x: int(np.prod(x.shape))  # noqa: E731
    total = size(p["encoder"]["W"]) + size(p["encoder"]["b"]) + size(p["head"]["W"]) + size(p["head"]["b"])
    for layer in p["layers"]:
        total += size(layer["norm"]["scale"]) + size(layer["norm"]["bias"])
        total += sum(size(layer["s4"][k]) for k in ("log_neg_re", "im", "P", "B", "Ct", "log_step", "D"))
        total += size(layer["mix"]["W"]) + size(layer["mix"]["b"])
    return total


def test_init_model_shapes(params):
    assert set(params) == {"encoder", "layers", "head"}
    assert params["encoder"]["W"].shape == (D_IN, H) and params["encoder"]["b"].shape == (H,)
    assert params["head"]["W"].shape == (H, D_OUT) and params["head"]["b"].shape == (D_OUT,)
    assert len(params["layers"]) == N_LAYERS
    for layer in params["layers"]:
        assert set(layer) == {"norm", "s4", "mix"}
        assert layer["norm"]["scale"].shape == layer["norm"]["bias"].shape == (H,)
        assert layer["mix"]["W"].shape == (H, 2 * H) and layer["mix"]["b"].shape == (2 * H,)
        assert layer["s4"]["Ct"].shape == (H, N // 2, 2) and layer["s4"]["log_step"].shape == (H,)


def test_init_model_layers_differ_and_biases_start_at_zero():
    p = _init(jax.random.PRNGKey(3), D_IN, D_OUT, H, N_LAYERS, N)
    a, b = p["layers"]
    assert not np.array_equal(np.asarray(a["s4"]["Ct"]), np.asarray(b["s4"]["Ct"]))
    assert not np.array_equal(np.asarray(a["mix"]["W"]), np.asarray(b["mix"]["W"]))
    for d in (p["encoder"], p["head"], a["mix"]):
        np.testing.assert_array_equal(np.asarray(d["b"]), 0.0)
    # LeCun-uniform: |W| ≤ 1/sqrt(fan_in)
    assert float(jnp.max(jnp.abs(a["mix"]["W"]))) <= 1.0 / np.sqrt(H)


@pytest.mark.parametrize("dims", [(D_IN, D_OUT, H, N_LAYERS, N), (3, 5, 6, 3, 12)])
def test_count_params_small(dims):
    p = jax.eval_shape(lambda k: model.init_model(k, *dims), jax.random.PRNGKey(0))
    assert model.count_params(p) == manual_count(p) == expected_count(*dims)


def test_count_params_of_the_book_model():
    """The sMNIST model of the book (d_input=1, d_output=10, H=128, 4 layers, N=64)."""
    dims = (1, 10, 128, 4, 64)
    p = jax.eval_shape(lambda k: model.init_model(k, *dims), jax.random.PRNGKey(0))
    n = model.count_params(p)
    assert n == manual_count(p) == expected_count(*dims)
    assert n == 266762  # the number the book reports


# ----------------------------------------------------------------------------------------------
# outputs
# ----------------------------------------------------------------------------------------------


def test_classify_and_sequence_output_shapes(params):
    x = jax.random.normal(jax.random.PRNGKey(2), (3, 25, D_IN), jnp.float64)
    logits = classify(params, x)
    assert logits.shape == (3, D_OUT) and logits.dtype == jnp.float64
    seq = sequence_outputs(params, x)
    assert seq.shape == (3, 25, D_OUT)
    assert np.all(np.isfinite(np.asarray(logits)))
    # classify = head(mean over time of the features); the head is affine, so it is the time-mean of
    # the per-step outputs
    np.testing.assert_allclose(np.asarray(logits), np.asarray(seq).mean(axis=1), atol=1e-12)
    # the toeplitz convolution gives the same logits
    toeplitz = model.Backend(conv=layer.toeplitz_conv)
    np.testing.assert_allclose(np.asarray(classify(params, x, backend=toeplitz)), np.asarray(logits), atol=1e-12)


def test_init_model_rejects_bad_sizes():
    key = jax.random.PRNGKey(0)
    for name, kwargs in (("d_model", {"d_model": 0}), ("n_layers", {"n_layers": 0}), ("d_input", {"d_input": 1.5}),
                         ("N", {"N": 7}), ("dt_min", {"dt_min": 0.2, "dt_max": 0.1})):  # fmt: skip
        with pytest.raises(ValueError, match=rf"^{name}:"):
            model.init_model(key, **{"d_model": 4, "N": 8, **kwargs})


def test_classify_rejects_bad_x(params):
    with pytest.raises(ValueError, match="^x:"):
        model.classify(params, jnp.ones((3, 25, D_IN + 1)))
    with pytest.raises(ValueError, match="^x:"):
        model.classify(params, jnp.ones((25, D_IN)))


def test_sequence_outputs_are_causal(params):
    L, t = 40, 17
    x = jax.random.normal(jax.random.PRNGKey(4), (2, L, D_IN), jnp.float64)
    x2 = x.at[:, t + 1 :].set(jax.random.normal(jax.random.PRNGKey(5), (2, L - t - 1, D_IN), jnp.float64))
    y, y2 = np.asarray(sequence_outputs(params, x)), np.asarray(sequence_outputs(params, x2))
    err = np.max(np.abs(y[:, : t + 1] - y2[:, : t + 1]))
    print(f"max change of outputs 0…{t} = {err:.2e}")
    assert err < 1e-12
    assert np.min(np.max(np.abs(y[:, t + 1 :] - y2[:, t + 1 :]), axis=-1)) > 1e-6  # later outputs do change


@jax.jit
def _scan_recurrent(params, forms, states, x):
    """Run the recurrent network over ``x (L, d_input)`` from ``states``; per-step outputs ``(L, d_output)``."""

    def step(s, x_k):
        return model.step_outputs(params, forms, s, x_k)

    return jax.lax.scan(step, states, x)[1]


@jax.jit
def _scan_recurrent_batched(params, forms, states, x):
    """The same for a batch ``x (B, L, d_input)`` with states ``(B, H, N)``: ``step_outputs`` under vmap."""
    step = jax.vmap(model.step_outputs, in_axes=(None, None, 0, 0))

    def body(s, x_k):
        return step(params, forms, s, x_k)

    return jnp.swapaxes(jax.lax.scan(body, states, jnp.swapaxes(x, 0, 1))[1], 0, 1)


def test_network_cnn_equals_rnn(params):
    L = 40
    x = jax.random.normal(jax.random.PRNGKey(6), (2, L, D_IN), jnp.float64)
    y_cnn = np.asarray(sequence_outputs(params, x))
    forms, states = model.init_recurrent(params, L)  # host set-up, outside jit
    assert [st.shape for st in states] == [(H, N)] * N_LAYERS
    for b in range(2):
        y_rnn = np.asarray(_scan_recurrent(params, forms, states, x[b]))
        err = float(np.max(np.abs(y_cnn[b] - y_rnn)) / np.max(np.abs(y_rnn)))
        print(f"network: max |CNN − RNN| / max |RNN| = {err:.2e}")
        assert err < 1e-10
    # batched zero states from init_recurrent(batch=...), stepped with vmap
    forms, states = model.init_recurrent(params, L, batch=2)
    assert [st.shape for st in states] == [(2, H, N)] * N_LAYERS
    y_batched = np.asarray(_scan_recurrent_batched(params, forms, states, x))
    assert float(np.max(np.abs(y_batched - y_cnn)) / np.max(np.abs(y_cnn))) < 1e-10


# ----------------------------------------------------------------------------------------------
# dropout and LayerNorm
# ----------------------------------------------------------------------------------------------


def test_dropout_identity_cases():
    x = jnp.arange(12.0).reshape(3, 4)
    assert model.dropout(None, x, 0.5) is x
    assert model.dropout(jax.random.PRNGKey(0), x, 0.0) is x


@pytest.mark.parametrize("rate", [1.0, 1.5, -0.5])
def test_dropout_rejects_a_rate_outside_0_1(rate):
    with pytest.raises(ValueError, match="^rate:"):
        model.dropout(jax.random.PRNGKey(0), jnp.ones(4), rate)


def test_dropout_preserves_expected_value():
    rate, n, draws = 0.5, 1000, 200
    x = jnp.full((n,), 3.0, jnp.float64)
    keys = jax.random.split(jax.random.PRNGKey(0), draws)
    ys = np.asarray(jax.jit(jax.vmap(lambda k: model.dropout(k, x, rate)))(keys))
    # every value is either dropped (0) or scaled by 1/(1 − rate)
    assert set(np.unique(ys)) == {0.0, 6.0}
    kept = np.mean(ys != 0)
    # 2e5 Bernoulli(1/2) draws: the standard error of the kept fraction is 0.0011; allow ~5 of them
    assert abs(kept - 0.5) < 0.006
    assert abs(ys.mean() - 3.0) < 3.0 * 2 * 0.006
    # different keys drop different entries
    assert not np.array_equal(ys[0], ys[1])


def test_layer_norm_zero_mean_unit_variance():
    x = 5.0 + 3.0 * jax.random.normal(jax.random.PRNGKey(0), (4, 7, 16), jnp.float64)
    p = {"scale": jnp.ones(16), "bias": jnp.zeros(16)}
    eps = 1e-5
    y = np.asarray(model.layer_norm(p, x, eps))
    var_in = np.var(np.asarray(x), axis=-1)
    np.testing.assert_allclose(y.mean(axis=-1), 0.0, atol=1e-13)
    # exactly var / (var + eps), i.e. 1 up to the eps regularization
    np.testing.assert_allclose(y.var(axis=-1), var_in / (var_in + eps), rtol=1e-12)
    np.testing.assert_allclose(y.var(axis=-1), 1.0, rtol=1e-5)
    # scale and bias act per feature after normalizing
    q = {"scale": jnp.arange(1.0, 17.0), "bias": jnp.linspace(-1.0, 1.0, 16)}
    np.testing.assert_allclose(np.asarray(model.layer_norm(q, x, eps)), y * np.arange(1.0, 17.0) + np.linspace(-1, 1, 16), atol=1e-12)
