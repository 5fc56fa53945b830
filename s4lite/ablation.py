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

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import _check, engine
from .discretize import bilinear
from .engine import TrainConfig, option
from .layer import hippo_half, init_s4, s4_kernel
from .model import Backend, count_params, init_model

Array = jax.Array
KINDS = ("hippo", "random_nplr", "random_diag", "random_dense")
A_KEYS = ("log_neg_re", "im", "P", "A")  # the parameters that define A (frozen in the "frozen" runs)
PROG = "python -m s4lite.ablation"


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
# The small model (≤ 100K parameters): the deep model of s4lite.model with another SSM inside
# ----------------------------------------------------------------------------------------------


def init_ablation_model(
    key: Array, kind: str, d_model: int = 64, n_layers: int = 3, N: int = 64
) -> dict[str, Any]:
    """:func:`s4lite.model.init_model` (1 input, 10 classes) whose blocks hold an SSM of ``kind``."""
    kind = _check.choice("kind", kind, KINDS)
    init_layer = lambda k, H, N_: init_ssm(k, kind, H, N_)  # noqa: E731
    return init_model(key, 1, 10, d_model, n_layers, N, init_layer=init_layer)


def ablation_backend(conv: Any) -> Backend:
    """The model's backend with :func:`ssm_kernel` (dense or DPLR, by the layer's parameters)."""
    return Backend(kernel=ssm_kernel, conv=conv)


def labels(train_a: bool):
    """Parameter groups: as :func:`s4lite.engine.param_labels`, and ``"frozen"`` for A's parameters
    when ``train_a`` is False."""

    def label(params: Any) -> Any:
        def mark(path, group):
            keys = [getattr(k, "key", getattr(k, "idx", None)) for k in path]
            return "frozen" if (not train_a and "s4" in keys and keys[-1] in A_KEYS) else group

        return jax.tree_util.tree_map_with_path(mark, engine.param_labels(params))

    return label


# ----------------------------------------------------------------------------------------------
# The grid
# ----------------------------------------------------------------------------------------------


@dataclass
class AblationConfig(TrainConfig):
    """The run configuration of the ablation grid (other defaults, four more options)."""

    d_model: int = option(64, "feature channels H", check="int>=1")
    n_layers: int = option(3, "residual blocks", check="int>=1")
    epochs: int = option(20, "passes over the training data", check="int>=1")
    lr: float = option(4e-3, "peak learning rate of the non-SSM parameters", check=">=0")
    weight_decay: float = option(0.0, "AdamW weight decay of the non-SSM parameters", check=">=0")
    dropout: float = option(0.0, "(set per cell by --dropouts)", check="[0,1)")
    out: str = option("runs/ablations", "output directory (one subdirectory per cell)")
    kinds: tuple[str, ...] = option(KINDS, f"initializations of A, of {list(KINDS)}")
    seeds: tuple[int, ...] = option((0,), "seeds (each cell is run once per seed)")
    dropouts: tuple[float, ...] = option((0.0, 0.1), "dropout rates")
    train_a: tuple[str, ...] = option(("frozen", "trained"), "frozen and/or trained A")
    max_params: int = option(100_000, "refuse models with more parameters", check="int>=1")


SKIP = ("ssm", "init", "discretization", "kernel", "task", "augment", "ema", "dropout")


def validate_grid(cfg: AblationConfig) -> AblationConfig:
    """The grid options: known kinds, seeds >= 0, dropout rates in [0, 1), frozen/trained."""
    engine.validate(cfg)
    for name, values, ok, expected in (
        ("kinds", cfg.kinds, lambda v: v in KINDS, f"one of {list(KINDS)}"),
        ("seeds", cfg.seeds, engine.CHECKS["int>=0"][0], "integers >= 0"),
        ("dropouts", cfg.dropouts, engine.CHECKS["[0,1)"][0], "rates in [0, 1)"),
        ("train_a", cfg.train_a, lambda v: v in ("frozen", "trained"), "'frozen' or 'trained'"),
    ):
        if not values or not all(ok(v) for v in values):
            raise ValueError(f"{engine.flag(name)}: expected {expected}, got {list(values)}")
    return cfg


def cell_name(kind: str, train_a: str, dropout: float, seed: int) -> str:
    return f"{kind}-{train_a}-dropout{dropout:g}-seed{seed}"


