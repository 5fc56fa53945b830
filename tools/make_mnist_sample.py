"""Make ``s4lite/_sample/mnist_sample.npz``: the small MNIST sample shipped with s4lite.

It holds 1024 training digits drawn from the ``train10k`` subset and 512 test digits drawn from the
official ``t10k`` files, about as many of each class (``s4lite.data.stratified_indices``, seed 0),
stored with ``np.savez_compressed`` as plain uint8 arrays (no pickle) together with the indices
they were taken at (``train_index``, ``test_index``) so that anyone can check them.

Usage (from the repository root)::

    python tools/make_mnist_sample.py --source-dir /work/shared/data/mnist
    python tools/make_mnist_sample.py --source-dir /work/shared/data/mnist --check   # compare, write nothing

``--source-dir`` defaults to ``$S4LITE_DATA``. The source files are verified against the md5 sums in
``s4lite.data`` before they are read, so the arrays are reproducible (the zip container's time
stamps are not, hence ``--check`` compares arrays, not bytes).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from s4lite import data

ROOT = Path(__file__).resolve().parent.parent


def verified(source: Path, table: dict[str, tuple[str, str]], key: str) -> np.ndarray:
    name, md5 = table[key]
    path = source / name
    actual = data.md5sum(path)
    if actual != md5:
        sys.exit(f"{path}: md5 {actual}, expected {md5}; refusing to build the sample from it")
    return data.read_idx(path)


def build(source: Path, n_train: int, n_test: int, seed: int) -> dict[str, np.ndarray]:
    x_tr = verified(source, data.SUBSET_FILES, "train_images")
    y_tr = verified(source, data.SUBSET_FILES, "train_labels")
    x_te = verified(source, data.MNIST_FILES, "test_images")
    y_te = verified(source, data.MNIST_FILES, "test_labels")
    i_tr = data.stratified_indices(y_tr, n_train, seed)
    i_te = data.stratified_indices(y_te, n_test, seed + 1)
    return {
        "x_train": x_tr[i_tr],
        "y_train": y_tr[i_tr],
        "x_test": x_te[i_te],
        "y_test": y_te[i_te],
        "train_index": i_tr.astype(np.int32),
        "test_index": i_te.astype(np.int32),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source-dir", default=os.environ.get(data.ENV_VAR), help="directory with train10k-* and t10k-*")
    parser.add_argument("--out", default=str(data.SAMPLE_PATH))
    parser.add_argument("--n-train", type=int, default=1024)
    parser.add_argument("--n-test", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check", action="store_true", help="compare with --out instead of writing it")
    args = parser.parse_args(argv)
    if not args.source_dir:
        parser.error(f"--source-dir is required (or set {data.ENV_VAR})")
    arrays = build(Path(args.source_dir), args.n_train, args.n_test, args.seed)
    out = Path(args.out)
    if args.check:
        with np.load(out, allow_pickle=False) as f:
            same = set(f.files) == set(arrays) and all(np.array_equal(f[k], v) for k, v in arrays.items())
        print(f"{out}: {'identical arrays' if same else 'DIFFERS from a fresh build'}")
        return 0 if same else 1
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    counts = np.bincount(arrays["y_train"], minlength=10), np.bincount(arrays["y_test"], minlength=10)
    print(f"wrote {out} ({out.stat().st_size} bytes); train per class {counts[0].tolist()}, test {counts[1].tolist()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
