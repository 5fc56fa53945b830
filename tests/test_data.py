"""Tests for s4lite.data: IDX parsing, md5 checks, downloads (from a local fake mirror), loading, sequences."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import logging
import struct
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from s4lite import data

OFFLINE = Path("/work/shared/data/mnist")


# --------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No real cache, no S4LITE_DATA, no proxy: every test sees only what it builds."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="module")
def sample():
    return data.load_sample()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture
def mirror(tmp_path):
    """A local HTTP server on 127.0.0.1 serving ``tmp_path/www``; yields (root dir, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def write_split_files(directory: Path, sample, table, keys=("train", "test")) -> dict[str, tuple[str, str]]:
    """Write the sample's arrays as IDX files named as in ``table``; return the table with their md5s."""
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train_images": sample["x_train"],
        "train_labels": sample["y_train"],
        "test_images": sample["x_test"],
        "test_labels": sample["y_test"],
    }
    out = {}
    for key, (name, _) in table.items():
        if key.split("_")[0] in keys:
            path = data.write_idx(directory / name, arrays[key])
            out[key] = (name, data.md5sum(path))
    return out


# --------------------------------------------------------------------------------------------
# the shipped sample


def test_sample_is_balanced_uint8(sample):
    assert set(sample) == {"x_train", "y_train", "x_test", "y_test"}
    assert sample["x_train"].shape == (1024, 28, 28) and sample["x_test"].shape == (512, 28, 28)
    for k in sample:
        assert sample[k].dtype == np.uint8
    assert np.bincount(sample["y_train"], minlength=10).tolist() == [103] * 4 + [102] * 6
    assert np.bincount(sample["y_test"], minlength=10).tolist() == [52] * 2 + [51] * 8
    assert sample["x_train"].max() == 255 and sample["x_train"].min() == 0
    assert data.SAMPLE_PATH.stat().st_size <= 300_000


def test_sample_npz_needs_no_pickle():
    with np.load(data.SAMPLE_PATH, allow_pickle=False) as f:
        assert all(f[k].dtype != object for k in f.files)


# --------------------------------------------------------------------------------------------
# IDX and md5


def test_read_idx_parses_hand_made_header(tmp_path, sample):
    x = sample["x_test"][:7]
    raw = struct.pack(">IIII", 0x00000803, 7, 28, 28) + x.tobytes()
    (tmp_path / "img.idx").write_bytes(raw)
    (tmp_path / "img.idx.gz").write_bytes(gzip.compress(raw))
    labels = struct.pack(">II", 0x00000801, 7) + sample["y_test"][:7].tobytes()
    (tmp_path / "lab.gz").write_bytes(gzip.compress(labels))
    np.testing.assert_array_equal(data.read_idx(tmp_path / "img.idx"), x)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "img.idx.gz"), x)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "lab.gz"), sample["y_test"][:7])


def test_write_idx_roundtrip_of_sample(tmp_path, sample):
    for key in sample:
        path = data.write_idx(tmp_path / f"{key}.gz", sample[key])
        back = data.read_idx(path)
        assert back.dtype == np.uint8
        np.testing.assert_array_equal(back, sample[key])
    # no time stamp in the gzip header: same array -> same bytes -> same md5
    a = data.md5sum(data.write_idx(tmp_path / "a.gz", sample["y_test"]))
    b = data.md5sum(data.write_idx(tmp_path / "b.gz", sample["y_test"]))
    assert a == b


def test_md5sum_matches_hashlib(tmp_path):
    payload = bytes(range(256)) * 1000  # larger than one read chunk
    (tmp_path / "f").write_bytes(payload)
    assert data.md5sum(tmp_path / "f") == _md5(payload)


def test_read_idx_rejects_truncated_gz_naming_the_file(tmp_path, sample):
    path = data.write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", sample["x_test"])
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte\.gz.*truncated or corrupted"):
        data.read_idx(path)


