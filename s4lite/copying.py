"""Selective copying with an LTI or a selective model: ``python -m s4lite.copying --help``.

One run per call, trained by :func:`s4lite.engine.fit` (the same config type, run directory,
checkpoints and resume as ``python -m s4lite.train``). The model is chosen by ``--arch``:

* ``--arch s4``: the deep network of :mod:`s4lite.model` on one-hot tokens, per-position outputs,
  with the sequence layer of ``--ssm`` (``s4``: HiPPO DPLR; ``s4d``: diagonal, ``--init lin|inv|legs``);
* ``--arch mamba``: the Mamba-style token model of :mod:`s4lite.mamba` (selective SSM), or with
  ``--no-selective`` the same blocks with an LTI S4D layer in place of the selective scan.

Every training batch is drawn fresh (:func:`s4lite.tasks.selective_copying`, from the step's key);
the test set is a fixed draw (``--n-test`` sequences, key ``seed + 10_000``). Metrics: ``acc`` is the
share of the ``--n-tokens`` outputs that are right, ``seq`` the share of sequences with all right.

``python -m s4lite.copying collect DIR [DIR ...] --out results.json`` gathers finished runs (of this
tool or of ``python -m s4lite.train``) into one file: ``{command, commit, device, date, runs: [...]}``
(the format of ``artifacts/selective/results.json`` and ``artifacts/s4d/results.json``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from . import engine, mamba, tasks
from .engine import Task, TrainConfig, option
from .model import init_model, sequence_outputs

PROG = "python -m s4lite.copying"
SKIP = ("task", "augment", "data_dir", "sample", "limit_train", "limit_test")


@dataclass
class CopyingConfig(TrainConfig):
    """:class:`~s4lite.engine.TrainConfig` with the task's options and other defaults."""

    arch: str = option("mamba", "model: s4 (the S4/S4D network, see --ssm) or mamba", choices=("s4", "mamba"))
    selective: bool = option(True, "mamba: selective SSM (else the same block with an LTI S4D layer)")
    seq_len: int = option(256, "positions that hold the data and noise tokens (L)", check="int>=1")
    n_tokens: int = option(16, "data tokens to copy (k)", check="int>=1")
    n_colors: int = option(8, "distinct data tokens", check="int>=1")
    steps_per_epoch: int = option(100, "training steps per epoch (fresh batches)", check="int>=1")
    n_test: int = option(1000, "test sequences (a fixed draw)", check="int>=1")
    scan: str = option("parallel", "mamba: selective scan method", choices=("parallel", "sequential"))
    expand: int = option(2, "mamba: inner width = expand * d_model", check="int>=1")
    d_model: int = option(64, "feature channels", check="int>=1")
    n_layers: int = option(2, "residual blocks", check="int>=1")
    N: int = option(16, "state size per channel", check="even>=2")
    epochs: int = option(20, "epochs of --steps-per-epoch steps", check="int>=1")
    batch_size: int = option(64, "sequences per step", check="int>=1")
    lr: float = option(2e-3, "peak learning rate of the non-SSM parameters", check=">=0")
    dropout: float = option(0.0, "dropout rate (s4 arch)", check="[0,1)")
    weight_decay: float = option(0.0, "AdamW weight decay of the non-SSM parameters", check=">=0")
    eval_batch: int = option(250, "test sequences per evaluation batch", check="int>=1")
    out: str = option("runs/copying", "run directory")


def copying_task(cfg: CopyingConfig) -> Task:
    """The engine's :class:`~s4lite.engine.Task` for ``cfg``: model, masked loss, data."""
    vocab = tasks.vocab_size(cfg.n_colors)
    draw = lambda key, n: tasks.selective_copying(key, n, cfg.seq_len, cfg.n_tokens, cfg.n_colors)  # noqa: E731

    if cfg.arch == "mamba":
        def init(key):
            return mamba.init_model(key, vocab, cfg.d_model, cfg.n_layers, cfg.N, cfg.selective,
                                    expand=cfg.expand, dt_min=cfg.dt_min, dt_max=cfg.dt_max)  # fmt: skip

        def logits_fn(params, tokens, key=None):
            return mamba.model_logits(params, tokens, cfg.scan)

        labels = mamba.param_labels
    else:
        backend = engine.resolve(cfg)
        init_layer = engine.init_layer_fn(cfg)

        def init(key):
            return init_model(key, vocab, vocab, cfg.d_model, cfg.n_layers, cfg.N, init_layer=init_layer)

        def logits_fn(params, tokens, key=None):
            x = jax.nn.one_hot(tokens, vocab)
            return sequence_outputs(params, x, key, cfg.dropout if key is not None else 0.0, backend)

        labels = engine.param_labels

    def loss(params, batch, key):
        logits = logits_fn(params, batch["inputs"], key)
        hits = (jnp.argmax(logits, -1) == batch["targets"]) & batch["mask"]
        ce = tasks.masked_cross_entropy(logits, batch["targets"], batch["mask"])
        return ce, {"acc": jnp.sum(hits) / cfg.n_tokens}

    def evaluate(params, batch):
        logits = logits_fn(params, batch["inputs"])
        hits = ((jnp.argmax(logits, -1) == batch["targets"]) & batch["mask"]).sum(-1)
        return {"acc": hits / cfg.n_tokens, "seq": (hits == cfg.n_tokens).astype(jnp.float32)}

    test = draw(jax.random.PRNGKey(cfg.seed + 10_000), cfg.n_test)
    return Task("selective_copying", init, loss, evaluate, train=lambda key: draw(key, cfg.batch_size),
                test=test, labels=labels, steps_per_epoch=cfg.steps_per_epoch,
                source=f"selective_copying(L={cfg.seq_len}, k={cfg.n_tokens}, colors={cfg.n_colors})")  # fmt: skip


