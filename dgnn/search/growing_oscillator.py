"""A phase-based oscillator net (dgnn.learn's OscillatorNet) whose hidden layers gain and lose units while it
trains: the developmental strategy's net.

Every coupling is stored per connection as a magnitude m_hj (and, for the 'phase' parameterisation, a lag
alpha_hj), so that a unit can be added or removed without touching the others:

    weight  m trainable (signed), no lags: OscillatorNet's 'weight' parameterisation
    phase   alpha trainable, m fixed per connection at coupling / sqrt(fan-in at creation), times a trainable
            strength s_j per source unit of a hidden layer (1 for the start units): a grown unit's s starts at 0,
            so its outgoing couplings are 0 at insertion and learn from there

Adding k units to layer l appends k rows to layer l's couplings and k sources (zero coupling) to layer l + 1, or
k zero columns to each of the readout's cos and sin blocks after the last layer: every other unit's phase, and
so every output, is unchanged (to rounding). An optimiser passed to `add_units` / `remove_units` / `merge_unit`
keeps its state for the surviving entries (Adam moments are carried, new entries start at 0). A subclass with more
per-unit state (glial cells per layer, say) extends `_resized`, which runs after every change of width.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError
from ..learn.config import ModelConfig
from ..learn.models import OscillatorLayer, OscillatorNet
from .growing import swap_parameter

ROWS = ("mag", "bias_mag", "lag", "bias_lag", "glia")  # per unit of the layer (dim 0)
SOURCES = {"mag": 1, "lag": 1, "strength": 0}  # per source unit (the dim that indexes the source)


class GrowingOscillatorLayer(OscillatorLayer):
    """An OscillatorLayer with per-connection magnitudes, resizable in its units and in its sources."""

    def __init__(self, layer: OscillatorLayer, hidden_sources: bool):
        """Carries `layer`'s couplings over (the same function); hidden_sources: its sources are hidden units
        (which may grow), not the inputs."""
        nn.Module.__init__(self)
        if getattr(layer, "rec_lag", None) is not None or getattr(layer, "rec_mag", None) is not None:
            raise ConfigError("recurrent: a growing oscillator net is feed-forward (recurrent=False)")
        self.phase_param, self.b, self.max_rate, self.fixed = layer.phase_param, layer.b, layer.max_rate, layer.fixed
        self.glia = layer.glia
        self.rec_lag = self.rec_mag = None
        if self.phase_param:
            self.lag, self.bias_lag = layer.lag, layer.bias_lag
            self.register_buffer("mag", torch.full_like(layer.lag.detach(), layer.fixed))
            self.register_buffer("bias_mag", torch.full_like(layer.bias_lag.detach(), layer.fixed))
            n_src = layer.lag.shape[1]
            self.strength = nn.Parameter(torch.ones(n_src, dtype=layer.lag.dtype)) if hidden_sources else None
        else:
            self.mag, self.bias_mag = layer.mag, layer.bias_mag
            self.lag = self.bias_lag = self.strength = None

    @property
    def units(self) -> int:
        return int(self.bias_mag.numel())

    def magnitudes(self) -> torch.Tensor:
        """(H, n_in) effective feed-forward magnitudes m_hj s_j."""
        return self.mag * self.strength if self.strength is not None else self.mag

    def complex_weights(self, harmonic: int):
        m = self.magnitudes()
        if self.lag is None:
            return (m, None), (self.bias_mag, None), None
        k = harmonic
        return ((m * torch.cos(k * self.lag), m * torch.sin(k * self.lag)),
                (self.bias_mag * torch.cos(k * self.bias_lag), self.bias_mag * torch.sin(k * self.bias_lag)), None)

    def total_coupling(self) -> torch.Tensor:
        """(H,) sum over sources of |m| x (a + 4|b|): bounds the unit's relaxation rate."""
        return (self.magnitudes().abs().sum(1) + self.bias_mag.abs()) * (1.0 + 4.0 * abs(self.b))

    def source_norms(self) -> torch.Tensor:
        """(n_in,) L2 norm of each source's outgoing magnitudes into this layer."""
        return self.magnitudes().detach().norm(dim=0)

    # -------------------------------------------------------------------------------------------- resizing
    def _replace(self, name: str, value: torch.Tensor, remap, opt) -> None:
        old = getattr(self, name)
        if old is None:
            return
        if isinstance(old, nn.Parameter):
            new = nn.Parameter(value)
            swap_parameter(opt, old, new, remap)
            setattr(self, name, new)
        else:
            setattr(self, name, value)  # a buffer (the fixed magnitudes of 'phase')

    @torch.no_grad()
    def add_rows(self, rows: dict[str, torch.Tensor], opt=None) -> None:
        """Append k units: rows maps mag (k, n_in), bias_mag (k,) and, for 'phase', lag and bias_lag to values."""
        k = rows["bias_mag"].shape[0]
        for name in ROWS:
            old = getattr(self, name)
            if old is None:
                continue
            extra = rows[name] if name in rows else torch.zeros(k, *old.shape[1:], dtype=old.dtype)
            grow = lambda v: torch.cat([v, v.new_zeros(k, *v.shape[1:])], 0)  # noqa: E731
            self._replace(name, torch.cat([old.detach(), extra.to(old.dtype)], 0), grow, opt)

    @torch.no_grad()
    def add_sources(self, k: int, lag: torch.Tensor | None, opt=None) -> None:
        """Append k source units whose couplings into this layer are 0 ('weight': m = 0; 'phase': m = fixed,
        s = 0, lags `lag` (H, k))."""
        cols = {"mag": torch.full((self.units, k), self.fixed if self.phase_param else 0.0), "lag": lag,
                "strength": torch.zeros(k)}
        for name, dim in SOURCES.items():
            old = getattr(self, name)
            if old is None:
                continue
            grow = lambda v, d=dim: torch.cat([v, v.new_zeros(*v.shape[:d], k)], d)  # noqa: E731
            self._replace(name, torch.cat([old.detach(), cols[name].to(old.dtype)], dim), grow, opt)

    @torch.no_grad()
    def keep_rows(self, keep: torch.Tensor, opt=None) -> None:
        for name in ROWS:
            old = getattr(self, name)
            if old is not None:
                self._replace(name, old.detach()[keep].clone(), lambda v: v[keep], opt)

    @torch.no_grad()
    def keep_sources(self, keep: torch.Tensor, opt=None) -> None:
        for name, dim in SOURCES.items():
            old = getattr(self, name)
            if old is not None:
                pick = (lambda v: v[:, keep]) if dim else (lambda v: v[keep])
                self._replace(name, pick(old.detach()).clone(), pick, opt)

    @torch.no_grad()
    def merge_source(self, a: int, b: int, delta: float) -> None:
        """Fold source a's couplings into source b's, for theta_a = theta_b + delta: the complex couplings add,
        z_hb <- z_hb + z_ha e^{i delta} (exact for the first harmonic; 'weight' keeps the in-phase part,
        m_ha cos delta). Source a is left in place (remove it next)."""
        m = self.magnitudes()
        if self.lag is None:
            self.mag[:, b] += m[:, a] * math.cos(delta)
            return
        za = torch.polar(m[:, a].double().abs(), self.lag[:, a].double() + delta + math.pi * (m[:, a] < 0))
        zb = torch.polar(m[:, b].double().abs(), self.lag[:, b].double() + math.pi * (m[:, b] < 0))
        z = za + zb  # (H,)
        s = float(self.strength[b]) if self.strength is not None else 1.0
        if abs(s) < 1e-12:  # a source of zero strength cannot carry the sum: give it unit strength
            self.strength[b] = s = 1.0
        self.lag[:, b] = torch.angle(z).to(self.lag.dtype)
        self.mag[:, b] = (z.abs() / s).to(self.mag.dtype)


