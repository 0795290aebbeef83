"""Typed, frozen configuration of a learning task: datasets, models (MLPs, oscillator nets) and training."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from ..config import MetabolismConfig, _Model


class DatasetConfig(_Model):
    """One task. Splits are stratified and fixed per seed; features are standardised with training statistics."""

    name: Literal["digits", "mnist1d", "north_toy", "idx"]
    classes: list[int] | None = None  # keep only these labels (e.g. [0, 1, 2, 3, 4]), relabelled 0..k-1
    samples: int = Field(0, ge=0)  # mnist1d / north_toy: samples to generate (0 = the generator's default)
    features: int = Field(8, ge=1, le=64)  # north_toy: independent features n_f of the 64
    images: str | None = None  # idx: image file (train and test are pooled, then split like the others)
    labels: str | None = None
    limit: int = Field(0, ge=0)  # idx: use at most this many samples (0 = all)
    validation: float = Field(0.15, gt=0.0, lt=0.5)
    test: float = Field(0.2, gt=0.0, lt=0.5)

    @model_validator(mode="after")
    def _check(self):
        if self.name == "idx" and (not self.images or not self.labels):
            raise ValueError("name 'idx' needs 'images' and 'labels' (paths to IDX files, optionally .gz)")
        if self.name != "idx" and (self.images or self.labels):
            raise ValueError(f"'images' / 'labels' are only used with name: idx (found name: {self.name})")
        return self

    @property
    def label(self) -> str:
        tag = {"north_toy": f"north_toy{self.features}"}.get(self.name, self.name)
        if self.name == "idx":
            tag = Path(self.images).name.split(".")[0]
        return tag + (f"[{','.join(map(str, self.classes))}]" if self.classes else "")


class ModelConfig(_Model):
    """A weight-based MLP or a phase-based oscillator network (see README 'Learning')."""

    kind: Literal["mlp", "oscillator", "strategy"]
    # kind: strategy runs a registered structural-learning strategy (dgnn.search) instead of train():
    strategy: str | None = None  # its registered name (nne, nne_signsgd, sparse_sgd, dnn, ...)
    options: dict = {}  # its keys, checked by dgnn.search.make_strategy
    budget: dict = {}  # steps / seconds / energy for its fit (dgnn.search.Budget)
    hidden: list[int] = [128]
    activation: Literal["relu", "tanh", "sigmoid", "gelu"] = "relu"  # mlp
    # oscillator networks
    parameterization: Literal["weight", "phase"] = "weight"  # trainable magnitudes, or trainable lags
    encoding: Literal["clamp", "drive"] = "clamp"  # clamped input phases, or input-dependent frequency drive
    input_scale: float = Field(1.5707963267948966, gt=0.0)  # theta_in = input_scale * tanh(x / input_width)
    input_width: float = Field(1.0, gt=0.0)  # standardised inputs beyond ~2 widths all map near +-input_scale
    potential: Literal["kuramoto", "hkb"] = "kuramoto"
    b: float = 0.0  # second-harmonic weight of the HKB potential (b / a with a = 1)
    recurrent: bool = False  # coupling inside each oscillator layer
    glia: bool = False  # glial modulation: each layer's coupling gated by a trainable per-unit gain in (0, 2)
    coupling: float = Field(1.0, gt=0.0)  # fixed magnitude scale for the 'phase' parameterisation, init scale otherwise
    settle_time: float = Field(10.0, gt=0.0)
    dt: float = Field(0.25, gt=0.0)
    method: str = "rk4"
    adjoint: bool = False
    max_rate: float = Field(8.0, gt=0.0)  # coupling per unit is rescaled so that rate x dt stays below rk4's limit
    readout_norm: float = Field(0.0, ge=0.0)  # > 0: readout rows projected to this L2 norm (fixed-norm readout)
    match_parameters: str | None = None  # name of another model whose parameter count this one's width matches
    train: "TrainOverride | None" = None  # this model's own training settings over the train block's
    metabolism: MetabolismConfig = MetabolismConfig()  # p_base, p_act, p_syn of the `metabolic` energy measure

    @model_validator(mode="after")
    def _check(self):
        if not self.hidden:
            raise ValueError("hidden must list at least one layer width")
        if any(h < 1 for h in self.hidden):
            raise ValueError(f"layer widths must be >= 1, found {self.hidden}")
        if (self.kind == "strategy") != (self.strategy is not None):
            raise ValueError("'strategy' names the registered strategy of kind: strategy (and only of that kind)")
        if self.kind == "strategy" and (self.match_parameters or self.train):
            raise ValueError("a strategy sets its own network and training: drop match_parameters / train")
        if self.potential == "kuramoto" and self.b != 0.0:
            raise ValueError("b is the HKB second harmonic; set potential: hkb to use it")
        if self.kind != "mlp" and self.encoding == "drive" and self.input_scale >= 1.0:
            raise ValueError("encoding 'drive' needs input_scale < 1 (drive / pinning ratio; the inputs settle at "
                             f"asin(input_scale tanh x)), found {self.input_scale}")
        return self


class TrainConfig(_Model):
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(3e-3, gt=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)  # sgd
    weight_decay: float = Field(0.0, ge=0.0)
    batch_size: int = Field(64, ge=1)
    epochs: int = Field(60, ge=1)
    patience: int = Field(10, ge=1)  # early stopping on validation accuracy
    max_seconds: float = Field(0.0, ge=0.0)  # 0 = no wall-clock budget


class TrainOverride(_Model):
    """Training keys one model sets for itself (oscillator nets may want another rate or patience than MLPs)."""

    optimizer: Literal["adam", "sgd"] | None = None
    lr: float | None = Field(None, gt=0.0)
    batch_size: int | None = Field(None, ge=1)
    epochs: int | None = Field(None, ge=1)
    patience: int | None = Field(None, ge=1)
    max_seconds: float | None = Field(None, ge=0.0)

    def apply(self, base: TrainConfig) -> TrainConfig:
        return base.model_copy(update={k: v for k, v in self.model_dump().items() if v is not None})


ModelConfig.model_rebuild()