def model_name(cfg: dict[str, Any]) -> str:
    """A short label: ``S4``, ``S4D-Lin``, ``Mamba``, ``Mamba (LTI S4D)``."""
    if cfg.get("arch") == "mamba":
        return "Mamba" if cfg["selective"] else "Mamba (LTI S4D)"
    if cfg["ssm"] == "s4":
        return "S4"
    name = f"S4D-{cfg['init'].capitalize()}"
    return name + " (bilinear)" if cfg.get("discretization") == "bilinear" else name


def collect(run_dirs: list[str], out: str | None) -> dict[str, Any]:
    """One record of finished runs: ``{"runs": [{model, seq_len, seed, n_params, command, commit, device,
    date, final_test_accuracy, final_test_seq, history: [{epoch, test_accuracy, train_loss, train_time}]}]}``."""
    runs = []
    for d in run_dirs:
        if not (Path(d) / "config.json").is_file():
            raise SystemExit(f"{d}: not a run directory (no config.json)")
        cfg = engine.read_run_config(d)
        rows = engine.read_jsonl(Path(d) / "metrics.jsonl")
        if not rows:
            raise SystemExit(f"{d}: no finished epoch in metrics.jsonl")
        runs.append({
            "model": model_name(cfg), "arch": cfg.get("arch", "s4"), "ssm": cfg.get("ssm"), "init": cfg.get("init"),
            "discretization": cfg.get("discretization"), "lr": cfg.get("lr"), "ssm_lr": cfg.get("ssm_lr"),
            "weight_decay": cfg.get("weight_decay"), "ssm_weight_decay": cfg.get("ssm_weight_decay", 0.0),
            "seq_len": cfg.get("seq_len"), "n_tokens": cfg.get("n_tokens"), "seed": cfg["seed"],
            "n_params": cfg["n_params"],
            "command": cfg["command"], "commit": cfg["commit"], "device": cfg.get("device_kind", cfg["device"]),
            "date": cfg["date"], "final_test_accuracy": rows[-1]["test_acc"], "final_test_seq": rows[-1].get("test_seq"),
            "history": [{"epoch": r["epoch"], "test_accuracy": r["test_acc"], "train_loss": r["train_loss"],
                         "train_time": r["train_time"]} for r in rows],
        })  # fmt: skip
    first = runs[0]
    record = {"command": "; ".join(sorted({r["command"] for r in runs})), "commit": first["commit"],
              "device": first["device"], "date": first["date"], "runs": runs}
    if out:
        engine.write_json(Path(out), record)
        print(f"wrote {out}")
    return record


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["collect"]:
        rest = argv[1:]
        out = rest[rest.index("--out") + 1] if "--out" in rest else None
        dirs = [a for i, a in enumerate(rest) if a != "--out" and (i == 0 or rest[i - 1] != "--out")]
        if not dirs:
            engine.fail("collect: expected at least one run directory")
        return collect(dirs, out)
    cfg = engine.parse(CopyingConfig, PROG, __doc__.split("\n")[0], argv, skip=SKIP)
    if cfg.arch == "s4" and cfg.ssm == "s4" and cfg.discretization != "bilinear":
        engine.fail("--discretization: S4 is bilinear only")
    task = copying_task(cfg)
    result = engine.fit(cfg, task, command=" ".join([PROG, *argv]), prog=PROG)
    last = result.history[-1]
    print(f"final: test accuracy {last['test_acc']:.4f}, all {cfg.n_tokens} right in {last['test_seq']:.4f}")
    return {"history": result.history, "run": result.run}


if __name__ == "__main__":
    main()