def test_read_idx_rejects_short_raw_data_and_bad_magic(tmp_path, sample):
    raw = struct.pack(">IIII", 0x00000803, 7, 28, 28) + sample["x_test"][:7].tobytes()
    (tmp_path / "short.idx").write_bytes(raw[:-1])
    with pytest.raises(ValueError, match=r"short\.idx.*5488 bytes.*holds 5487"):
        data.read_idx(tmp_path / "short.idx")
    (tmp_path / "long.idx").write_bytes(raw + b"\0")
    with pytest.raises(ValueError, match=r"long\.idx"):
        data.read_idx(tmp_path / "long.idx")
    (tmp_path / "magic.idx").write_bytes(struct.pack(">I", 0x00000D03) + raw[4:])  # float64 code
    with pytest.raises(ValueError, match=r"magic\.idx.*magic number 0x00000d03"):
        data.read_idx(tmp_path / "magic.idx")
    (tmp_path / "tiny.idx").write_bytes(b"\0\0")
    with pytest.raises(ValueError, match=r"tiny\.idx.*truncated"):
        data.read_idx(tmp_path / "tiny.idx")


# --------------------------------------------------------------------------------------------
# download() against a local fake mirror


def test_download_success_skips_a_dead_mirror(tmp_path, mirror):
    root, url = mirror
    payload = b"hello mnist" * 5000
    (root / "f.gz").write_bytes(payload)
    dest = tmp_path / "cache" / "f.gz"
    out = data.download([url + "missing/f.gz", url + "f.gz"], dest, _md5(payload))
    assert out == dest and dest.read_bytes() == payload
    assert not dest.with_suffix(".part").exists()


def test_download_skips_a_mirror_with_wrong_bytes(tmp_path, mirror):
    root, url = mirror
    (root / "a").mkdir()
    (root / "b").mkdir()
    (root / "a" / "f.gz").write_bytes(b"tampered")
    (root / "b" / "f.gz").write_bytes(b"genuine")
    dest = tmp_path / "f.gz"
    data.download([url + "a/f.gz", url + "b/f.gz"], dest, _md5(b"genuine"))
    assert dest.read_bytes() == b"genuine"


def test_download_reports_and_refetches_a_corrupted_existing_file(tmp_path, mirror):
    root, url = mirror
    (root / "f.gz").write_bytes(b"genuine bytes")
    dest = tmp_path / "f.gz"
    dest.write_bytes(b"corrupted bytes")
    good, bad = _md5(b"genuine bytes"), _md5(b"corrupted bytes")
    with pytest.warns(UserWarning, match=rf"f\.gz: md5 {bad} does not match the expected {good}"):
        data.download([url + "f.gz"], dest, good)
    assert data.md5sum(dest) == good


def test_download_keeps_a_good_existing_file_without_fetching(tmp_path, monkeypatch):
    dest = tmp_path / "f.gz"
    dest.write_bytes(b"genuine")

    def no_network(*args, **kwargs):
        raise AssertionError("urlopen must not be called")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    assert data.download(["http://127.0.0.1:1/f.gz"], dest, _md5(b"genuine")) == dest


def test_download_all_mirrors_fail(tmp_path, mirror):
    _, url = mirror
    dest = tmp_path / "f.gz"
    with pytest.raises(RuntimeError, match=r"(?s)could not download f\.gz.*404.*S4LITE_DATA.*--data-dir"):
        data.download([url + "nope/f.gz", url + "also-nope/f.gz"], dest, "0" * 32)
    assert not dest.exists() and not dest.with_suffix(".part").exists()


# --------------------------------------------------------------------------------------------
# finding and loading MNIST


def test_find_data_dir_order(tmp_path, monkeypatch):
    arg, env = tmp_path / "arg", tmp_path / "env"
    arg.mkdir()
    env.mkdir()
    assert data.find_data_dir() is None  # nothing set, no cache yet
    cache = data.default_cache_dir()
    assert cache == tmp_path / "home" / ".cache" / "s4lite" / "mnist"
    cache.mkdir(parents=True)
    assert data.find_data_dir() == cache
    monkeypatch.setenv("S4LITE_DATA", str(env))
    assert data.find_data_dir() == env
    assert data.find_data_dir(arg) == arg
    with pytest.raises(FileNotFoundError, match="data_dir"):
        data.find_data_dir(tmp_path / "absent")
    monkeypatch.setenv("S4LITE_DATA", str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="S4LITE_DATA"):
        data.find_data_dir()


