"""How exact are the fast paths on this device? Float32 results against a float64 reference on the host.

    python benchmarks/gpu_numerics.py --out artifacts/bench/numerics_gpu.json

Checks, each at JAX's default matmul precision (TF32 on an NVIDIA GPU) and at "highest":

* the S4 layer's kernel (``s4_kernel``: conjugate symmetry, L/2+1 frequencies; the XLA Cauchy
  matrices and the fused Pallas kernel) against the naive kernel C Ā^k B̄ computed in complex128 NumPy from the same parameters;
* the gradients of the fused Pallas kernel (hand-written backward pass) against XLA's automatic ones;
* the convolutions ``toeplitz_conv`` and ``toeplitz_conv_bf16`` against ``fft_conv``.
Errors are relative to the largest reference value.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from s4lite.engine import check_options, run_info  # noqa: E402
from s4lite.layer import _full, c_from_ctilde, fft_conv, init_s4, s4_kernel, s4_kernel_fused, ssm_parts  # noqa: E402
from s4lite.layer import toeplitz_conv, toeplitz_conv_bf16  # noqa: E402

KERNELS = {"xla": s4_kernel, "pallas": s4_kernel_fused}


def naive_reference(params: dict, L: int) -> np.ndarray:
    """Kernels ``(H, L)`` of the layer's SSMs by powers of the dense bilinear Ā, in complex128."""
    Lambda, P, B, Ct, step = (np.asarray(x, np.complex128) for x in ssm_parts(params))
    Lf, Pf, Bf, Ctf = (np.asarray(_full(jnp.asarray(x)), np.complex128) for x in (Lambda, P, B, Ct))
    C = c_from_ctilde(Lf, Pf, Ctf, step.real, L)
    H, N = Lf.shape
    out = np.empty((H, L))
    for h in range(H):
        A = np.diag(Lf[h]) - np.outer(Pf[h], Pf[h].conj())
        dt = step[h].real
        back = np.eye(N) - dt / 2 * A
        Ab = np.linalg.solve(back, np.eye(N) + dt / 2 * A)
        x = np.linalg.solve(back, dt * Bf[h])
        for k in range(L):
            out[h, k] = (C[h] @ x).real
            x = Ab @ x
    return out


def rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--H", type=int, default=4)
    ap.add_argument("--N", type=int, default=64)
    ap.add_argument("--L", type=int, nargs="+", default=[784, 4096])
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    check_options(a, {"H": "int>=1", "N": "even>=2", "L": "int>=1"})
    params = init_s4(jax.random.PRNGKey(0), a.H, a.N)
    res = {"meta": {**run_info(), "command": " ".join(["python"] + sys.argv)}, "kernel": [], "conv": []}
    for L in a.L:
        ref = naive_reference(params, L)
        for impl in ("xla", "pallas"):
            for precision in ("default", "highest"):
                with jax.default_matmul_precision(None if precision == "default" else "highest"):
                    K = np.asarray(jax.jit(KERNELS[impl], static_argnums=1)(params, L))
                res["kernel"].append({"L": L, "H": a.H, "N": a.N, "kernel": impl, "precision": precision,
                                      "rel_err_vs_float64_naive": rel(K, ref)})
                print(res["kernel"][-1], flush=True)
    # Gradients: the hand-written backward pass of the fused kernel against XLA's automatic one,
    # both in float32 at "highest" precision, for a loss that touches every kernel entry.
    res["grad"] = []
    for L in a.L:
        w = jax.random.normal(jax.random.PRNGKey(2), (a.H, L))
        grads = {}
        for impl in ("xla", "pallas"):
            with jax.default_matmul_precision("highest"):
                f = jax.jit(jax.grad(lambda p, k=KERNELS[impl]: jnp.sum(w * k(p, L))))
                grads[impl] = jax.tree.map(np.asarray, f(params))
        errs = {k: rel(grads["pallas"][k], grads["xla"][k]) for k in grads["xla"] if np.max(np.abs(grads["xla"][k])) > 0}
        res["grad"].append({"L": L, "H": a.H, "N": a.N, "rel_err_pallas_vs_xla": errs})
        print(res["grad"][-1], flush=True)
    u = jax.random.normal(jax.random.PRNGKey(1), (16, 784, a.H))
    K = jnp.asarray(naive_reference(params, 784), jnp.float32)
    with jax.default_matmul_precision("highest"):
        y_ref = np.asarray(jax.jit(fft_conv)(u, K))
    for precision in ("default", "highest"):
        with jax.default_matmul_precision(None if precision == "default" else "highest"):
            for name, fn in (("toeplitz", toeplitz_conv), ("toeplitz_bf16", toeplitz_conv_bf16), ("fft", fft_conv)):
                res["conv"].append({"conv": name, "precision": precision, "rel_err_vs_fft_highest": rel(jax.jit(fn)(u, K), y_ref)})
                print(res["conv"][-1], flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