def run_cell(cfg: AblationConfig, data: dict, kind: str, train_a: str, dropout: float, seed: int) -> dict:
    """Train one cell of the table with :func:`s4lite.engine.fit`; returns its record."""
    import optax

    from .model import classify

    fields = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(TrainConfig)}
    out = Path(cfg.out) / cell_name(kind, train_a, dropout, seed)
    resume = cfg.resume and (out / engine.CHECKPOINT).exists()
    cell = TrainConfig(**{**fields, "dropout": dropout, "seed": seed, "out": str(out), "resume": resume})
    backend = ablation_backend(engine.resolve(cell).conv)

    def init(key):
        return init_ablation_model(key, kind, cfg.d_model, cfg.n_layers, cfg.N)

    def loss(params, batch, key):
        logits = classify(params, batch["x"], key, dropout, backend)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()
        return ce, {"acc": jnp.sum(jnp.argmax(logits, -1) == batch["y"])}

    def evaluate(params, batch):
        logits = classify(params, batch["x"], backend=backend)
        return {"acc": (jnp.argmax(logits, -1) == batch["y"]).astype(jnp.float32)}

    task = engine.Task(kind, init, loss, evaluate, data["train"], data["test"],
                       labels=labels(train_a == "trained"), source=data["source"])  # fmt: skip
    print(f"{kind} A {train_a} dropout {dropout:g} seed {seed}:", flush=True)
    result = engine.fit(cell, task, prog=PROG)
    history = result.history
    return {
        "kind": kind, "train_A": train_a == "trained", "dropout": dropout, "seed": seed,
        "n_params": count_params(result.params), "history": history,
        "final_test_acc": history[-1]["test_acc"], "final_train_acc": history[-1]["train_acc"],
    }  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the grid (seeds outermost: a run cut short has every cell of the first seeds)."""
    from .data import load_task

    cfg = engine.parse(AblationConfig, PROG, "HiPPO vs random A, frozen vs trained, on sMNIST.", argv, SKIP)
    try:
        validate_grid(cfg)
    except ValueError as err:
        engine.fail(str(err))
    for kind in cfg.kinds:
        shapes = jax.eval_shape(lambda k: init_ablation_model(k, kind, cfg.d_model, cfg.n_layers, cfg.N),
                                jax.random.PRNGKey(0))  # fmt: skip
        if count_params(shapes) > cfg.max_params:
            engine.fail(f"--d-model/--n-layers/--N: the {kind} model has {count_params(shapes)} parameters, "
                        f"above --max-params {cfg.max_params}")  # fmt: skip
    out = Path(cfg.out)
    results_path = out / "results.json"
    if out.exists() and not out.is_dir():
        engine.fail(f"--out: {out} is a file, not a directory")
    if results_path.exists() and not (cfg.resume or cfg.overwrite):
        engine.fail(f"--out: {out} already holds an ablation; continue it with --resume, replace it with "
                    "--overwrite, or choose another --out")  # fmt: skip
    if cfg.resume and not results_path.exists():
        engine.fail(f"--resume: {out} holds no results.json; nothing to resume")
    task = engine.load_data(lambda: load_task("smnist", cfg.data_dir, cfg.sample, cfg.limit_train,
                                              cfg.limit_test))  # fmt: skip
    data = {"train": {"x": jnp.asarray(task["x_train"]), "y": jnp.asarray(task["y_train"])},
            "test": {"x": jnp.asarray(task["x_test"]), "y": jnp.asarray(task["y_test"])},
            "source": task["source"]}  # fmt: skip
    info = engine.run_info()
    print(f"device: {info['device']} ({info['device_kind']}); data: {task['source']}", flush=True)
    command = PROG + " " + " ".join(sys.argv[1:] if argv is None else argv)
    config = {**engine.record_config(cfg), "command": command, "data_source": task["source"], **info}
    try:
        out.mkdir(parents=True, exist_ok=True)
        engine.write_json(out / "config.json", config)
    except OSError as err:
        engine.fail(f"--out: cannot write to {out} ({err.strerror or err})")
    results = []
    for seed in cfg.seeds:
        for kind in cfg.kinds:
            for dropout in cfg.dropouts:
                for train_a in cfg.train_a:
                    r = run_cell(cfg, data, kind, train_a, dropout, seed)
                    results.append(r)
                    print(f"{kind:13s} A {train_a:7s} dropout {dropout:.2f} seed {seed}: test "
                          f"{r['final_test_acc']:.4f} train {r['final_train_acc']:.4f} ({r['n_params']} params)",
                          flush=True)  # fmt: skip
                    engine.write_json(results_path, results)
    return {"config": config, "results": results}


if __name__ == "__main__":
    main()
