"""Typed, frozen configuration of a learning task: datasets, models (MLPs, oscillator and glial nets), training."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from ..config import MetabolismConfig, StrictModel
from ..solvers import check_method, is_fixed_step


class DatasetConfig(StrictModel):
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


GLIAL_KEYS = {"glia_ratio": 1.0, "c_gn": 0.5, "c_ng": 0.5, "nu": 0.0}  # kind glial's keys and their defaults
# the largest |lambda| dt on the negative real axis that each explicit fixed-step method keeps stable
REAL_STABILITY = {"euler": 2.0, "midpoint": 2.0, "rk4": 2.785}


class ModelConfig(StrictModel):
    """A weight-based MLP, a phase-based oscillator network, or a glial-neural one (see docs/learning.md and
    docs/glial.md). Times are in the settling's dimensionless time units, phases in rad, energies in the units of
    the metabolism block."""

    kind: Literal["mlp", "oscillator", "glial", "strategy"] = Field(
        description="mlp; oscillator (phase oscillators); glial (oscillators with the reference model's glia and reserves); "
                    "strategy (a registered structural-learning strategy from dgnn.search, run instead of train())")
    strategy: str | None = Field(None, description="kind strategy: its registered name (nne, nne_signsgd, ...)")
    options: dict = Field({}, description="kind strategy: its keys, checked by dgnn.search.make_strategy")
    budget: dict = Field({}, description="kind strategy: steps / seconds / energy of its fit (dgnn.search.Budget)")
    hidden: list[int] = Field([128], description="hidden layer widths, units per layer")
    activation: Literal["relu", "tanh", "sigmoid", "gelu"] = Field("relu", description="mlp: hidden activation")
    # oscillator and glial networks
    parameterization: Literal["weight", "phase"] = Field(
        "weight", description="trainable coupling magnitudes (weight) or trainable phase lags in rad (phase)")
    encoding: Literal["clamp", "drive"] = Field(
        "clamp", description="inputs as clamped phases (clamp) or as input oscillators with a frequency drive (drive)")
    input_scale: float = Field(1.5707963267948966, gt=0.0,
                               description="rad: theta_in = input_scale tanh(x / input_width) (drive: rad / time)")
    input_width: float = Field(1.0, gt=0.0, description="standardised input units mapped to one tanh width")
    potential: Literal["kuramoto", "hkb"] = Field("kuramoto", description="pair potential of the coupling")
    b: float = Field(0.0, description="HKB second-harmonic weight b / a (a = 1), dimensionless")
    recurrent: bool = Field(False, description="coupling inside each oscillator layer")
    glia: bool = Field(False, description="kind oscillator: a trainable per-unit gain in (0, 2) on each unit's coupling")
    coupling: float = Field(1.0, gt=0.0, description="rad / time: fixed magnitude scale (phase) or init scale (weight)")
    settle_time: float = Field(10.0, gt=0.0, description="time units each inference settles for")
    dt: float = Field(0.25, gt=0.0, description="solver step, time units")
    method: str = Field("rk4", description="solver method (dgnn.solve: native or torchdiffeq)")
    adjoint: bool = Field(False, description="gradients by torchdiffeq's adjoint instead of backprop through steps")
    max_rate: float = Field(8.0, gt=0.0, description="1 / time: each unit's total coupling is capped at "
                                                     "min(max_rate, 2 / dt), inside rk4's stability region")
    readout_norm: float = Field(0.0, ge=0.0, description="> 0: readout rows projected to this L2 norm (dimensionless)")
    # kind glial (dgnn.learn.glial); None on every other kind, filled with GLIAL_KEYS' defaults for kind glial
    glia_ratio: float | None = Field(None, ge=0.0, le=6.0, description="kind glial: glial cells per unit; a layer of "
                                     "H units has G = round(glia_ratio H) glia in min(H, G) domains (default 1)")
    c_gn: float | None = Field(None, description="kind glial: glia -> neuron coupling, rad / time (default 0.5)")
    c_ng: float | None = Field(None, description="kind glial: neuron -> glia coupling, rad / time (default 0.5)")
    nu: float | None = Field(None, description="kind glial: glial natural frequency, rad / time (default 0: the "
                                              "settling has fixed points)")
    match_parameters: str | None = Field(None, description="name of another model whose parameter count this "
                                                           "one's width matches")
    train: "TrainOverride | None" = Field(None, description="this model's own training settings over the train block's")
    metabolism: MetabolismConfig = Field(
        MetabolismConfig(), description="powers of the `metabolic` energy measure (p_base, p_act, p_syn); kind glial "
                                        "also its reserves (supply, e_max, e_init, k_m, p_glia)")

    @model_validator(mode="before")
    @classmethod
    def _glial_defaults(cls, data):
        if isinstance(data, dict) and data.get("kind") == "glial":
            data = {**data, **{k: v for k, v in GLIAL_KEYS.items() if data.get(k) is None}}
        return data

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
        if self.kind == "glial":
            self._check_glial()
        else:
            for key in GLIAL_KEYS:
                if getattr(self, key) is not None:
                    raise ValueError(f"{key}: a key of kind glial only (this model is kind {self.kind})")
        return self

    def glia_counts(self) -> list[int]:
        """kind glial: glial cells per hidden layer, G_l = round(glia_ratio x H_l)."""
        return [int(round(self.glia_ratio * h)) for h in self.hidden]

    def _check_glial(self) -> None:
        """kind glial: glia in every layer or none, no per-unit gain, and steps inside the explicit method's region."""
        if self.glia:
            raise ValueError("glia: the per-unit gain of kind oscillator; kind glial's glia are set by glia_ratio")
        if self.adjoint:
            raise ValueError("adjoint: kind glial clamps its reserves after every step, which the adjoint cannot "
                             "replay; use adjoint: false")
        if self.metabolism.schedule:
            raise ValueError("metabolism.schedule: behavioural states switch over a run, not within one inference; "
                             "kind glial uses a constant supply")
        counts = self.glia_counts()
        if self.glia_ratio > 0 and min(counts) == 0:
            h = self.hidden[counts.index(0)]
            raise ValueError(f"glia_ratio: {self.glia_ratio} x {h} units rounds to no glial cell in layer "
                             f"{counts.index(0) + 1}; use 0 (no glia) or more than {0.5 / h:.3g}")
        try:
            check_method(self.method, noisy=False)
        except ValueError as exc:
            raise ValueError(f"method: {exc}") from None
        if is_fixed_step(self.method) and self.method not in REAL_STABILITY:
            raise ValueError(f"method: kind glial checks its steps for {', '.join(REAL_STABILITY)} (fixed step) and "
                             f"the adaptive methods; found {self.method!r}")
        limit = REAL_STABILITY.get(self.method)
        if limit is None or not self.glia_ratio:
            return
        cap = min(self.max_rate, 2.0 / self.dt)  # the coupling's own rate cap (OscillatorLayer.max_rate)
        # Gershgorin: a neuron's rows reach cap + 2 |c_gn|, a glial cell's 2 |c_ng|; the reserve relaxes at
        # supply x (glia per domain) / e_max (dgnn.config's rule for the simulator: rate x dt <= 1)
        if (cap + 2 * abs(self.c_gn)) * self.dt > limit:
            raise ValueError(f"c_gn: (coupling cap {cap:g} + 2 |c_gn|) x dt = {(cap + 2 * abs(self.c_gn)) * self.dt:.3g} "
                             f"> {limit} ({self.method}'s stability limit); lower |c_gn|, max_rate or dt")
        if 2 * abs(self.c_ng) * self.dt > limit:
            raise ValueError(f"c_ng: 2 |c_ng| x dt = {2 * abs(self.c_ng) * self.dt:.3g} > {limit} ({self.method}'s "
                             "stability limit); lower |c_ng| or dt")
        per_domain = max(-(-g // min(h, g)) for g, h in zip(counts, self.hidden))
        rate = self.metabolism.supply * per_domain / self.metabolism.e_max
        if rate * self.dt > 1.0:
            raise ValueError(f"metabolism.supply: reserve relaxation rate supply x glia per domain / e_max = {rate:.3g} "
                             f"times dt={self.dt} is {rate * self.dt:.3g} > 1: explicit steps go unstable; reduce dt "
                             f"below {1.0 / rate:.3g}, lower the supply or raise metabolism.e_max")


class TrainConfig(StrictModel):
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(3e-3, gt=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)  # sgd
    weight_decay: float = Field(0.0, ge=0.0)
    batch_size: int = Field(64, ge=1)
    epochs: int = Field(60, ge=1)
    patience: int = Field(10, ge=1)  # early stopping on validation accuracy
    max_seconds: float = Field(0.0, ge=0.0)  # 0 = no wall-clock budget


class TrainOverride(StrictModel):
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