class GrowingOscillatorNet(OscillatorNet):
    """OscillatorNet with resizable hidden layers; forward returns (logits, hidden phases) as OscillatorNet."""

    kind = "growing_oscillator"

    def __init__(self, n_in: int, n_out: int, cfg: ModelConfig, gen: torch.Generator, dtype=torch.float32):
        if cfg.recurrent:
            raise ConfigError("recurrent: a growing oscillator net is feed-forward (recurrent=False)")
        super().__init__(n_in, n_out, cfg, gen, dtype)
        self.layers = nn.ModuleList([GrowingOscillatorLayer(layer, l > 0) for l, layer in enumerate(self.layers)])

    @property
    def widths(self) -> list[int]:
        return [layer.units for layer in self.layers]

    def _resized(self) -> None:
        """After a change of width: the config's hidden widths (MACs) and the state layout follow."""
        self.cfg = self.cfg.model_copy(update={"hidden": self.widths})
        self.offsets = torch.cumsum(torch.tensor([0] + self.widths), 0).tolist()

    def phases(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The settled hidden phases of every layer, (B, H_l) each."""
        return self.hidden_phases(self.settle(x))

    def fan_out_norms(self, layer: int) -> torch.Tensor:
        """(H_l,) L2 norm of each unit's outgoing couplings (next layer's magnitudes, or its readout columns)."""
        if layer + 1 < len(self.layers):
            return self.layers[layer + 1].source_norms()
        w = self.readout.weight.detach()
        h = w.shape[1] // 2
        return torch.sqrt(w[:, :h].pow(2).sum(0) + w[:, h:].pow(2).sum(0))

    def fan_in_norm(self, layer: int) -> float:
        """Mean L2 norm of the layer's incoming magnitudes (with the reference's): new units are given it."""
        lay = self.layers[layer]
        m = torch.cat([lay.magnitudes().detach(), lay.bias_mag.detach()[:, None]], 1)
        return float(m.norm(dim=1).mean()) if m.shape[0] else 1.0

    # -------------------------------------------------------------------------------------------- operators
    @torch.no_grad()
    def add_units(self, layer: int, rows: dict[str, torch.Tensor], gen: torch.Generator, opt=None) -> None:
        """Append k units to `layer` with incoming couplings `rows` (GrowingOscillatorLayer.add_rows); their
        outgoing couplings are 0, so the net's function is unchanged."""
        k = rows["bias_mag"].shape[0]
        self.layers[layer].add_rows(rows, opt)
        if layer + 1 < len(self.layers):
            nxt = self.layers[layer + 1]
            lag = (torch.rand(nxt.units, k, generator=gen, dtype=torch.float64) * 2 - 1) * math.pi
            nxt.add_sources(k, lag if nxt.phase_param else None, opt)
        else:
            self._readout_columns(torch.ones(self.widths[layer] - k, dtype=torch.bool), k, opt)
        self._resized()

    @torch.no_grad()
    def remove_units(self, layer: int, idx: torch.Tensor, opt=None) -> None:
        """Delete units `idx` of `layer` with their incoming and outgoing couplings."""
        keep = torch.ones(self.widths[layer], dtype=torch.bool)
        keep[torch.as_tensor(idx, dtype=torch.long)] = False
        self.layers[layer].keep_rows(keep, opt)
        if layer + 1 < len(self.layers):
            self.layers[layer + 1].keep_sources(keep, opt)
        else:
            self._readout_columns(keep, 0, opt)
        self._resized()

    @torch.no_grad()
    def merge_unit(self, layer: int, a: int, b: int, delta: float) -> None:
        """Fold unit a's outgoing couplings into unit b's, for units locked at theta_a = theta_b + delta: exact for
        the readout and for Kuramoto couplings ('phase'), the in-phase part for 'weight' (exact at delta = 0)."""
        if layer + 1 < len(self.layers):
            self.layers[layer + 1].merge_source(a, b, delta)
            return
        w, h = self.readout.weight, self.widths[layer]
        ca, sa = w[:, a].clone(), w[:, h + a].clone()
        c, s = math.cos(delta), math.sin(delta)
        w[:, b] += ca * c + sa * s  # cos(theta_b + delta) = cos theta_b cos delta - sin theta_b sin delta
        w[:, h + b] += sa * c - ca * s

    def _readout_columns(self, keep: torch.Tensor, k: int, opt) -> None:
        """Readout columns [cos | sin] of the last layer: keep the `keep` units of the old ones, then add k zero
        columns to each block."""
        old = self.readout.weight
        h = keep.shape[0]

        def remap(v):
            zeros = v.new_zeros(v.shape[0], k)
            return torch.cat([v[:, :h][:, keep], zeros, v[:, h:][:, keep], zeros], 1)

        new = nn.Parameter(remap(old.detach()))
        swap_parameter(opt, old, new, remap)
        self.readout.weight = new
