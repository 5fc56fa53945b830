r"""One way to train: a typed run configuration, one training loop, safe checkpoints.

Every command-line tool (``s4lite.train``, ``s4lite.ablation``, ``s4lite.generation``) and every
experiment of Part IV trains through :func:`fit`. A tool keeps only what is its own: the model, the
loss and what it writes at the end.

**The configuration** is a dataclass, :class:`TrainConfig`: every field has a type, a default and a
help text. :func:`build_parser` generates a tool's ``argparse`` parser from it (``d_model`` becomes
``--d-model``), :func:`config_from_args` turns parsed options back into a config, and
:func:`validate` checks every numeric option before any work is done. A tool with other defaults or
extra options subclasses the dataclass.

**How a model and a task plug in.** :func:`fit` takes a :class:`Task`: the model's ``init`` and
``loss``, an ``evaluate`` that returns *per-example* values (``fit`` pads the last test batch and
masks the padding out), and the data as arrays with one leading example axis (or a function that
draws a training batch). A tiny example, a linear model on random data::

    import jax, jax.numpy as jnp, optax
    from s4lite.engine import Task, TrainConfig, fit

    x = jax.random.normal(jax.random.PRNGKey(0), (256, 8))
    data = {"x": x, "y": (x.sum(-1) > 0).astype(jnp.int32)}

    def init(key):
        return {"W": jax.random.normal(key, (8, 2)) * 0.1}

    def loss(params, batch, key):          # mean loss, and batch *sums* of any metric
        logits = batch["x"] @ params["W"]
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()
        return ce, {"acc": jnp.sum(jnp.argmax(logits, -1) == batch["y"])}

    def evaluate(params, batch):           # one value per example
        logits = batch["x"] @ params["W"]
        return {"acc": (jnp.argmax(logits, -1) == batch["y"]).astype(jnp.float32)}

    cfg = TrainConfig(epochs=3, batch_size=32, out="runs/linear", progress=False)
    result = fit(cfg, Task("linear", init, loss, evaluate, train=data, test=data))
    result.history[-1]["test_acc"]

A synthetic task (selective copying, say) may pass ``train=draw`` with ``draw(key) -> batch`` and
``steps_per_epoch=...`` instead of arrays; a non-S4 model (a Mamba block) only needs its own
``init``/``loss``/``evaluate``: nothing in ``fit`` knows about S4. The model functions of
:mod:`s4lite.model` take the :class:`~s4lite.model.Backend` from :func:`resolve` (``cfg.ssm``
selects S4 or S4D; :func:`init_layer_fn` gives the matching layer initialization). A tool with
its own options subclasses :class:`TrainConfig` (see ``s4lite.generation.GenerationConfig``) and
gets its parser from :func:`build_parser` / :func:`parse`.

A metrics row holds ``epoch``, ``train_loss``, ``train_<m>`` for every metric ``m`` of ``loss``
(divided by the number of training samples of the epoch), ``test_<v>`` for every value of
``evaluate`` (mean over the test set), ``epoch_time``, ``samples_per_s``, ``train_time`` and
``wall_time``. Parameters are grouped for the optimizer by :func:`param_labels` (the SSM parameters
of every layer, found under a ``"s4"`` key, get ``ssm_lr`` and no weight decay); a task may pass
its own ``labels`` (``"frozen"`` marks parameters that never change).

**What a run directory holds** (``cfg.out``): ``config.json`` (the config, one record per
*segment* — every start or resume, with its command, date and commit — and the device),
``metrics.jsonl`` (one row per epoch) and ``checkpoint.safetensors``: parameters, optimizer state
and weight average, keyed by their path in the pytree (``params/layers/0/s4/B``), with the config and
the format version inside. It is written to a temporary file and renamed: one atomic unit, never a
mismatched pair. No pickle anywhere.

**Resume** (``resume=True``) refuses, before any work, a missing directory or checkpoint, a checkpoint
of another format or another run (any changed field except those in :data:`MAY_CHANGE_ON_RESUME`),
and a checkpoint whose arrays do not fit the model. Starting into a directory that already holds a run
is refused unless ``overwrite=True``.

**Implementation choices** — which SSM (``ssm``), which convolution (``conv``), which kernel backend
(``kernel``) — are resolved once by :func:`resolve` into a :class:`s4lite.model.Backend` of plain
functions, which the model receives.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

Array = jax.Array
Batch = dict[str, Any]

FORMAT = "s4lite-checkpoint/1"
CHECKPOINT = "checkpoint.safetensors"
RUN_FILES = ("config.json", "metrics.jsonl", CHECKPOINT)

#: Fields that may differ between a run and its resumption: they change where and how the run is
#: watched, not what it computes. Every other field must be as recorded in the checkpoint.
MAY_CHANGE_ON_RESUME = ("out", "resume", "overwrite", "progress", "time_budget", "eval_batch", "data_dir")


# ----------------------------------------------------------------------------------------------
# The configuration
# ----------------------------------------------------------------------------------------------


def option(default: Any, help: str, *, choices: tuple | None = None, check: str | None = None) -> Any:
    """A documented dataclass field. ``check`` names a rule of :data:`CHECKS` (e.g. ``"int>=1"``)."""
    meta = {"help": help, "choices": choices, "check": check}
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Everything a training run depends on. Each field is one command-line option."""

    # the model
    ssm: str = option("s4", "sequence layer: s4 (DPLR, Cauchy kernel) or s4d (diagonal)", choices=("s4", "s4d"))
    init: str = option(
        "legs", "initialization of the state matrix: s4: legs, lagt; s4d: lin, inv, legs",
        choices=("legs", "lagt", "lin", "inv"),
    )
    discretization: str = option(
        "bilinear", "bilinear or zoh (S4's DPLR kernel is bilinear only)", choices=("bilinear", "zoh")
    )
    d_model: int = option(128, "feature channels H", check="int>=1")
    n_layers: int = option(4, "residual blocks", check="int>=1")
    N: int = option(64, "state size per SSM (even: states come in conjugate pairs)", check="even>=2")
    dt_min: float = option(1e-3, "smallest initial step size Δ", check=">0")
    dt_max: float = option(1e-1, "largest initial step size Δ", check=">0")
    dropout: float = option(0.25, "dropout rate after the SSM and after the GLU", check="[0,1)")
    # the optimization
    epochs: int = option(10, "passes over the training data", check="int>=1")
    batch_size: int = option(128, "training examples per step", check="int>=1")
    lr: float = option(5e-3, "peak learning rate of the non-SSM parameters", check=">=0")
    ssm_lr: float = option(1e-3, "peak learning rate of the SSM parameters (no weight decay)", check=">=0")
    weight_decay: float = option(0.01, "AdamW weight decay of the non-SSM parameters", check=">=0")
    ssm_weight_decay: float = option(
        0.0, "AdamW weight decay of the SSM parameters (S4's recipe: none)", check=">=0"
    )
    warmup_frac: float = option(0.05, "share of the steps in linear warm-up (then cosine decay)", check="[0,1]")
    ema: float = option(0.0, "evaluate a moving average of the weights with this decay (0: off)", check="[0,1)")
    seed: int = option(0, "random seed of the initialization and of the data order", check="int>=0")
    prng: str = option("threefry2x32", "random-bit generator for dropout/augmentation", choices=("threefry2x32", "rbg"))
    # how the S4 layers compute (same numbers up to roundoff, except toeplitz_bf16)
    conv: str = option(
        "auto",
        "causal convolution: fft, toeplitz, toeplitz_bf16, toeplitz_lean, toeplitz_blocked or"
        " toeplitz_tiled (bfloat16 products, ~1e-3 error; lean: bf16 Toeplitz matrix rebuilt in"
        " the backward pass; blocked: only its first block column, zero blocks skipped; tiled:"
        " Pallas kernels that form each tile of the matrix where they multiply it, blocks run"
        " channels first);"
        " auto: toeplitz_tiled on a GPU of compute capability >= 8.0, else fft",
        choices=("auto", "fft", "toeplitz", "toeplitz_bf16", "toeplitz_lean", "toeplitz_blocked",
                 "toeplitz_tiled"),
    )
    kernel: str = option(
        "auto", "S4 kernel: xla, pallas (fused Triton kernel), auto (pallas on a GPU of compute capability >= 8.0)",
        choices=("auto", "xla", "pallas"),
    )
    activations: str = option(
        "auto", "type of the activations inside a block (bfloat16 needs a Toeplitz convolution);"
        " auto: bfloat16 with toeplitz_lean, toeplitz_blocked or toeplitz_tiled, else float32",
        choices=("auto", "float32", "bfloat16"),
    )
    dropout_bits: str = option(
        "auto", "dropout masks from Bernoulli draws or from one random byte per element"
        " (rate rounded to a multiple of 1/256); auto: bytes on a GPU, else bernoulli",
        choices=("auto", "bernoulli", "bytes"),
    )
    # the data
    task: str = option("smnist", "sequential or permuted MNIST", choices=("smnist", "psmnist"))
    augment: str = option(
        "none", "shift: random ±2 px translations; affine: also ±10° rotations and 0.9-1.1 scaling",
        choices=("none", "shift", "affine"),
    )
    data_dir: str | None = option(None, "directory with the MNIST IDX files (else $S4LITE_DATA, the cache, download)")
    sample: bool = option(False, "use the small sample shipped with s4lite (tests, CPU demos)")
    limit_train: int | None = option(None, "use only the first n training examples", check="int>=1")
    limit_test: int | None = option(None, "use only the first n test examples", check="int>=1")
    eval_batch: int = option(1000, "test examples per evaluation batch", check="int>=1")
    # the run
    out: str = option("runs/smnist", "run directory")
    resume: bool = option(False, "continue the run in --out from its checkpoint")
    overwrite: bool = option(False, "start afresh even if --out already holds a run (its files are replaced)")
    progress: bool = option(True, "progress bars (tqdm)")
    time_budget: float | None = option(None, "stop after the epoch in which training time exceeds this (s)", check=">=0")