def test_load_mnist_official_files_from_data_dir(tmp_path, monkeypatch, sample):
    table = write_split_files(tmp_path / "d", sample, data.MNIST_FILES)
    monkeypatch.setattr(data, "MNIST_FILES", table)
    x, y, source = data.load_mnist("train", tmp_path / "d", download=False)
    assert x.dtype == np.uint8 and y.dtype == np.uint8 and x.shape == (1024, 28, 28)
    np.testing.assert_array_equal(x, sample["x_train"])
    np.testing.assert_array_equal(y, sample["y_train"])
    assert source.startswith("official 60k")
    x, y, _ = data.load_mnist("TEST", tmp_path / "d", download=False)
    np.testing.assert_array_equal(x, sample["x_test"])


def test_load_mnist_uses_env_var(tmp_path, monkeypatch, sample):
    table = write_split_files(tmp_path / "d", sample, data.MNIST_FILES, keys=("test",))
    monkeypatch.setattr(data, "MNIST_FILES", {**data.MNIST_FILES, **table})
    monkeypatch.setenv("S4LITE_DATA", str(tmp_path / "d"))
    x, _, _ = data.load_mnist("test", download=False)
    np.testing.assert_array_equal(x, sample["x_test"])


def test_load_mnist_real_md5_rejects_sample_files(tmp_path, sample):
    # files with the official names but not the official bytes: reported, never used
    write_split_files(tmp_path / "d", sample, data.MNIST_FILES, keys=("test",))
    with pytest.warns(UserWarning) as records:
        with pytest.raises(ValueError, match=r"(?s)corrupted.*t10k-images-idx3-ubyte\.gz.*download=False"):
            data.load_mnist("test", tmp_path / "d", download=False)
    reported = " ".join(str(r.message) for r in records)
    for name, md5 in (data.MNIST_FILES["test_images"], data.MNIST_FILES["test_labels"]):
        assert f"{tmp_path / 'd' / name}: md5" in reported and f"expected {md5}" in reported


def test_load_mnist_falls_back_to_train10k_subset(tmp_path, monkeypatch, sample, caplog):
    table = write_split_files(tmp_path / "d", sample, data.SUBSET_FILES)
    monkeypatch.setattr(data, "SUBSET_FILES", table)
    with caplog.at_level(logging.INFO, logger="s4lite.data"):
        x, y, source = data.load_mnist("train", tmp_path / "d", download=False)
    assert source.startswith("train10k subset")
    assert "using the 10k subset" in caplog.text
    np.testing.assert_array_equal(y, sample["y_train"])
    # the subset is for training only
    with pytest.raises(FileNotFoundError):
        data.load_mnist("test", tmp_path / "d", download=False)


def test_load_mnist_refetches_corrupted_local_file_into_cache(tmp_path, monkeypatch, mirror, sample):
    root, url = mirror
    table = write_split_files(root, sample, data.MNIST_FILES, keys=("test",))
    monkeypatch.setattr(data, "MNIST_FILES", {**data.MNIST_FILES, **table})
    local = tmp_path / "d"
    local.mkdir()
    name = table["test_images"][0]
    (local / name).write_bytes(b"not mnist")  # corrupted copy; the labels are missing locally
    cache = tmp_path / "cache"
    with pytest.warns(UserWarning, match=rf"{name}: md5 {_md5(b'not mnist')}"):
        x, y, source = data.load_mnist("test", local, cache_dir=cache, mirrors=[url])
    np.testing.assert_array_equal(x, sample["x_test"])
    np.testing.assert_array_equal(y, sample["y_test"])
    assert source.startswith("official 10k test (downloaded")
    assert data.md5sum(cache / name) == table["test_images"][1]
    assert (local / name).read_bytes() == b"not mnist"  # the user's file is left alone


