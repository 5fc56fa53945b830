"""The fused Pallas Cauchy kernel (forward and hand-written backward) against independent references.

On this CPU the Pallas kernels run in Pallas's interpreter (the same kernel bodies that Triton
compiles on a GPU), in float64, so the tolerances are roundoff-level. Sizes are small: the
interpreter is slow. The GPU figures (float32) are in ``artifacts/bench/numerics_gpu.json``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s4lite.cauchy import cauchy_conj_imag
from s4lite.cauchy_pallas import cauchy_unit_circle, kernel_dplr_conj_fused, unit_circle_nodes
from s4lite.convolution import kernel_naive
from s4lite.discretize import bilinear
from s4lite import engine
from s4lite.layer import _full, init_s4, s4_apply, s4_kernel, s4_kernel_fused, ssm_parts
from s4lite.kernel import kernel_dplr_conj

TOL = 1e-12  # max-abs relative error, float64

# jitted: the interpreted Pallas kernel (and its reference) compile once per shape, instead of eager
# op-by-op dispatch of every grid step (the bad-input tests call the plain functions)
cauchy_jit = jax.jit(cauchy_unit_circle, static_argnums=(2, 3))
fused_jit = jax.jit(kernel_dplr_conj_fused, static_argnums=(5, 6))


def _poles(rng, H, n):
    return -rng.uniform(0.05, 1.0, (H, n)) + 1j * rng.uniform(-5.0, 5.0, (H, n))


def _layer(H=3, N=12, seed=0):
    return jax.tree.map(lambda x: x.astype(jnp.float64), init_s4(jax.random.PRNGKey(seed), H, N))


def test_nodes_are_the_bilinear_images_of_the_roots_of_unity():
    L = 16
    t = np.asarray(unit_circle_nodes(L, jnp.float64))
    m = np.arange(L // 2)  # the Nyquist node m = L/2 is tan(pi/2): a huge finite number in floating point
    np.testing.assert_allclose(t[: L // 2], np.tan(np.pi * m / L), rtol=1e-12, atol=1e-15)
    assert t.shape == (L // 2 + 1,) and abs(t[-1]) > 1e12


@pytest.mark.parametrize("n, L, block_m", [(6, 20, 4), (8, 33, 8), (5, 64, 16)])
def test_forward_matches_xla_cauchy(rng, relerr, n, L, block_m):
    """Several blocks, padded frequencies and (for n = 6, 5) padded poles."""
    H, J = 2, 3
    w = _poles(rng, H, n)
    v = rng.standard_normal((H, J, n)) + 1j * rng.standard_normal((H, J, n))
    k = cauchy_jit(jnp.asarray(v), jnp.asarray(w), L, block_m)
    z = 1j * unit_circle_nodes(L, jnp.float64)
    assert k.shape == (H, J, L // 2 + 1)
    for h in range(H):
        ref = cauchy_conj_imag(v[h], z, w[h])
        assert relerr(k[h], ref) < TOL


def test_forward_matches_explicit_sum_over_both_members_of_each_pair(rng, relerr):
    H, J, n, L = 1, 2, 4, 12
    w = _poles(rng, H, n)
    v = rng.standard_normal((H, J, n)) + 1j * rng.standard_normal((H, J, n))
    t = np.tan(np.pi * np.arange(L // 2) / L)  # leave out the Nyquist node (infinite in exact arithmetic)
    ref = np.zeros((J, L // 2), complex)
    for j in range(J):
        for m in range(L // 2):
            for i in range(n):
                ref[j, m] += v[0, j, i] / (1j * t[m] - w[0, i]) + np.conj(v[0, j, i]) / (1j * t[m] - np.conj(w[0, i]))
    k = np.asarray(cauchy_jit(jnp.asarray(v), jnp.asarray(w), L, 4))[0, :, : L // 2]
    assert relerr(k, ref) < TOL


def test_backward_matches_automatic_gradient(rng, relerr):
    H, J, n, L = 2, 4, 6, 24
    w0 = jnp.asarray(_poles(rng, H, n))
    v0 = jnp.asarray(rng.standard_normal((H, J, n)) + 1j * rng.standard_normal((H, J, n)))
    wr = jnp.asarray(rng.standard_normal((H, J, L // 2 + 1)) + 1j * rng.standard_normal((H, J, L // 2 + 1)))
    z = 1j * unit_circle_nodes(L, jnp.float64)

    def loss_pallas(v, w):
        return jnp.sum(jnp.real(jnp.conj(wr) * cauchy_unit_circle(v, w, L, 8)) ** 2)

    def loss_xla(v, w):
        k = jnp.stack([cauchy_conj_imag(v[h], z, w[h]) for h in range(H)])
        return jnp.sum(jnp.real(jnp.conj(wr) * k) ** 2)

    gp = jax.jit(jax.grad(loss_pallas, argnums=(0, 1)))(v0, w0)
    gx = jax.jit(jax.grad(loss_xla, argnums=(0, 1)))(v0, w0)
    for a, b in zip(gp, gx):
        assert relerr(a, b) < 1e-11


def test_fused_layer_kernel_matches_vmapped_xla_kernel(relerr):
    params = _layer()
    L = 40
    Lambda, P, B, Ct, step = ssm_parts(params)
    K = fused_jit(Lambda, P, B, Ct, step, L, 8)
    ref = jax.jit(jax.vmap(kernel_dplr_conj, in_axes=(0, 0, 0, 0, 0, None)), static_argnums=5)(Lambda, P, B, Ct, step, L)
    assert K.shape == (3, L)
    assert relerr(K, ref) < TOL


def test_fused_layer_kernel_matches_naive_kernel(relerr):
    """Independent reference: powers of the dense bilinear Ā on the full conjugate-closed system."""
    params = _layer(H=2, N=8)
    L = 32
    Lambda, P, B, Ct, step = ssm_parts(params)
    K = np.asarray(fused_jit(Lambda, P, B, Ct, step, L, 8))
    for h in range(2):
        lam, p, b, ct = (np.asarray(_full(x[h])) for x in (Lambda, P, B, Ct))
        A = np.diag(lam) - np.outer(p, p.conj())
        Ab, Bb = bilinear(A, b, float(step[h]))
        Ab, Bb = np.asarray(Ab), np.asarray(Bb)
        C = np.linalg.solve((np.eye(len(lam)) - np.linalg.matrix_power(Ab, L)).T, ct)  # C̃ = C (I − Ā^L)
        ref = np.real(np.asarray(kernel_naive(Ab, Bb, C, L)))
        assert relerr(K[h], ref) < 1e-10


def test_layer_gradients_pallas_equal_xla(relerr):
    params = _layer(H=2, N=8, seed=3)
    L = 24
    weights = jax.random.normal(jax.random.PRNGKey(5), (2, L))

    def loss(p, kernel):
        return jnp.sum(jnp.sin(weights * kernel(p, L)))

    grad = jax.jit(jax.grad(loss), static_argnums=1)
    gp = grad(params, s4_kernel_fused)
    gx = grad(params, s4_kernel)
    for key in ("log_neg_re", "im", "P", "B", "Ct", "log_step"):
        assert relerr(gp[key], gx[key]) < 1e-11, key


def test_s4_apply_same_output_with_either_kernel(relerr):
    params = _layer(H=3, N=8)
    u = jax.random.normal(jax.random.PRNGKey(1), (2, 20, 3), jnp.float64)
    apply = jax.jit(s4_apply, static_argnums=2)
    assert relerr(apply(params, u, s4_kernel_fused), apply(params, u, s4_kernel)) < TOL


def test_auto_kernel_is_xla_on_cpu():
    assert jax.default_backend() != "gpu"
    assert engine.resolve_kernel("auto") == "xla"
    assert engine.resolve_kernel("pallas") == "pallas"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"v": np.ones((2, 4, 3)), "w": -np.ones((2, 4))}, "v: expected shape"),
        ({"v": np.ones((2, 4, 3)), "w": -np.ones(3)}, "w: expected shape"),
        ({"v": np.ones((2, 4, 3)), "w": -np.ones((2, 3)), "block_m": 12}, "block_m"),
        ({"v": np.ones((2, 4, 3)), "w": -np.ones((2, 3)), "L": 1}, "L:"),
    ],
)
def test_bad_input(kwargs, match):
    kwargs = {"L": 8, **kwargs}
    with pytest.raises(ValueError, match=match):
        cauchy_unit_circle(kwargs["v"], kwargs["w"], kwargs["L"], kwargs.get("block_m", 4))


def test_bad_kernel_name():
    with pytest.raises(ValueError, match="^kernel:"):
        engine.resolve_kernel("triton")