# Option rules, flag spelling, one-line exits and check_options live in s4lite.options (no JAX
# there, so a tool can check its options before importing JAX); re-exported here.
from s4lite.options import CHECKS, check_options, fail, flag  # noqa: E402,F401

S4_INITS = ("legs", "lagt")  # the rank-1 HiPPO measures
S4D_INITS = ("lin", "inv", "legs")


def validate(cfg: Any) -> Any:
    """Check every field of a config dataclass against its rule; raise ``ValueError`` naming the option.

    Run before any data is loaded or any array is made, so a bad value costs nothing.
    """
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        choices, check = f.metadata.get("choices"), f.metadata.get("check")
        if v is None and f.default is None:
            continue
        if choices is not None and v not in choices:
            raise ValueError(f"{flag(f.name)}: expected one of {list(choices)}, got {v!r}")
        if check is not None:
            ok, expected = CHECKS[check]
            if not ok(v):
                raise ValueError(f"{flag(f.name)}: expected {expected}, got {v!r}")
    if hasattr(cfg, "dt_min") and cfg.dt_min > cfg.dt_max:
        raise ValueError(f"--dt-min: expected at most --dt-max = {cfg.dt_max}, got {cfg.dt_min}")
    if getattr(cfg, "ssm", None) == "s4":
        if cfg.init not in S4_INITS:
            raise ValueError(f"--init: S4 expects one of {list(S4_INITS)}, got {cfg.init!r}")
        if cfg.discretization != "bilinear":
            raise ValueError("--discretization: S4's DPLR kernel is bilinear only; use zoh with --ssm s4d")
    if getattr(cfg, "ssm", None) == "s4d" and cfg.init not in S4D_INITS:
        raise ValueError(f"--init: S4D expects one of {list(S4D_INITS)}, got {cfg.init!r}")
    if getattr(cfg, "activations", None) == "bfloat16":  # the convolution must allow it (resolve says)
        try:
            resolve(cfg)
        except ValueError as err:
            raise ValueError(f"--{err}") from None
    return cfg