def test_load_mnist_downloads_into_default_cache(monkeypatch, mirror, sample):
    root, url = mirror
    table = write_split_files(root, sample, data.MNIST_FILES)
    monkeypatch.setattr(data, "MNIST_FILES", table)
    x, y, _ = data.load_mnist("train", mirrors=[url])
    np.testing.assert_array_equal(x, sample["x_train"])
    assert sorted(p.name for p in data.default_cache_dir().iterdir()) == sorted(
        table[k][0] for k in ("train_images", "train_labels")
    )
    # second call: found in the cache, no network needed
    x2, _, _ = data.load_mnist("train", mirrors=["http://127.0.0.1:1/"])
    np.testing.assert_array_equal(x2, x)


def test_missing_data_error_says_what_to_do(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError) as info:
        data.load_mnist("train", tmp_path / "empty", download=False)
    msg = str(info.value)
    for needle in ("S4LITE_DATA", "--data-dir", "network", "train-images-idx3-ubyte.gz",
                   "t10k-labels-idx1-ubyte.gz", "train10k-images-idx3-ubyte.gz", str(tmp_path / "empty")):
        assert needle in msg


def test_corrupted_file_whose_download_fails_is_reported_as_corrupted(tmp_path, mirror):
    """Not "not found": the file is there, and it is wrong."""
    _, url = mirror
    local = tmp_path / "d"
    local.mkdir()
    name = data.MNIST_FILES["test_images"][0]
    (local / name).write_bytes(b"not mnist")
    with pytest.warns(UserWarning, match=f"{name}: md5"):
        with pytest.raises(ValueError, match=rf"(?s)^corrupted MNIST file.*{name}.*download of fresh copies failed"):
            data.load_mnist("test", local, cache_dir=tmp_path / "cache", mirrors=[url + "nothing-here/"])


def test_failed_download_error_says_what_to_do(mirror):
    _, url = mirror
    with pytest.raises(FileNotFoundError, match=r"(?s)download failed.*S4LITE_DATA.*--data-dir"):
        data.load_mnist("test", mirrors=[url + "nothing-here/"])


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="split"):
        data.load_mnist("validation")
    with pytest.raises(ValueError, match="task"):
        data.load_task("cifar", sample=True)
    with pytest.raises(ValueError, match="limit_train"):
        data.load_task("smnist", sample=True, limit_train=0)
    with pytest.raises(ValueError, match="images"):
        data.to_sequences(np.zeros((2, 28, 28), np.float32))
    with pytest.raises(ValueError, match="images"):
        data.to_sequences(np.zeros((2, 27, 28), np.uint8))


# --------------------------------------------------------------------------------------------
# sequences and permutations


def test_to_sequences_shape_order_and_normalization():
    images = np.zeros((3, 28, 28), np.uint8)
    images[0, 2, 5] = 255  # row 2, column 5 -> time step 2*28 + 5 = 61
    images[1] = 128
    seqs = data.to_sequences(images)
    assert seqs.shape == (3, 784, 1) and seqs.dtype == np.float32
    black, white = -0.1307 / 0.3081, (1 - 0.1307) / 0.3081
    assert np.argmax(seqs[0, :, 0]) == 61
    np.testing.assert_allclose(seqs[0, 61, 0], white, rtol=1e-6)
    np.testing.assert_allclose(np.delete(seqs[0, :, 0], 61), black, rtol=1e-6)
    np.testing.assert_allclose(seqs[1], (128 / 255 - 0.1307) / 0.3081, rtol=1e-6)
    np.testing.assert_array_equal(data.to_sequences(images.reshape(3, 784)), seqs)


def test_to_sequences_standardizes_real_digits(sample):
    seqs = data.to_sequences(sample["x_train"])
    # MNIST statistics: on ~1000 real digits the mean is ~0 and the std ~1 (sampling error ~1%)
    assert abs(float(seqs.mean())) < 0.03
    assert abs(float(seqs.std()) - 1.0) < 0.03


def test_permutation_is_a_fixed_permutation():
    p = data.permutation()
    assert p.shape == (784,)
    np.testing.assert_array_equal(np.sort(p), np.arange(784))
    np.testing.assert_array_equal(p, data.permutation(0))
    np.testing.assert_array_equal(p, np.random.default_rng(0).permutation(784))
    assert not np.array_equal(p, data.permutation(1))
    assert not np.array_equal(p, np.arange(784))
    np.testing.assert_array_equal(np.sort(data.permutation(3, length=10)), np.arange(10))


