r"""The paper's ablation (Section 4.4): does S4's gain come from HiPPO or from the NPLR parameterization?

Four initializations of the state matrix A, each frozen or trained, in the same small deep model:

==================  =========================================================================
``kind``            SSM of every channel
==================  =========================================================================
``hippo``           S4: HiPPO-LegS in DPLR form (:func:`s4lite.layer.init_s4`), Cauchy kernel
``random_nplr``     the same parameterization (Λ, P, B per channel) with random values
``random_diag``     random Λ with P = 0 (a diagonal SSM, as S4D/DSS, but random)
``random_dense``    a dense Gaussian A (shared by the channels of a layer, to stay under the
                    parameter cap) with the naive kernel K = (C Ā^k B̄)
==================  =========================================================================

"Frozen" means the parameters that define A (Λ, P, or the dense A) get no updates; B, C, Δ, D and
the rest of the network always train. Random values are drawn to match HiPPO's scale: eigenvalues
with real part −1/2 and imaginary parts uniform over HiPPO's range, P and B Gaussian with the norms
of HiPPO's; the dense A is G − I with G Gaussian of variance 1/N (eigenvalues in the disc around −1
of radius ≈ 1).

Run it: ``python -m s4lite.ablation --help``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import _check
from .discretize import bilinear
from .layer import CONVOLUTIONS, hippo_half, init_s4, s4_kernel
from .model import _dense, count_params, glu_mix, layer_norm

Array = jax.Array
KINDS = ("hippo", "random_nplr", "random_diag", "random_dense")
A_KEYS = ("log_neg_re", "im", "P", "A")  # the parameters that define A (frozen in the "frozen" runs)


# ----------------------------------------------------------------------------------------------
# Initializations
# ----------------------------------------------------------------------------------------------


def init_ssm(key: Array, kind: str, H: int, N: int) -> dict[str, Array]:
    """Parameters of one SSM layer of the given ``kind`` (see the module docstring)."""
    kind = _check.choice("kind", kind, KINDS)
    k_s4, k_im, k_p, k_b, k_a = jax.random.split(key, 5)
    params = init_s4(k_s4, H, N)
    if kind == "hippo":
        return params
    Lambda, P, B = hippo_half(N)
    half = N // 2
    if kind == "random_dense":
        G = jax.random.normal(k_a, (N, N)) / np.sqrt(N)
        return {
            "A": G - jnp.eye(N),
            "B": jax.random.normal(k_b, (H, N)),
            "C": jax.random.normal(k_p, (H, N)) * np.sqrt(0.5),
            "log_step": params["log_step"],
            "D": params["D"],
        }
    im = jax.random.uniform(k_im, (H, half), minval=0.0, maxval=float(np.max(Lambda.imag)))
    gauss = lambda k, scale: jax.random.normal(k, (H, half, 2)) * scale / np.sqrt(2 * half)  # noqa: E731
    params = dict(params)
    params["log_neg_re"] = jnp.full((H, half), np.log(0.5))
    params["im"] = im
    params["B"] = gauss(k_b, np.linalg.norm(B))
    params["P"] = gauss(k_p, np.linalg.norm(P)) if kind == "random_nplr" else jnp.zeros((H, half, 2))
    return params


def kernel_dense(A: Array, B: Array, C: Array, step: Array, L: int) -> Array:
    r"""Kernels of H SSMs sharing a dense A: :math:`K_h = (C_h \bar A_h^k \bar B_h)_{k<L}`, ``(H, L)``.

    Bilinear discretization per channel (its own Δ), then the powers by doubling:
    :math:`X_{2m} = [X_m,\ \bar A^m X_m]`, :math:`\bar A^{2m} = (\bar A^m)^2` — the naive O(N² L) work
    in log₂L matrix products instead of L sequential steps.
    """
    Ab, Bb = jax.vmap(bilinear, in_axes=(None, 0, 0))(A, B, step)  # (H, N, N), (H, N)
    X = Bb[:, :, None]  # (H, N, 1): columns Ā^k B̄
    power = Ab
    while X.shape[-1] < L:
        X = jnp.concatenate([X, power @ X], axis=-1)
        power = power @ power
    return jnp.einsum("hn,hnl->hl", C, X[:, :, :L])


def ssm_kernel(params: dict[str, Array], L: int) -> Array:
    """The ``(H, L)`` kernels of one layer, whatever its kind (dense A if it has an ``"A"`` entry)."""
    if "A" in params:
        return kernel_dense(params["A"], params["B"], params["C"], jnp.exp(params["log_step"]), L)
    return s4_kernel(params, L)


# ----------------------------------------------------------------------------------------------
# The small model (≤ 100K parameters) and its training
# ----------------------------------------------------------------------------------------------


def init_ablation_model(key: Array, kind: str, d_model: int = 64, n_layers: int = 3, N: int = 64) -> dict[str, Any]:
    """Encoder (1 → d_model), ``n_layers`` pre-norm blocks with the chosen SSM, classifier (→ 10)."""
    keys = jax.random.split(key, 2 + 2 * n_layers)
    layers = [
        {
            "norm": {"scale": jnp.ones((d_model,)), "bias": jnp.zeros((d_model,))},
            "ssm": init_ssm(keys[2 + 2 * i], kind, d_model, N),
            "mix": _dense(keys[3 + 2 * i], d_model, 2 * d_model),
        }
        for i in range(n_layers)
    ]
    return {"encoder": _dense(keys[0], 1, d_model), "layers": layers, "head": _dense(keys[1], d_model, 10)}


def _drop(key: Array, x: Array, rate: Array) -> Array:
    """Dropout whose rate is an array (so runs with and without dropout share one compiled step)."""
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0)


def ablation_logits(params: dict[str, Any], x: Array, key: Array, rate: Array, conv: str = "fft") -> Array:
    """``x (B, L, 1)`` → logits ``(B, 10)``; the blocks are those of :mod:`s4lite.model`."""
    h = x @ params["encoder"]["W"] + params["encoder"]["b"]
    for i, p in enumerate(params["layers"]):
        k1, k2 = jax.random.split(jax.random.fold_in(key, i))
        z = layer_norm(p["norm"], h)
        K = ssm_kernel(p["ssm"], h.shape[1])
        z = CONVOLUTIONS[conv](z, K.astype(z.dtype)) + p["ssm"]["D"] * z
        z = _drop(k1, jax.nn.gelu(z), rate)
        z = _drop(k2, glu_mix(p["mix"], z), rate)
        h = h + z
    return jnp.mean(h, axis=1) @ params["head"]["W"] + params["head"]["b"]


def a_mask(params: dict[str, Any]) -> Any:
    """1.0 for every parameter that defines A (inside an SSM), 0.0 elsewhere (same tree as ``params``)."""

    def mark(path, _):
        keys = [getattr(k, "key", None) for k in path]
        return 1.0 if ("ssm" in keys and keys[-1] in A_KEYS) else 0.0

    return jax.tree_util.tree_map_with_path(mark, params)


def make_optimizer(params: dict[str, Any], lr: float, ssm_lr: float, weight_decay: float, total_steps: int):
    """AdamW + warm-up/cosine; SSM parameters (A's, B, Δ) at ``ssm_lr`` with no weight decay."""
    ssm_keys = A_KEYS + ("B", "log_step")

    def label(path, _):
        keys = [getattr(k, "key", None) for k in path]
        return "ssm" if ("ssm" in keys and keys[-1] in ssm_keys) else "other"

    warm = max(1, total_steps // 20)
    sched = lambda peak: optax.warmup_cosine_decay_schedule(0.0, peak, warm, max(total_steps, warm + 1), 0.0)  # noqa: E731
    return optax.multi_transform(
        {"ssm": optax.adamw(sched(ssm_lr), weight_decay=0.0), "other": optax.adamw(sched(lr), weight_decay=weight_decay)},
        jax.tree_util.tree_map_with_path(label, params),
    )


def run_cell(
    data: dict[str, Array],
    kind: str,
    train_a: bool,
    dropout: float,
    seed: int,
    epochs: int,
    batch: int,
    d_model: int,
    n_layers: int,
    N: int,
    lr: float,
    ssm_lr: float,
    conv: str,
    cache: dict,
) -> dict[str, Any]:
    """Train one cell of the ablation table; returns its per-epoch history."""
    params = init_ablation_model(jax.random.PRNGKey(seed), kind, d_model, n_layers, N)
    n_train = data["x_train"].shape[0]
    steps = n_train // batch
    opt = make_optimizer(params, lr, ssm_lr, 0.0, steps * epochs)
    opt_state = opt.init(params)
    mask = jax.tree.map(lambda m: jnp.asarray(1.0 if train_a else 1.0 - m), a_mask(params))
    sig = (kind, epochs, batch, d_model, n_layers, N, conv, lr, ssm_lr, id(data))
    if sig not in cache:

        @partial(jax.jit, donate_argnums=(0, 1))
        def train_step(params, opt_state, idx, key, rate, mask):
            xb, yb = data["x_train"][idx], data["y_train"][idx]

            def loss_fn(p):
                logits = ablation_logits(p, xb, key, rate, conv)
                return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean(), logits

            (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
            grads = jax.tree.map(lambda g, m: g * m, grads, mask)
            updates, opt_state = opt.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, loss, jnp.sum(jnp.argmax(logits, -1) == yb)

        @jax.jit
        def test_correct(params, xb, yb):
            logits = ablation_logits(params, xb, jax.random.PRNGKey(0), jnp.zeros(()), conv)
            return jnp.sum(jnp.argmax(logits, -1) == yb)

        cache[sig] = (train_step, test_correct)
    train_step, test_correct = cache[sig]
    rate = jnp.asarray(dropout, jnp.float32)
    history = []
    key = jax.random.PRNGKey(seed + 1000)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        k_epoch = jax.random.fold_in(key, epoch)
        order = jax.random.permutation(k_epoch, n_train)
        correct = jnp.zeros((), jnp.int32)
        for s in range(steps):
            idx = jax.lax.dynamic_slice(order, (s * batch,), (batch,))
            params, opt_state, loss, c = train_step(params, opt_state, idx, jax.random.fold_in(k_epoch, s + 1), rate, mask)
            correct = correct + c
        n_test = data["x_test"].shape[0]
        eb = min(1000, n_test)
        test_c = sum(int(test_correct(params, data["x_test"][i : i + eb], data["y_test"][i : i + eb])) for i in range(0, n_test - eb + 1, eb))
        history.append(
            {
                "epoch": epoch + 1,
                "train_loss": float(loss),
                "train_acc": int(correct) / (steps * batch),
                "test_acc": test_c / (n_test // eb * eb),
                "time": time.perf_counter() - t0,
            }
        )
        if not np.isfinite(history[-1]["train_loss"]):
            break
    return {
        "kind": kind,
        "train_A": train_a,
        "dropout": dropout,
        "seed": seed,
        "n_params": count_params(params),
        "history": history,
        "final_test_acc": history[-1]["test_acc"],
        "final_train_acc": history[-1]["train_acc"],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from .data import load_task
    from .train import run_info

    ap = argparse.ArgumentParser(prog="python -m s4lite.ablation", description="HiPPO vs random initializations of A, frozen vs trained, on sMNIST.")
    ap.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--dropouts", nargs="+", type=float, default=[0.0, 0.1])
    ap.add_argument("--train-a", nargs="+", default=["frozen", "trained"], choices=["frozen", "trained"])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--n-layers", type=int, default=3)
    ap.add_argument("--N", type=int, default=64)
    ap.add_argument("--lr", type=float, default=4e-3)
    ap.add_argument("--ssm-lr", type=float, default=1e-3)
    ap.add_argument("--conv", choices=["fft", "toeplitz", "toeplitz_bf16"], default="fft")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--sample", action="store_true")
    ap.add_argument("--limit-train", type=int, default=None)
    ap.add_argument("--limit-test", type=int, default=None)
    ap.add_argument("--max-params", type=int, default=100_000)
    ap.add_argument("--out", default="runs/ablations")
    args = ap.parse_args(argv)

    task = load_task("smnist", data_dir=args.data_dir, sample=args.sample, limit_train=args.limit_train, limit_test=args.limit_test)
    data = {k: jnp.asarray(task[k]) for k in ("x_train", "y_train", "x_test", "y_test")}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    info = run_info()
    print(f"device: {info['device']} ({info['device_kind']}); data: {task['source']}", flush=True)
    for kind in args.kinds:
        n = count_params(init_ablation_model(jax.random.PRNGKey(0), kind, args.d_model, args.n_layers, args.N))
        if n > args.max_params:
            raise SystemExit(f"--d-model/--n-layers/--N: the {kind} model has {n} parameters, above --max-params {args.max_params}")
    config = {**vars(args), "command": "python -m s4lite.ablation " + " ".join(sys.argv[1:] if argv is None else argv), "data_source": task["source"], **info}
    (out / "config.json").write_text(json.dumps(config, indent=1))
    results, cache = [], {}
    for seed in args.seeds:  # seed outermost: a run cut short still has every cell of the first seeds
        for kind in args.kinds:
            for dropout in args.dropouts:
                for train_a in args.train_a:
                    r = run_cell(data, kind, train_a == "trained", dropout, seed, args.epochs, args.batch_size, args.d_model, args.n_layers, args.N, args.lr, args.ssm_lr, args.conv, cache)
                    results.append(r)
                    print(f"{kind:13s} A {train_a:7s} dropout {dropout:.2f} seed {seed}: test {r['final_test_acc']:.4f} train {r['final_train_acc']:.4f} ({r['n_params']} params, {r['history'][-1]['time']:.0f} s)", flush=True)
                    (out / "results.json").write_text(json.dumps(results, indent=1))
    return {"config": config, "results": results}


if __name__ == "__main__":
    main()