def build_parser(
    cls: type = TrainConfig, prog: str = "python -m s4lite.train", description: str = "", skip: tuple = ()
) -> argparse.ArgumentParser:
    """An ``argparse`` parser with one option per field of the dataclass ``cls`` (help and default shown).

    Booleans that default to False become ``--name`` switches; those that default to True become
    ``--no-name``. Fields in ``skip`` do not appear (the tool does not use them).
    """
    p = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        help_, choices = f.metadata.get("help", ""), f.metadata.get("choices")
        if f.type in (bool, "bool"):
            if f.default:
                p.add_argument("--no-" + f.name.replace("_", "-"), dest=f.name, action="store_false", help=f"no {help_}")
            else:
                p.add_argument(flag(f.name), dest=f.name, action="store_true", help=help_)
            continue
        kind = _arg_type(f.type)
        nargs = "+" if str(f.type).startswith("tuple") else None
        p.add_argument(
            flag(f.name), dest=f.name, type=kind, default=f.default if nargs is None else list(f.default),
            choices=choices if nargs is None else None, nargs=nargs, help=help_,
        )
    return p


def _arg_type(t: Any) -> Callable[[str], Any]:
    text = str(t)
    if "int" in text:
        return int
    if "float" in text:
        return float
    return str


def config_from_args(cls: type, args: argparse.Namespace) -> Any:
    """The config dataclass ``cls`` from parsed options (fields the parser skipped keep their default)."""
    values = {}
    for f in dataclasses.fields(cls):
        if hasattr(args, f.name):
            v = getattr(args, f.name)
            values[f.name] = tuple(v) if isinstance(v, list) else v
    return cls(**values)


def command_line(prog: str, cfg: Any, **changes: Any) -> str:
    """A command that reproduces ``cfg`` (options that differ from their default), with ``changes``."""
    cfg = dataclasses.replace(cfg, **changes)
    parts = [prog]
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if v == f.default:
            continue
        if isinstance(v, bool):
            parts.append(flag(f.name) if v else "--no-" + f.name.replace("_", "-"))
        elif isinstance(v, tuple):
            parts += [flag(f.name)] + [shlex.quote(str(x)) for x in v]
        else:
            parts += [flag(f.name), shlex.quote(str(v))]
    return " ".join(parts)


def parse(cls: type, prog: str, description: str, argv: list[str] | None, skip: tuple = ()) -> Any:
    """Parse ``argv`` into a validated ``cls``; a bad value exits with a one-line message."""
    args = build_parser(cls, prog, description, skip).parse_args(argv)
    try:
        return validate(config_from_args(cls, args))
    except ValueError as err:
        fail(str(err))


# ----------------------------------------------------------------------------------------------
# Implementation choices, resolved once
# ----------------------------------------------------------------------------------------------


def gpu_compute_capability() -> float | None:
    """Compute capability of the first GPU JAX sees (e.g. 7.5 for a T4, 9.0 for an H100), else None."""
    if jax.default_backend() != "gpu":
        return None
    try:
        return float(jax.devices()[0].compute_capability)
    except (AttributeError, TypeError, ValueError):
        return None


#: The fused Pallas kernel is compiled by Triton, which needs compute capability 8.0 (Ampere) or newer.
MIN_TRITON_CAPABILITY = 8.0


def resolve_kernel(kernel: str) -> str:
    """``"auto"`` → ``"pallas"`` on a GPU of compute capability ≥ 8.0, ``"xla"`` elsewhere (CPU, T4)."""
    if kernel not in ("auto", "xla", "pallas"):
        raise ValueError(f"kernel: expected one of ['auto', 'xla', 'pallas'], got {kernel!r}")
    if kernel != "auto":
        return kernel
    cc = gpu_compute_capability()
    return "pallas" if cc is not None and cc >= MIN_TRITON_CAPABILITY else "xla"


def resolve_activations(activations: str, conv: str) -> str:
    """``"auto"`` → ``"bfloat16"`` where the convolution resolves to a lean, blocked or tiled bf16
    Toeplitz product, else ``"float32"``."""
    if activations != "auto":
        return activations
    bf16_convs = ("toeplitz_lean", "toeplitz_blocked", "toeplitz_tiled")
    return "bfloat16" if resolve_conv(conv) in bf16_convs else "float32"


def resolve_dropout_bits(dropout_bits: str) -> str:
    """``"auto"`` → ``"bytes"`` on a GPU (a quarter of the random bits), ``"bernoulli"`` elsewhere."""
    if dropout_bits != "auto":
        return dropout_bits
    return "bytes" if gpu_compute_capability() is not None else "bernoulli"