def test_permute_reorders_time_axis():
    seqs = np.arange(2 * 5 * 1).reshape(2, 5, 1)
    perm = np.array([4, 0, 3, 1, 2])
    out = data.permute(seqs, perm)
    np.testing.assert_array_equal(out[:, :, 0], [[4, 0, 3, 1, 2], [9, 5, 8, 6, 7]])
    with pytest.raises(ValueError, match="perm"):
        data.permute(seqs, np.array([0, 0, 1, 2, 3]))
    with pytest.raises(ValueError, match="perm"):
        data.permute(seqs, np.arange(4))


def test_load_task_sample(sample):
    s = data.load_task("smnist", sample=True)
    assert s["source"].startswith("shipped sample")
    assert s["x_train"].shape == (1024, 784, 1) and s["x_train"].dtype == np.float32
    assert s["x_test"].shape == (512, 784, 1)
    assert s["y_train"].dtype == np.int32 and s["y_test"].dtype == np.int32
    np.testing.assert_array_equal(s["y_train"], sample["y_train"])
    np.testing.assert_array_equal(s["x_train"], data.to_sequences(sample["x_train"]))
    p = data.load_task("psmnist", sample=True, limit_train=100, limit_test=10)
    assert p["x_train"].shape == (100, 784, 1) and p["x_test"].shape == (10, 784, 1)
    np.testing.assert_array_equal(p["x_train"], data.permute(s["x_train"][:100], data.permutation(0)))
    np.testing.assert_array_equal(p["y_test"], s["y_test"][:10])


def test_load_task_from_files(tmp_path, monkeypatch, sample):
    table = write_split_files(tmp_path / "d", sample, data.MNIST_FILES)
    monkeypatch.setattr(data, "MNIST_FILES", table)
    t = data.load_task("smnist", tmp_path / "d", limit_test=64, download=False)
    assert t["source"].startswith("official 60k")
    assert t["x_train"].shape == (1024, 784, 1) and t["x_test"].shape == (64, 784, 1)


# --------------------------------------------------------------------------------------------
# the real offline copy (only on machines that have it)

needs_offline = pytest.mark.skipif(
    not OFFLINE.exists(), reason=f"the offline MNIST copy {OFFLINE} is only on the development machine"
)


@needs_offline
def test_offline_files_md5_and_label_counts():
    for table in (data.SUBSET_FILES, {k: v for k, v in data.MNIST_FILES.items() if k.startswith("test")}):
        for name, md5 in table.values():
            assert data.md5sum(OFFLINE / name) == md5, name
    x, y, source = data.load_mnist("train", OFFLINE, download=False)
    assert source.startswith("train10k subset")
    assert x.shape == (10000, 28, 28)
    assert np.bincount(y, minlength=10).tolist() == [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
    x, y, source = data.load_mnist("test", OFFLINE, download=False)
    assert source.startswith("official 10k test") and x.shape == (10000, 28, 28)
    assert np.bincount(y, minlength=10).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@needs_offline
def test_shipped_sample_is_reproducible_from_offline_files():
    with np.load(data.SAMPLE_PATH, allow_pickle=False) as f:
        i_tr, i_te = f["train_index"], f["test_index"]
        shipped = {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    x_tr, y_tr, _ = data.load_mnist("train", OFFLINE, download=False)
    x_te, y_te, _ = data.load_mnist("test", OFFLINE, download=False)
    np.testing.assert_array_equal(i_tr, data.stratified_indices(y_tr, 1024, seed=0))
    np.testing.assert_array_equal(i_te, data.stratified_indices(y_te, 512, seed=1))
    np.testing.assert_array_equal(shipped["x_train"], x_tr[i_tr])
    np.testing.assert_array_equal(shipped["y_train"], y_tr[i_tr])
    np.testing.assert_array_equal(shipped["x_test"], x_te[i_te])
    np.testing.assert_array_equal(shipped["y_test"], y_te[i_te])
