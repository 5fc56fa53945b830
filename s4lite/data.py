r"""MNIST for the sequential-MNIST chapter: find, verify, download and read the digits.

Sequential MNIST (sMNIST) reads each 28 × 28 digit one pixel at a time, row by row, and asks a
sequence model for the class after the last of the :math:`L = 784` steps. Permuted sMNIST (psMNIST)
shuffles the pixel order with one fixed permutation :math:`\pi`, so that neighbouring pixels end up
far apart in time:

.. math::
    u_k = \frac{x_{\lfloor k/28 \rfloor,\, k \bmod 28}/255 - \mu}{\sigma}, \qquad
    u^{\pi}_k = u_{\pi(k)}, \qquad k = 0, \dots, 783,

with the MNIST pixel mean :math:`\mu = 0.1307` and standard deviation :math:`\sigma = 0.3081`.

Where the digits come from (first that works):

1. a directory given as ``data_dir`` (a notebook argument or a script's ``--data-dir``);
2. the environment variable ``S4LITE_DATA``;
3. the cache ``~/.cache/s4lite/mnist``, filled by downloading the four official IDX files.

Every file is checked against its md5 sum before it is used. For the training split, a directory
that holds only ``train10k-*`` (10,000 of the 60,000 training digits, see ``SUBSET_FILES``) is used
as a fallback. A small sample (1024 training and 512 test digits) ships inside the package for
quick runs and tests: :func:`load_sample`.

This module needs only NumPy and the standard library.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import os
import urllib.request
import warnings
import zlib
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

log = logging.getLogger(__name__)

#: name → (file name, md5) of the four official MNIST files.
MNIST_FILES: dict[str, tuple[str, str]] = {
    "train_images": ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train_labels": ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
    "test_images": ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
    "test_labels": ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
}

#: name → (file name, md5) of the 10,000-digit training subset (``train10k-*``; not downloadable).
SUBSET_FILES: dict[str, tuple[str, str]] = {
    "train_images": ("train10k-images-idx3-ubyte.gz", "ca67a6efb550ad2889029c2157eb9160"),
    "train_labels": ("train10k-labels-idx1-ubyte.gz", "ee7628099a46f4e0b9a06bd208df026d"),
}

#: Official mirrors, tried in this order (the original yann.lecun.com host often refuses).
MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

#: Environment variable naming a directory that holds the IDX files.
ENV_VAR = "S4LITE_DATA"

#: MNIST pixel statistics (of the 60k training images scaled to [0, 1]).
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081

#: The shipped sample (inside the package; made by ``tools/make_mnist_sample.py``).
SAMPLE_PATH = Path(__file__).parent / "_sample" / "mnist_sample.npz"

IDX_MAGIC_IMAGES = 0x00000803  # uint8 data, 3 dimensions (n, rows, cols)
IDX_MAGIC_LABELS = 0x00000801  # uint8 data, 1 dimension (n,)

SEQ_LEN = 28 * 28
_SPLITS = ("train", "test")
_TASKS = ("smnist", "psmnist")
_CHUNK = 1 << 16


# --------------------------------------------------------------------------------------------
# small checks (numpy only, same message style as s4lite._check)


def _choice(name: str, value: Any, options: Sequence[str]) -> str:
    if not isinstance(value, str) or value.lower() not in options:
        raise ValueError(f"{name}: expected one of {list(options)}, got {value!r}")
    return value.lower()


def _optional_count(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected None or an integer >= 1, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------------------------
# files: md5, IDX format


def md5sum(path: str | os.PathLike[str]) -> str:
    """Hex md5 digest of the file at ``path`` (read in 64 KiB chunks)."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic ``1f 8b``."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise ValueError(
            f"{path}: not a valid gzip file ({err}); it is truncated or corrupted. "
            "Delete it and download it again."
        ) from err


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Parse an IDX file (gzipped or raw) of uint8 images or labels.

    The IDX header is a big-endian magic number ``0x00000803`` (uint8, 3 dims: images) or
    ``0x00000801`` (uint8, 1 dim: labels), then one big-endian uint32 per dimension, then the
    ``prod(dims)`` data bytes in row-major order.

    Returns:
        ``uint8`` array of shape ``(n, rows, cols)`` for images or ``(n,)`` for labels.

    Raises:
        ValueError: naming the file, when it is truncated, corrupted, or not uint8 IDX.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise ValueError(f"{path}: too short for an IDX header ({len(data)} bytes); the file is truncated")
    magic = int.from_bytes(data[:4], "big")
    if magic not in (IDX_MAGIC_IMAGES, IDX_MAGIC_LABELS):
        raise ValueError(
            f"{path}: bad IDX magic number 0x{magic:08x}; expected 0x{IDX_MAGIC_IMAGES:08x} (images) "
            f"or 0x{IDX_MAGIC_LABELS:08x} (labels). Not an MNIST IDX file, or corrupted."
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: IDX header cut short ({len(data)} of {header} bytes); the file is truncated")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(dims, dtype=np.int64))
    got = len(data) - header
    if got != expected:
        raise ValueError(
            f"{path}: the header says shape {dims} = {expected} bytes of data, but the file holds {got}; "
            "it is truncated or corrupted"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def write_idx(path: str | os.PathLike[str], array: Any) -> Path:
    """Write a uint8 array ``(n,)`` or ``(n, rows, cols)`` as IDX; gzipped when ``path`` ends in ``.gz``.

    The inverse of :func:`read_idx`. The gzip header carries no time stamp, so the bytes depend
    only on the array.
    """
    arr = np.asarray(array)
    if arr.dtype != np.uint8 or arr.ndim not in (1, 3):
        raise ValueError(f"array: expected uint8 of shape (n,) or (n, rows, cols), got {arr.dtype} {arr.shape}")
    magic = IDX_MAGIC_LABELS if arr.ndim == 1 else IDX_MAGIC_IMAGES
    payload = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    payload += np.ascontiguousarray(arr).tobytes()
    path = Path(path)
    if path.suffix == ".gz":
        payload = gzip.compress(payload, mtime=0)
    path.write_bytes(payload)
    return path


# --------------------------------------------------------------------------------------------
# where the data lives, and downloading it


def default_cache_dir() -> Path:
    """``~/.cache/s4lite/mnist``: where downloads go."""
    return Path.home() / ".cache" / "s4lite" / "mnist"


def find_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The directory to look in for IDX files: ``data_dir``, else ``$S4LITE_DATA``, else the cache.

    Returns the cache directory only if it exists, and ``None`` when nothing is set and the cache
    does not exist yet. A directory given explicitly (argument or environment) that does not
    exist is an error, not silently skipped.

    Raises:
        FileNotFoundError: ``data_dir`` or ``$S4LITE_DATA`` names no directory.
    """
    if data_dir is not None:
        path = Path(data_dir).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"data_dir: {str(path)!r} is not a directory")
        return path
    env = os.environ.get(ENV_VAR)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"{ENV_VAR}={env!r} is not a directory")
        return path
    cache = default_cache_dir()
    return cache if cache.is_dir() else None


def _advice() -> str:
    """How to get MNIST, in one line (it ends error messages that a CLI prints as one line)."""
    names = ", ".join(name for name, _ in MNIST_FILES.values())
    subset = ", ".join(name for name, _ in SUBSET_FILES.values())
    return (
        f"To get MNIST: run with network access (the official files are downloaded into "
        f"{default_cache_dir()}), or put the IDX files in a directory and set {ENV_VAR}=/path/to/dir "
        f"or pass it as data_dir=... (--data-dir in scripts). Expected file names: {names} "
        f"(for training, {subset} also work)."
    )


def download(url_list: Sequence[str], dest: str | os.PathLike[str], md5: str, timeout: float = 60.0) -> Path:
    """Download a file from the first URL in ``url_list`` that delivers bytes with md5 ``md5``.

    The bytes go to ``dest.with_suffix(".part")`` and are renamed to ``dest`` (atomically) only
    once their md5 is right. If ``dest`` already exists with the right md5 nothing is fetched; an
    existing file with the wrong md5 is reported (``warnings.warn`` with its path and both sums),
    never used, and replaced by a fresh download.

    Raises:
        RuntimeError: every URL failed; the message lists each error and says what to do instead.
    """
    dest = Path(dest)
    if isinstance(url_list, str):
        url_list = [url_list]
    if not url_list:
        raise ValueError("url_list: expected at least one URL, got none")
    if dest.exists():
        actual = md5sum(dest)
        if actual == md5:
            return dest
        warnings.warn(
            f"{dest}: md5 {actual} does not match the expected {md5}; the file is not used and is "
            "downloaded again",
            stacklevel=2,
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_suffix(".part")
    errors = []
    for url in url_list:
        try:
            digest = hashlib.md5()
            with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as out:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != md5:
                raise ValueError(f"md5 {digest.hexdigest()} of the downloaded bytes, expected {md5}")
        except (OSError, ValueError, http.client.HTTPException) as err:  # URLError, timeouts: OSError
            part.unlink(missing_ok=True)
            log.info("download of %s failed: %s", url, err)
            errors.append(f"  {url}: {err}")
            continue
        os.replace(part, dest)
        log.info("downloaded %s to %s", url, dest)
        return dest
    raise RuntimeError(
        f"could not download {dest.name} from any mirror: " + "; ".join(errors) + ". " + _advice()
    )


_download = download  # load_mnist's ``download`` flag shadows the function's name


# --------------------------------------------------------------------------------------------
# loading MNIST


def _find_verified(
    dirs: Sequence[Path], filename: str, md5: str
) -> tuple[Path | None, list[str]]:
    """First copy of ``filename`` in ``dirs`` with the right md5, and a note per wrong copy (reported)."""
    bad = []
    for d in dirs:
        path = d / filename
        if not path.is_file():
            continue
        actual = md5sum(path)
        if actual == md5:
            return path, bad
        note = f"{path}: md5 {actual} does not match the expected {md5}; the file is not used"
        warnings.warn(note, stacklevel=3)
        bad.append(note)
    return None, bad


def _read_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    x, y = read_idx(images_path), read_idx(labels_path)
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise ValueError(f"{images_path}: expected images of shape (n, 28, 28), got {x.shape}")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"{labels_path}: expected {x.shape[0]} labels, got shape {y.shape}")
    if y.size and int(y.max()) > 9:
        raise ValueError(f"{labels_path}: labels must be digits 0-9, found {int(y.max())}")
    return x, y


def load_mnist(
    split: Literal["train", "test"],
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    mirrors: Sequence[str] = MIRRORS,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Load one MNIST split: ``(images uint8 (n, 28, 28), labels uint8 (n,), source)``.

    ``source`` says which files were used (``"official 60k (dir)"``, ``"train10k subset (dir)"``,
    ``"official 10k test (downloaded to dir)"``). Looks in :func:`find_data_dir` (``data_dir``,
    ``$S4LITE_DATA``, cache) and in the cache for the official files of ``split``, each verified
    against :data:`MNIST_FILES`. A file with a wrong md5 is reported (``warnings.warn``) and never
    used. Then, for ``split="train"`` only, when the official files are absent, the ``train10k-*``
    subset (:data:`SUBSET_FILES`) is used (logged at INFO level). Otherwise, if ``download``, the
    official files are downloaded from :data:`MIRRORS` into ``cache_dir`` (default
    ``~/.cache/s4lite/mnist``).

    Raises:
        ValueError: ``split`` is not "train"/"test"; or a local file is corrupted and no good copy
            could be had (``download`` False, or the download failed): the message says *corrupted*.
        FileNotFoundError: no file at all; the message says how to provide the files.
    """
    split = _choice("split", split, _SPLITS)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    found = find_data_dir(data_dir)
    dirs = [d for d in (found, cache) if d is not None and d.is_dir()]
    dirs = list(dict.fromkeys(dirs))  # deduplicate, keep order
    keys = (f"{split}_images", f"{split}_labels")
    official = "official 60k" if split == "train" else "official 10k test"

    # 1. the official files, verified
    paths, bad = [], []
    for key in keys:
        path, notes = _find_verified(dirs, *MNIST_FILES[key])
        paths.append(path)
        bad += notes
    if all(p is not None for p in paths):
        x, y = _read_pair(paths[0], paths[1])
        return x, y, f"{official} ({paths[0].parent})"

    # 2. training only: the train10k subset, when the official files are simply absent
    if split == "train" and not bad:
        sub, sub_bad = [], []
        for key in keys:
            path, notes = _find_verified(dirs, *SUBSET_FILES[key])
            sub.append(path)
            sub_bad += notes
        if all(p is not None for p in sub):
            log.info(
                "the full 60k MNIST training set was not found; using the 10k subset %s", sub[0].parent
            )
            x, y = _read_pair(sub[0], sub[1])
            return x, y, f"train10k subset ({sub[0].parent})"
        bad += sub_bad

    # 3. download the official files into the cache
    where = (
        "in " + ", ".join(str(d) for d in dirs)
        if dirs
        else f"(no directory to look in: no data_dir given, ${ENV_VAR} unset, no cache yet)"
    )
    corrupted = "corrupted MNIST file(s): " + "; ".join(bad) + "; "
    if bad and not download:
        raise ValueError(
            corrupted + "download=False, so no fresh copy is fetched. Replace them with good copies, "
            "or delete them and call again with download=True."
        )
    if download:
        try:
            for i, key in enumerate(keys):
                if paths[i] is None:
                    name, md5 = MNIST_FILES[key]
                    paths[i] = _download([m + name for m in mirrors], cache / name, md5)
        except RuntimeError as err:
            if bad:
                raise ValueError(corrupted + f"and the download of fresh copies failed: {err}") from err
            raise FileNotFoundError(f"MNIST {split} split not found {where}, and the download failed: {err}") from err
        x, y = _read_pair(paths[0], paths[1])
        return x, y, f"{official} (downloaded to {cache})"

    raise FileNotFoundError(f"MNIST {split} split not found {where}, and download=False. " + _advice())


def load_sample() -> dict[str, np.ndarray]:
    """The small MNIST sample shipped with s4lite (no download, no pickle).

    Returns:
        ``{"x_train": uint8 (1024, 28, 28), "y_train": uint8 (1024,), "x_test": uint8 (512, 28, 28),
        "y_test": uint8 (512,)}``: about as many digits of each class, drawn with a fixed seed from
        the ``train10k`` subset and the official test set (``tools/make_mnist_sample.py``).
    """
    with np.load(SAMPLE_PATH, allow_pickle=False) as f:
        return {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test")}


def stratified_indices(labels: Any, n: int, seed: int = 0) -> np.ndarray:
    """``n`` indices into ``labels`` with about ``n / C`` of each of the ``C`` classes, in shuffled order.

    Class ``c`` (classes in increasing order) gets ``n // C`` indices, plus one for the first
    ``n % C`` classes; they are drawn without replacement with ``np.random.default_rng(seed)``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels: expected shape (n,), got {labels.shape}")
    classes = np.unique(labels)
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or not 1 <= n <= labels.size:
        raise ValueError(f"n: expected an integer in [1, {labels.size}], got {n!r}")
    rng = np.random.default_rng(seed)
    base, extra = divmod(int(n), classes.size)
    picks = []
    for i, c in enumerate(classes):
        members = np.flatnonzero(labels == c)
        k = base + (i < extra)
        if k > members.size:
            raise ValueError(f"n: class {c} has only {members.size} examples, {k} requested")
        picks.append(rng.choice(members, size=k, replace=False))
    return rng.permutation(np.concatenate(picks))


# --------------------------------------------------------------------------------------------
# images → sequences


def to_sequences(images: Any) -> np.ndarray:
    r"""Digits → pixel sequences for sequential MNIST: ``(n, 28, 28)`` uint8 → ``(n, 784, 1)`` float32.

    Each image is flattened row-major (read pixel by pixel, left to right, top row first), scaled
    to [0, 1] and standardized with the MNIST statistics: :math:`u_k = (x_k/255 - 0.1307)/0.3081`.
    A black pixel becomes ≈ −0.424 and a white one ≈ 2.821.
    """
    arr = np.asarray(images)
    if arr.dtype != np.uint8:
        raise ValueError(f"images: expected uint8 pixels 0-255, got dtype {arr.dtype}")
    if arr.ndim == 2 and arr.shape[1] == SEQ_LEN:
        arr = arr.reshape(-1, 28, 28)
    if arr.ndim != 3 or arr.shape[1:] != (28, 28):
        raise ValueError(f"images: expected shape (n, 28, 28) or (n, 784), got {arr.shape}")
    seqs = arr.reshape(arr.shape[0], SEQ_LEN, 1).astype(np.float32) / np.float32(255.0)
    return (seqs - np.float32(MNIST_MEAN)) / np.float32(MNIST_STD)


def permutation(seed: int = 0, length: int = SEQ_LEN) -> np.ndarray:
    """A fixed permutation of ``range(length)`` for permuted MNIST: ``np.random.default_rng(seed).permutation(length)``."""
    if isinstance(length, (bool, np.bool_)) or not isinstance(length, (int, np.integer)) or length < 1:
        raise ValueError(f"length: expected an integer >= 1, got {length!r}")
    return np.random.default_rng(seed).permutation(int(length))


def permute(seqs: Any, perm: Any) -> np.ndarray:
    """Reorder the time axis: ``out[:, k] = seqs[:, perm[k]]`` for ``seqs (n, L, ...)`` and ``perm (L,)``."""
    seqs = np.asarray(seqs)
    perm = np.asarray(perm)
    if seqs.ndim < 2:
        raise ValueError(f"seqs: expected shape (n, L, ...), got {seqs.shape}")
    length = seqs.shape[1]
    if (
        perm.shape != (length,)
        or not np.issubdtype(perm.dtype, np.integer)
        or not np.array_equal(np.sort(perm), np.arange(length))
    ):
        raise ValueError(f"perm: expected a permutation of range({length}), got shape {perm.shape} dtype {perm.dtype}")
    return seqs[:, perm]


def load_task(
    task: Literal["smnist", "psmnist"],
    data_dir: str | os.PathLike[str] | None = None,
    sample: bool = False,
    limit_train: int | None = None,
    limit_test: int | None = None,
    *,
    download: bool = True,
    perm_seed: int = 0,
) -> dict[str, Any]:
    """The (permuted) sequential-MNIST task, ready for a sequence model.

    Args:
        task: ``"smnist"`` (pixels in reading order) or ``"psmnist"`` (pixels reordered by
            ``permutation(perm_seed)``).
        data_dir: directory with the IDX files (see :func:`load_mnist`).
        sample: use the shipped sample (:func:`load_sample`) instead; nothing is read or downloaded.
        limit_train, limit_test: keep only the first that many digits of each split.
        download: passed to :func:`load_mnist`.

    Returns:
        ``{"x_train": float32 (n, 784, 1), "y_train": int32 (n,), "x_test": float32 (m, 784, 1),
        "y_test": int32 (m,), "source": str}``; ``source`` starts with ``"official 60k"``,
        ``"train10k subset"`` or ``"shipped sample"`` and says where the files were.
    """
    task = _choice("task", task, _TASKS)
    limit_train = _optional_count("limit_train", limit_train)
    limit_test = _optional_count("limit_test", limit_test)
    if sample:
        s = load_sample()
        x_train, y_train, x_test, y_test = s["x_train"], s["y_train"], s["x_test"], s["y_test"]
        source = f"shipped sample ({len(y_train)} train / {len(y_test)} test digits, {SAMPLE_PATH.name})"
    else:
        x_train, y_train, src_train = load_mnist("train", data_dir, download)
        x_test, y_test, src_test = load_mnist("test", data_dir, download)
        source = f"{src_train}; test: {src_test}"
    x_train, y_train = x_train[:limit_train], y_train[:limit_train]
    x_test, y_test = x_test[:limit_test], y_test[:limit_test]
    seq_train, seq_test = to_sequences(x_train), to_sequences(x_test)
    if task == "psmnist":
        perm = permutation(perm_seed)
        seq_train, seq_test = permute(seq_train, perm), permute(seq_test, perm)
    return {
        "x_train": seq_train,
        "y_train": y_train.astype(np.int32),
        "x_test": seq_test,
        "y_test": y_test.astype(np.int32),
        "source": source,
    }