def resolve_conv(conv: str) -> str:
    """``"auto"`` → ``"toeplitz_tiled"`` on a GPU of compute capability ≥ 8.0, ``"fft"`` elsewhere."""
    if conv != "auto":
        return conv
    cc = gpu_compute_capability()
    return "toeplitz_tiled" if cc is not None and cc >= MIN_TRITON_CAPABILITY else "fft"


@functools.lru_cache(maxsize=None)
def resolve_backend(
    ssm: str = "s4",
    conv: str = "fft",
    kernel: str = "auto",
    discretization: str = "bilinear",
    activations: str = "float32",
    dropout_bits: str = "auto",
):
    """The functions a model computes with (:class:`s4lite.model.Backend`), chosen once.

    The same arguments give the same object, so a jitted function that takes the backend as a static
    argument compiles once.
    """
    from . import layer
    from .fast_conv import toeplitz_conv_blocked, toeplitz_conv_lean
    from .model import Backend, dropout, dropout_bytes
    from .toeplitz_pallas import TILES, toeplitz_conv_tiled_cf

    convs = {"fft": layer.fft_conv, "toeplitz": layer.toeplitz_conv,
             "toeplitz_bf16": layer.toeplitz_conv_bf16, "toeplitz_lean": toeplitz_conv_lean,
             "toeplitz_blocked": functools.partial(toeplitz_conv_blocked, n_blocks=4),
             "toeplitz_tiled": functools.partial(toeplitz_conv_tiled_cf, **TILES)}  # fmt: skip
    asked, activations, conv = conv, resolve_activations(activations, conv), resolve_conv(conv)
    if conv not in convs:
        raise ValueError(f"conv: expected one of {['auto', *convs]}, got {conv!r}")
    dtypes = {"float32": None, "bfloat16": jnp.bfloat16}  # None: float32 stays float32
    if activations not in dtypes:
        raise ValueError(f"activations: expected one of {list(dtypes)}, got {activations!r}")
    if activations == "bfloat16" and conv == "fft":
        raise ValueError(
            f"activations: bfloat16 needs a Toeplitz convolution; conv {asked!r} is fft here (use toeplitz_lean)"
        )
    dropouts = {"bernoulli": dropout, "bytes": dropout_bytes}
    dropout_bits = resolve_dropout_bits(dropout_bits)
    if dropout_bits not in dropouts:
        raise ValueError(f"dropout_bits: expected one of {list(dropouts)}, got {dropout_bits!r}")
    how = {"conv": convs[conv], "dropout": dropouts[dropout_bits], "dtype": dtypes[activations],
           "channels_first": conv == "toeplitz_tiled"}  # its kernels read (H, B, L)
    if ssm == "s4":
        if discretization != "bilinear":
            raise ValueError("discretization: S4's DPLR kernel is bilinear only; use zoh with ssm='s4d'")
        fused = resolve_kernel(kernel) == "pallas"
        return Backend(kernel=layer.s4_kernel_fused if fused else layer.s4_kernel, **how)
    if ssm == "s4d":
        from . import s4d  # written for Part IV; imported only when asked for

        return Backend(kernel=functools.partial(s4d.kernel_s4d_layer, method=discretization), **how)
    raise ValueError(f"ssm: expected one of ['s4', 's4d'], got {ssm!r}")


def resolve(cfg: Any):
    """:func:`resolve_backend` for the fields of a :class:`TrainConfig`."""
    return resolve_backend(
        cfg.ssm, cfg.conv, cfg.kernel, cfg.discretization, cfg.activations, cfg.dropout_bits
    )


def init_layer_fn(cfg: Any) -> Callable[[Array, int, int], dict]:
    """``(key, H, N) -> params`` of the configured sequence layer (S4 or S4D) with ``cfg``'s init."""
    if cfg.ssm == "s4d":
        from . import s4d

        return functools.partial(
            lambda key, H, N, **kw: s4d.init_s4d_layer(key, H, N, **kw),
            init=cfg.init, dt_min=cfg.dt_min, dt_max=cfg.dt_max,
        )
    from .layer import init_s4

    return lambda key, H, N: init_s4(key, H, N, cfg.dt_min, cfg.dt_max, cfg.init)


# ----------------------------------------------------------------------------------------------
# The optimizer
# ----------------------------------------------------------------------------------------------

#: Inside a sequence layer (the ``"s4"`` entry of a block) everything but the output map (``C`` or
#: C̃) and the skip term ``D`` is an "SSM parameter": Λ (or the diagonal state), P, B and log Δ.
NOT_SSM = ("C", "Ct", "D")


def _keys(path: tuple) -> list:
    return [getattr(k, "key", getattr(k, "idx", getattr(k, "name", None))) for k in path]


def param_labels(params: Any) -> Any:
    """``"ssm"`` for the SSM parameters of every sequence layer (``ssm_lr``, no weight decay), else ``"other"``."""

    def label(path, _):
        keys = _keys(path)
        return "ssm" if ("s4" in keys[:-1] and keys[-1] not in NOT_SSM) else "other"

    return jax.tree_util.tree_map_with_path(label, params)


def make_optimizer(cfg: Any, total_steps: int, params: Any, labels: Any = None) -> optax.GradientTransformation:
    """AdamW with linear warm-up and cosine decay to 0, in parameter groups (``labels``, default
    :func:`param_labels`): ``"ssm"`` at ``ssm_lr`` without weight decay, ``"other"`` at ``lr`` with
    ``weight_decay``, ``"frozen"`` never updated."""
    warmup = max(1, int(cfg.warmup_frac * total_steps))

    def schedule(peak: float) -> optax.Schedule:
        return optax.warmup_cosine_decay_schedule(0.0, peak, warmup, max(total_steps, warmup + 1), 0.0)

    groups = {
        "ssm": optax.adamw(schedule(cfg.ssm_lr), weight_decay=getattr(cfg, "ssm_weight_decay", 0.0)),
        "other": optax.adamw(schedule(cfg.lr), weight_decay=cfg.weight_decay),
        "frozen": optax.set_to_zero(),
    }
    return optax.multi_transform(groups, param_labels(params) if labels is None else labels)


