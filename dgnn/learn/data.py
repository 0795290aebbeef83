"""Offline datasets with fixed stratified splits: scikit-learn digits, MNIST-1D (generated locally), the NORTH*
toy task (seed 001, section 6.3.2) and real MNIST / Fashion-MNIST IDX files."""
from __future__ import annotations

import functools
import gzip
import random
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .config import DatasetConfig

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"),
              0x0E: np.dtype(">f8")}


@dataclass
class Dataset:
    """Standardised float features (train statistics) and integer labels 0..C-1, split three ways."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def n_features(self) -> int:
        return self.x_train.shape[1]

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_val.max(), self.y_test.max())) + 1


# ----------------------------------------------------------------------------------------------------- IDX files
def read_idx(path: str | Path) -> np.ndarray:
    """An IDX array (the MNIST format, optionally gzip-compressed): magic 0 0 type ndim, big-endian dims, data."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            head = fh.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _IDX_TYPES:
                raise ConfigError(f"{path}: not an IDX file (bad magic number {head.hex()})")
            ndim = head[3]
            dims = struct.unpack(f">{ndim}I", fh.read(4 * ndim))
            dtype = np.dtype(_IDX_TYPES[head[2]])
            raw = fh.read()
    except FileNotFoundError:
        raise ConfigError(f"{path}: IDX file not found") from None
    except (OSError, struct.error) as exc:
        raise ConfigError(f"{path}: cannot read IDX file ({exc})") from None
    need = int(np.prod(dims)) * dtype.itemsize
    if len(raw) != need:
        raise ConfigError(f"{path}: IDX header says {dims} ({need} bytes of data) but the file holds {len(raw)}")
    return np.frombuffer(raw, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write an array as IDX (gzip when the name ends in .gz); uint8, int8, int16, int32, float32, float64."""
    array = np.asarray(array)
    code = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B, np.dtype(np.int32): 0x0C,
            np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}.get(array.dtype)
    if code is None:
        raise ValueError(f"IDX cannot hold dtype {array.dtype}")
    body = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    body += array.astype(array.dtype.newbyteorder(">")).tobytes()
    path = Path(path)
    with (gzip.open if path.suffix == ".gz" else open)(path, "wb") as fh:
        fh.write(body)


# ---------------------------------------------------------------------------------------------- generators
def _frozen(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    for a in arrays:
        a.setflags(write=False)
    return arrays


@functools.lru_cache(maxsize=4)  # generated once per process (read-only arrays)
def digits_xy() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits (1797 samples, bundled with the package: no download)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return _frozen(d.data.astype(np.float64), d.target.astype(np.int64))


@functools.lru_cache(maxsize=4)  # generated once per process (read-only arrays)
def mnist1d_xy(samples: int, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-1D generated locally by the `mnist1d` package (40-sample sequences, 10 classes). Its generator seeds
    the global numpy and random states, so they are saved and restored around the call."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = seed
    if samples:
        args.num_samples = samples
    saved_np, saved_py = np.random.get_state(), random.getstate()
    try:
        d = make_dataset(args)
    finally:
        np.random.set_state(saved_np)
        random.setstate(saved_py)
    x = np.concatenate([d["x"], d["x_test"]]).astype(np.float64)
    y = np.concatenate([d["y"], d["y_test"]]).astype(np.int64)
    return _frozen(x, y)


@functools.lru_cache(maxsize=4)  # generated once per process (read-only arrays)
def north_toy_xy(n_f: int, samples: int = 5000, seed: int = 0, noise: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Seed 001, section 6.3.2: n_f independent standard-normal features, the other 64 - n_f random linear
    combinations of them; label = (sum of all 64 features + 10% noise) > its mean."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((samples, n_f))
    mix = rng.standard_normal((n_f, 64 - n_f))
    x = np.concatenate([base, base @ mix], axis=1)
    total = x.sum(1)
    total = total + noise * total.std() * rng.standard_normal(samples)
    return _frozen(x, (total > total.mean()).astype(np.int64))


# ----------------------------------------------------------------------------------------------------- splits
def stratified_split(y: np.ndarray, fractions: tuple[float, float], seed: int) -> tuple[np.ndarray, ...]:
    """Index arrays (train, validation, test) with each class split in the same proportions, fixed by seed."""
    rng = np.random.default_rng(seed)
    parts = ([], [], [])
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_val, n_test = int(round(fractions[0] * len(idx))), int(round(fractions[1] * len(idx)))
        parts[1].append(idx[:n_val])
        parts[2].append(idx[n_val:n_val + n_test])
        parts[0].append(idx[n_val + n_test:])
    return tuple(rng.permutation(np.concatenate(p)) for p in parts)


def load_dataset(cfg: DatasetConfig, seed: int) -> Dataset:
    """The task of `cfg` with the split of `seed` (generators use their own fixed seeds: the data are one set)."""
    if cfg.name == "digits":
        x, y = digits_xy()
    elif cfg.name == "mnist1d":
        x, y = mnist1d_xy(cfg.samples)
    elif cfg.name == "north_toy":
        x, y = north_toy_xy(cfg.features, cfg.samples or 5000)
    else:
        x, y = read_idx(cfg.images), read_idx(cfg.labels)
        if x.shape[0] != y.shape[0]:
            raise ConfigError(f"{cfg.images}, {cfg.labels}: {x.shape[0]} images but {y.shape[0]} labels")
        x, y = x.reshape(x.shape[0], -1).astype(np.float64), y.astype(np.int64).ravel()
        if cfg.limit:
            keep = stratified_split(y, (0.0, 1.0 - cfg.limit / len(y)), 12345)[0] if cfg.limit < len(y) else slice(None)
            x, y = x[keep], y[keep]
    if cfg.classes:
        missing = sorted(set(cfg.classes) - set(np.unique(y).tolist()))
        if missing:
            raise ConfigError(f"datasets: {cfg.name} has no class {missing[0]} (classes: {np.unique(y).tolist()})")
        keep = np.isin(y, cfg.classes)
        remap = {c: i for i, c in enumerate(cfg.classes)}
        x, y = x[keep], np.array([remap[int(v)] for v in y[keep]])
    tr, va, te = stratified_split(y, (cfg.validation, cfg.test), seed)
    mu, sd = x[tr].mean(0), x[tr].std(0)
    sd[sd == 0] = 1.0  # constant pixels (digits' border) stay 0
    z = (x - mu) / sd
    return Dataset(cfg.label, z[tr], y[tr], z[va], y[va], z[te], y[te])