# ----------------------------------------------------------------------------------------------
# Checkpoints: one safetensors file, arrays keyed by their path, config and format inside
# ----------------------------------------------------------------------------------------------


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupted, of another format, or of another run."""


def path_name(path: tuple) -> str:
    """``("layers", 0, "s4", "B")`` → ``"layers/0/s4/B"`` (dict keys, list indices, attribute names)."""
    return "/".join(str(k) for k in _keys(path))


def flatten(tree: Any, prefix: str) -> dict[str, np.ndarray]:
    """Every leaf of ``tree`` under the name ``prefix/<its path>``."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {f"{prefix}/{path_name(p)}" if p else prefix: np.asarray(x) for p, x in leaves}


def unflatten(template: Any, prefix: str, tensors: dict[str, np.ndarray], where: Path) -> Any:
    """Fill ``template``'s structure from ``tensors``; refuse missing arrays and wrong shapes."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    new = []
    for p, old in leaves:
        name = f"{prefix}/{path_name(p)}" if p else prefix
        if name not in tensors:
            raise CheckpointError(f"{where}: has no array {name!r}: it was written for another model")
        arr = tensors[name]
        if arr.shape != np.shape(old):
            raise CheckpointError(f"{where}: {name} has shape {arr.shape}, the model expects {np.shape(old)}")
        new.append(jnp.asarray(arr, dtype=getattr(old, "dtype", None) or np.asarray(old).dtype))
    return jax.tree_util.tree_unflatten(treedef, new)


def save_checkpoint(path: Path, state: dict[str, Any], meta: dict[str, Any]) -> None:
    """Write ``state`` (``{"params": …, "opt": …, "ema": …}``) and ``meta`` to one file, atomically."""
    from safetensors.numpy import save_file

    tensors = {}
    for part, tree in state.items():
        tensors.update(flatten(tree, part))
    metadata = {"format": FORMAT, "meta": json.dumps(meta)}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def read_checkpoint(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and the metadata of a checkpoint; a missing, corrupted or foreign file is refused."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint there")
    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # noqa: BLE001 - safetensors raises several kinds for a damaged file
        raise CheckpointError(f"{path}: the checkpoint is corrupted or truncated ({err})") from err
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path}: format {metadata.get('format')!r}, this version reads {FORMAT!r}")
    try:
        meta = json.loads(metadata["meta"])
    except (KeyError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: the checkpoint's metadata is corrupted ({err})") from err
    return tensors, meta


def config_changes(recorded: dict[str, Any], cfg: Any) -> list[str]:
    """``"field: recorded → now"`` for every field that may not change on resume and did."""
    now = json.loads(json.dumps(dataclasses.asdict(cfg)))
    defaults = {f.name: f.default for f in dataclasses.fields(cfg)}  # fields newer than the run
    recorded = {**{k: v for k, v in defaults.items() if k not in recorded}, **recorded}
    out = []
    for name in sorted(set(recorded) | set(now)):
        if name in MAY_CHANGE_ON_RESUME:
            continue
        if recorded.get(name, "<absent>") != now.get(name, "<absent>"):
            out.append(f"{flag(name)}: {recorded.get(name, '<absent>')!r} → {now.get(name, '<absent>')!r}")
    return out


# ----------------------------------------------------------------------------------------------
# Run records
# ----------------------------------------------------------------------------------------------


def git_commit() -> str:
    """The commit of the code that runs: ``$S4LITE_COMMIT`` if set, else ``git rev-parse HEAD``.

    A ``-dirty`` suffix says tracked files differ from that commit. (A copy of a working tree on a
    remote machine can carry an older ``.git`` than the files it runs: there the caller names the
    commit in ``S4LITE_COMMIT``.)
    """
    if os.environ.get("S4LITE_COMMIT"):
        return os.environ["S4LITE_COMMIT"]
    here = Path(__file__).resolve().parent
    try:
        run = functools.partial(subprocess.run, cwd=here, capture_output=True, text=True, check=True, timeout=10)
        head = run(["git", "rev-parse", "HEAD"]).stdout.strip()
        dirty = run(["git", "status", "--porcelain", "--untracked-files=no"]).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except Exception:  # noqa: BLE001 - no git, not a repo: record that
        return "unknown"


def run_info() -> dict[str, Any]:
    """Device, JAX version, commit, date and matmul-precision settings of this process."""
    dev = jax.devices()[0]
    precision_env = ("JAX_DEFAULT_MATMUL_PRECISION", "XLA_FLAGS", "NVIDIA_TF32_OVERRIDE", "JAX_ENABLE_X64")
    return {
        "device": str(dev),
        "device_kind": getattr(dev, "device_kind", dev.platform),
        "platform": dev.platform,
        "jax_version": jax.__version__,
        "commit": git_commit(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "default_matmul_precision": str(jax.config.jax_default_matmul_precision),
        "precision_env": {k: os.environ.get(k) for k in precision_env},
    }


def read_run_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """A run's ``config.json`` with one key style (``d_model``), also for runs written before it."""
    raw = json.loads((Path(run_dir) / "config.json").read_text())
    return {k.replace("-", "_"): v for k, v in raw.items()}


def prepare_out(cfg: Any, needs: tuple[str, ...] = ()) -> Path:
    """Check the run directory before any work: refuse what would lose or mix runs.

    Without ``resume`` a directory that holds a run is refused unless ``overwrite``; with ``resume``
    the directory, its checkpoint and every file in ``needs`` must exist. The directory must be
    writable (checked by writing a probe file).
    """
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        fail(f"--out: {out} is a file, not a directory")
    if cfg.resume:
        if not out.is_dir():
            fail(f"--resume: {out} does not exist; nothing to resume (leave out --resume to start a run)")
        missing = [n for n in (CHECKPOINT,) + tuple(needs) if not (out / n).is_file()]
        if missing:
            fail(f"--resume: {out} has no {', '.join(missing)}; nothing to resume from")
        try:
            _, meta = read_checkpoint(out / CHECKPOINT)
        except CheckpointError as err:
            fail(f"--resume: {err}")
        changed = config_changes(meta["config"], cfg)
        if changed:
            fail(
                f"--resume: {out / CHECKPOINT} was made with other settings: " + "; ".join(changed)
                + f" (only {', '.join(flag(n) for n in MAY_CHANGE_ON_RESUME)} may change on resume)"
            )
    else:
        existing = [n for n in RUN_FILES if (out / n).exists()]
        if existing and not cfg.overwrite:
            fail(
                f"--out: {out} already holds a run ({', '.join(existing)}); "
                "continue it with --resume, replace it with --overwrite, or choose another --out"
            )
        for name in existing:  # --overwrite: no file of the old run may be mistaken for the new one's
            (out / name).unlink()
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        fail(f"--out: cannot write to {out} ({err.strerror or err})")
    return out


def load_data(load: Callable[[], Any]) -> Any:
    """``load()``, with any data error (missing, corrupted, unreadable) turned into a one-line exit."""
    try:
        return load()
    except (FileNotFoundError, ValueError, RuntimeError, OSError) as err:
        fail(f"data: {err}")


def write_json(path: Path, obj: Any) -> None:
    """Write JSON through a temporary file and a rename."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ----------------------------------------------------------------------------------------------
# The task and the loop
# ----------------------------------------------------------------------------------------------


@dataclass
class Task:
    """What :func:`fit` trains: a model, its loss, its evaluation, and the data.

    ``init(key) -> params``; ``loss(params, batch, key) -> (mean loss, {metric: batch sum})``;
    ``evaluate(params, batch) -> {value: per-example array (B,)}``. ``train`` and ``test`` are dicts
    of arrays with one leading example axis (batches are gathered by index on the device), or
    ``train`` is a function ``key -> batch`` (then ``steps_per_epoch`` must be given). ``labels``
    groups the parameters for the optimizer (:func:`param_labels` by default).
    """

    name: str
    init: Callable[[Array], Any]
    loss: Callable[[Any, Batch, Array], tuple[Array, dict[str, Array]]]
    evaluate: Callable[[Any, Batch], dict[str, Array]]
    train: Batch | Callable[[Array], Batch]
    test: Batch | None = None
    labels: Callable[[Any], Any] = param_labels
    steps_per_epoch: int | None = None
    loss_name: str = "loss"
    source: str = ""


@dataclass
class FitResult:
    """What :func:`fit` returns: the final state and the metrics of every epoch."""

    params: Any
    eval_params: Any  # the weight average under ``ema``, else ``params``
    history: list[dict[str, Any]]
    run: dict[str, Any]  # the config.json record
    out: Path | None


def _n_examples(data: Batch) -> int:
    sizes = {int(np.shape(v)[0]) for v in jax.tree.leaves(data)}
    if len(sizes) != 1:
        raise ValueError(f"data: every array needs the same number of examples, got sizes {sorted(sizes)}")
    return sizes.pop()


def evaluate_all(eval_fn: Callable, params: Any, data: Batch, batch: int) -> dict[str, float]:
    """Mean of every per-example value over all of ``data``; the last batch is padded and masked."""
    n = _n_examples(data)
    batch = min(batch, n)
    sums: dict[str, float] = {}
    for start in range(0, n, batch):
        idx = np.arange(start, start + batch)
        mask = jnp.asarray((idx < n).astype(np.float32))
        part = eval_fn(params, jax.tree.map(lambda a: a[idx % n], data), mask)
        for k, v in part.items():
            sums[k] = sums.get(k, 0.0) + float(v)
    return {k: v / n for k, v in sums.items()}


def _progress(cfg: Any, total: int, desc: str):
    if not cfg.progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False)


def _epoch_size(cfg: TrainConfig, task: Task) -> tuple[int, int]:
    """``(training examples per epoch, steps per epoch)``; a batch larger than the data is refused."""
    if callable(task.train):
        if task.steps_per_epoch is None:
            raise ValueError("task: a train batch function needs steps_per_epoch")
        return task.steps_per_epoch * cfg.batch_size, task.steps_per_epoch
    n_train = _n_examples(task.train)
    steps = n_train // cfg.batch_size
    if steps < 1:
        fail(f"--batch-size: {cfg.batch_size} is larger than the {n_train} training examples")
    return n_train, steps


def _restore(out: Path, state: dict, n_train: int) -> tuple[dict, dict]:
    """The state and metadata of the checkpoint in ``out``; a one-line exit if it does not fit."""
    try:
        tensors, meta = read_checkpoint(out / CHECKPOINT)  # its config was checked by prepare_out
        if meta.get("n_train") not in (None, n_train):
            raise CheckpointError(f"{out / CHECKPOINT}: the run trained on {meta['n_train']} examples, "
                                  f"the data now has {n_train}")
        return {part: unflatten(tree, part, tensors, out / CHECKPOINT) for part, tree in state.items()}, meta
    except CheckpointError as err:
        fail(f"--resume: {err}")


def _compile_step(train_step: Callable, state: dict, zeros: dict, data: Any, plan: tuple) -> Callable:
    """The compiled training step, run once on copies so that first-call costs land before timing."""
    order, keys = plan
    compiled = train_step.lower(state, zeros, data, order[0], keys[0]).compile()
    spare = jax.tree.map(jnp.copy, (state, zeros))
    jax.block_until_ready(compiled(*spare, data, list(order)[0], list(keys)[0]))
    return compiled


def fit(
    cfg: TrainConfig,
    task: Task,
    *,
    command: str | None = None,
    prog: str = "python -m s4lite.train",
    extra: dict[str, Any] | None = None,
    needs: tuple[str, ...] = (),
    on_start: Callable[[Path, Any], None] | None = None,
    write: bool = True,
) -> FitResult:
    """Train ``task`` as ``cfg`` says; write, checkpoint and resume the run in ``cfg.out``.

    ``command`` is recorded in the run's segment (default: the equivalent command of ``prog``);
    ``extra`` is merged into ``config.json``; ``needs`` are files a resume also requires;
    ``on_start(out, params)`` runs once at the start of a fresh run (to record the initial state).
    With ``write=False`` nothing is written (no directory, no checkpoint; for notebooks).
    """
    validate(cfg)
    out = prepare_out(cfg, needs) if write else None
    key_init = jax.random.PRNGKey(cfg.seed)
    key_train = jax.random.key(cfg.seed + 1, impl=cfg.prng)
    params = task.init(key_init)
    n_train, steps = _epoch_size(cfg, task)
    total_steps = steps * cfg.epochs
    labels = task.labels(params)
    opt = make_optimizer(cfg, total_steps, params, labels)
    state = {"params": params, "opt": opt.init(params)}
    if cfg.ema > 0:
        state["ema"] = jax.tree.map(jnp.array, params)

    info = run_info()
    segment = {"command": command or command_line(prog, cfg), **{k: info[k] for k in ("date", "commit", "device")}}
    record: dict[str, Any] = {
        **json.loads(json.dumps(dataclasses.asdict(cfg))),
        "task_name": task.name,
        "n_params": int(sum(np.prod(np.shape(x)) for x in jax.tree.leaves(params))),
        "data_source": task.source,
        "n_train": n_train,
        "n_test": None if task.test is None else _n_examples(task.test),
        "steps_per_epoch": steps,
        "conv_resolved": resolve_conv(cfg.conv),
        "activations_resolved": resolve_activations(cfg.activations, cfg.conv),
        "dropout_bits_resolved": resolve_dropout_bits(cfg.dropout_bits),
        "kernel_resolved": resolve_kernel(cfg.kernel),
        **(extra or {}),
        **info,
    }
    start_epoch, train_time, wall_offset, history = 0, 0.0, 0.0, []
    if out is not None and cfg.resume:
        state, meta = _restore(out, state, n_train)
        start_epoch, train_time, wall_offset = meta["epoch"], meta["train_time"], meta["wall_time"]
        history = read_jsonl(out / "metrics.jsonl")[:start_epoch]  # rows after the checkpoint are redone
        previous = json.loads((out / "config.json").read_text()) if (out / "config.json").exists() else {}
        record["segments"] = previous.get("segments", []) + [{**segment, "start_epoch": start_epoch}]
        print(f"resumed from epoch {start_epoch} of {out}", flush=True)
    else:
        record["segments"] = [{**segment, "start_epoch": 0}]
    record["command"] = segment["command"]
    if out is not None:
        (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history))
        write_json(out / "config.json", record)
        if start_epoch == 0 and on_start is not None:
            on_start(out, state["params"])
    train_step, eval_step = make_steps(task, opt, cfg.ema)
    data = task.train if not callable(task.train) else None
    t0 = time.perf_counter()  # compile everything an epoch runs, before any epoch is timed
    zeros = zero_sums(task, state, data, cfg.batch_size)
    plan = epoch_plan(key_train, start_epoch, n_train, steps, cfg.batch_size)
    compiled = _compile_step(train_step, state, zeros, data, plan)
    record["segments"][-1]["compile_s"] = time.perf_counter() - t0  # not counted as training time
    if out is not None:
        write_json(out / "config.json", record)
    resume_cmd = command_line(prog, cfg, resume=True, overwrite=False)
    t_wall0 = time.perf_counter() - wall_offset
    try:
        for epoch in range(start_epoch, cfg.epochs):
            row, state, epoch_time = _run_epoch(
                cfg, task, compiled, state, data, key_train, epoch, steps, n_train, zeros
            )
            train_time += epoch_time
            if task.test is not None:
                ev = evaluate_all(eval_step, state.get("ema", state["params"]), task.test, cfg.eval_batch)
                row.update({f"test_{k}": v for k, v in ev.items()})
            row.update(epoch_time=epoch_time, samples_per_s=steps * cfg.batch_size / epoch_time)
            row.update(train_time=train_time, wall_time=time.perf_counter() - t_wall0)
            history.append(row)
            if out is not None:
                with open(out / "metrics.jsonl", "a") as f:
                    f.write(json.dumps(row) + "\n")
                meta = {"epoch": epoch + 1, "train_time": train_time, "wall_time": row["wall_time"],
                        "n_train": n_train, "config": record_config(cfg)}  # fmt: skip
                save_checkpoint(out / CHECKPOINT, state, meta)
            print(_row_text(row, cfg.epochs), flush=True)
            if cfg.time_budget is not None and train_time >= cfg.time_budget:
                print(f"time budget of {cfg.time_budget:g} s reached", flush=True)
                break
    except KeyboardInterrupt:
        done = len(history)
        where = f"the last checkpoint is {out / CHECKPOINT} (epoch {done})" if out and done else "no epoch was finished"
        print(f"\ninterrupted; {where}. Resume with:\n  {resume_cmd}", file=sys.stderr, flush=True)
        raise SystemExit(130) from None
    return FitResult(state["params"], state.get("ema", state["params"]), history, record, out)


def record_config(cfg: Any) -> dict[str, Any]:
    """The config as plain JSON values (what a checkpoint stores and a resume compares)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def make_steps(task: Task, opt: optax.GradientTransformation, ema: float):
    """Jitted training step (gather the batch, loss, update, weight average, running sums) and
    evaluation step (per-example values times the padding mask, summed)."""

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def train_step(state, sums, data, idx, key):
        k_data, k_loss = jax.random.split(key)
        batch = task.train(k_data) if data is None else jax.tree.map(lambda a: a[idx], data)
        grad_fn = jax.value_and_grad(task.loss, has_aux=True)
        (loss, metrics), grads = grad_fn(state["params"], batch, k_loss)
        updates, opt_state = opt.update(grads, state["opt"], state["params"])
        new = {"params": optax.apply_updates(state["params"], updates), "opt": opt_state}
        if "ema" in state:  # ema ← ema + (1 − decay)(params − ema)
            new["ema"] = optax.incremental_update(new["params"], state["ema"], 1.0 - ema)
        step_sums = {"loss": loss, **metrics}
        return new, jax.tree.map(jnp.add, sums, step_sums)

    @jax.jit
    def eval_step(params, batch, mask):
        values = task.evaluate(params, batch)
        return {k: jnp.sum(v * mask) for k, v in values.items()}

    return train_step, eval_step


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def epoch_plan(key: Array, epoch: Array, n: int, steps: int, batch: int) -> tuple[Array, Array]:
    """The indices ``(steps, batch)`` of every step of an epoch (a fresh permutation) and their keys."""
    k_perm, k_steps = jax.random.split(jax.random.fold_in(key, epoch))
    order = jax.random.permutation(k_perm, n)[: steps * batch].reshape(steps, batch)
    keys = jax.vmap(lambda s: jax.random.fold_in(k_steps, s))(jnp.arange(steps))
    return order, keys


def zero_sums(task: Task, state: dict, data: Any, batch: int) -> dict[str, Array]:
    """Zeros of the running sums: the loss and every metric the task's loss returns."""
    def shapes(params, key):
        b = task.train(key) if data is None else jax.tree.map(lambda a: a[:batch], data)
        return task.loss(params, b, key)[1]

    names = jax.eval_shape(shapes, state["params"], jax.random.PRNGKey(0))
    return {"loss": jnp.zeros(()), **{k: jnp.zeros(v.shape, v.dtype) for k, v in names.items()}}


def _run_epoch(cfg, task, step, state, data, key_train, epoch, steps, n_train, zeros):
    order, keys = epoch_plan(key_train, epoch, n_train, steps, cfg.batch_size)
    bar = _progress(cfg, steps, f"epoch {epoch + 1}/{cfg.epochs}")
    sums = jax.tree.map(jnp.copy, zeros)
    t0 = time.perf_counter()
    for idx, key in zip(list(order), list(keys)):  # one split each, not one slice per step
        state, sums = step(state, sums, data, idx, key)
        if bar is not None:
            bar.update(1)
    sums = jax.tree.map(float, sums)  # waits for the epoch to finish
    epoch_time = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    train_loss = sums.pop("loss") / steps
    if not math.isfinite(train_loss):
        fail(
            f"training diverged in epoch {epoch + 1}: mean train {task.loss_name} is {train_loss}. Nothing was "
            "saved for this epoch; try a smaller --lr/--ssm-lr, or resume from the last checkpoint."
        )
    row = {"epoch": epoch + 1, f"train_{task.loss_name}": train_loss}
    row.update({f"train_{k}": v / (steps * cfg.batch_size) for k, v in sums.items()})
    return row, state, epoch_time


def _row_text(row: dict[str, Any], epochs: int) -> str:
    shown = [f"{k} {v:.4f}" for k, v in row.items() if k.startswith(("train_", "test_")) and k != "train_time"]
    return f"epoch {row['epoch']:3d}/{epochs}  " + "  ".join(shown) + f"  {row['samples_per_s']:,.0f} samples/s"


def summarize(history: list[dict[str, Any]], config: dict[str, Any]) -> dict[str, Any]:
    """Final and best test accuracy, time to 99% (training and wall seconds), median throughput.

    The median throughput is over epochs 2… (upper median): runs recorded before compilation was
    timed apart have it inside epoch 1, and `the chapters` recomputes the same.
    """
    if not history:
        return {"epochs": 0}
    reach = next((r for r in history if r["test_acc"] >= 0.99), None)
    rates = sorted(r["samples_per_s"] for r in history[1:] or history)
    return {
        "epochs": len(history),
        "final_test_acc": history[-1]["test_acc"],
        "best_test_acc": max(r["test_acc"] for r in history),
        "best_epoch": max(history, key=lambda r: r["test_acc"])["epoch"],
        "time_to_99_train_s": None if reach is None else reach["train_time"],
        "time_to_99_wall_s": None if reach is None else reach["wall_time"],
        "epoch_to_99": None if reach is None else reach["epoch"],
        "median_samples_per_s": rates[len(rates) // 2],
        "train_time_s": history[-1]["train_time"],
        "wall_time_s": history[-1]["wall_time"],
        "n_params": config["n_params"],
        "device": config["device"],
    }
