"""Targeted, exact attention capture.

`capture(...)` is a context manager that records only what was asked for — chosen layers, chosen query
rows, chosen key columns, optionally with gradients — while every attention call keeps running on the
model's own fast backend (sdpa, flash, ...).

How it works: for the duration of the block, the configs that own the chosen attention modules are
switched to an attention implementation registered with transformers' `AttentionInterface` under the
name ``"egokit:<original>"`` (the matching mask function is registered too, so masks are built exactly as
before). That function first calls the original implementation, unchanged, and then — only for modules
being captured — recomputes the requested query rows as full softmax rows over *all* keys
(``softmax(q_rows · Kᵀ · scale + mask_rows)``, the formula of eager attention) and keeps the requested key
columns. With ``grad=True`` the selected rows of the attention output are re-expressed as
``A_rows · V`` so that ∂(anything)/∂A flows through the captured tensor exactly as in eager attention;
all other rows keep the fast path. On exit (also on errors) the configs get their original
implementation back, so the model's outputs afterwards are bit-identical to before.

The switch goes through transformers' public `set_attn_implementation` of the sub-model that owns the config
(when the capture was given a model or a `LoadedModel`); for a bare list of attention modules, whose model
the engine cannot see, through the config's `_attn_implementation` property, which every transformers
attention layer reads. Captures may nest and may exit in any order: a config stays switched while any
capture uses it and gets its own implementation back when the last one exits; the ``egokit:*`` functions
are unregistered when no capture is left.

Cost: one (rows × keys) score block per captured layer and head, instead of layers × heads × N².
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from transformers import AttentionInterface, PreTrainedModel
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from egokit.errors import CaptureError

PREFIX = "egokit:"

# module -> the _Recorder capturing it (a module is captured by at most one recorder at a time)
_ACTIVE: dict[nn.Module, _Recorder] = {}
_LOCK = threading.RLock()


@dataclass
class _Switched:
    """A config switched to an ``egokit:*`` implementation, and how many open captures use it."""

    config: Any
    owner: nn.Module | None  # the PreTrainedModel whose config it is, when the capture knows the model
    original: str | None
    users: int = 0


# id(config) -> its switch (configs are not hashable; the entry holds the config, so its id stays valid)
_SWITCHED: dict[int, _Switched] = {}
# the ``egokit:*`` names this module registered with transformers (removed again when no capture is left)
_REGISTERED: set[str] = set()


# ------------------------------------------------------------------------------------------ registration


def _original_function(impl: str, module: nn.Module) -> Any:
    """The attention function `module` would use under implementation `impl`."""
    if impl == "eager":
        # Each modeling file defines its own eager function (softcapping, sinks, ...): use the module's.
        fn = getattr(sys.modules[type(module).__module__], "eager_attention_forward", None)
        if fn is None:
            raise CaptureError(
                f"{type(module).__name__} has no eager attention function; load the model with "
                'attn_implementation="sdpa" to capture it'
            )
        return fn
    return ALL_ATTENTION_FUNCTIONS.get_interface(impl, None)


def _make_attention_function(impl: str) -> Any:
    def egokit_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                         attention_mask: torch.Tensor | None, **kwargs: Any) -> tuple[torch.Tensor, Any]:
        original = _original_function(impl, module)
        output, weights = original(module, query, key, value, attention_mask, **kwargs)
        recorder = _ACTIVE.get(module)
        if recorder is not None:
            output = recorder.record(module, query, key, value, attention_mask, output, kwargs)
        return output, weights

    egokit_attention.__name__ = f"egokit_attention_{impl}"
    return egokit_attention


def _ensure_registered(impl: str) -> str:
    """Register ``egokit:<impl>`` (attention + mask function) once; return its name."""
    if impl.startswith(PREFIX):
        return impl
    name = PREFIX + impl
    if name not in ALL_ATTENTION_FUNCTIONS:
        if impl != "eager" and impl not in ALL_ATTENTION_FUNCTIONS:
            raise CaptureError(
                f"attention backend {impl!r} is not one the kit can wrap; load the model with "
                'attn_implementation="sdpa" (or "eager")'
            )
        AttentionInterface.register(name, _make_attention_function(impl))
        _REGISTERED.add(name)
        mask_fn = ALL_MASK_ATTENTION_FUNCTIONS.get(impl)
        if mask_fn is not None:
            AttentionMaskInterface.register(name, mask_fn)
    return name


def _unregister_all() -> None:
    """Remove every ``egokit:*`` function this module registered (transformers has no public unregister)."""
    for name in _REGISTERED:
        AttentionInterface._global_mapping.pop(name, None)
        AttentionMaskInterface._global_mapping.pop(name, None)
    _REGISTERED.clear()


def registered_names() -> list[str]:
    """The ``egokit:*`` attention implementations registered with transformers right now."""
    return sorted(name for name in ALL_ATTENTION_FUNCTIONS if name.startswith(PREFIX))


# ------------------------------------------------------------------------------------------ switching


def _implementation(config: Any) -> str | None:
    """The attention implementation `config` asks for (the property every transformers attention reads)."""
    return config._attn_implementation


def _set_implementation(config: Any, owner: nn.Module | None, impl: str | None) -> None:
    """Make `config` use `impl`, through the owning model's public `set_attn_implementation` if known."""
    if owner is not None and impl is not None and not getattr(config, "sub_configs", None):
        try:
            owner.set_attn_implementation(impl)
        except (ValueError, ImportError, OSError) as e:
            raise CaptureError(
                f"transformers refused to switch {type(owner).__name__} to {impl!r} ({e}); load the model with "
                'attn_implementation="sdpa" (or "eager") to capture it'
            ) from e
    if _implementation(config) != impl:
        # No model to ask (a bare list of modules), or the model declined: set the config's own property.
        _set_property(config, impl)


def _set_property(config: Any, impl: str | None) -> None:
    """Set the implementation of `config` alone (a dict leaves its sub-configs as they are)."""
    config._attn_implementation = {"": impl} if getattr(config, "sub_configs", None) else impl


def _owners(root: nn.Module | None) -> dict[int, nn.Module]:
    """id(config) -> the outermost PreTrainedModel inside `root` that holds that config."""
    owners: dict[int, nn.Module] = {}
    if root is not None:
        for module in root.modules():  # pre-order: an outer model comes before the models inside it
            if isinstance(module, PreTrainedModel):
                owners.setdefault(id(module.config), module)
    return owners


def _switch(configs: list[Any], owners: dict[int, nn.Module]) -> list[_Switched]:
    """Take one use of each config's switch (switching it on first use); returns the entries taken."""
    taken: list[_Switched] = []
    try:
        for config in configs:
            entry = _SWITCHED.get(id(config))
            if entry is None:
                current = _implementation(config)
                # a config still named egokit:* (left so by something else) gets its real backend back on exit
                original = current.removeprefix(PREFIX) if isinstance(current, str) else current
                name = _ensure_registered(original or "eager")
                entry = _Switched(config=config, owner=owners.get(id(config)), original=original)
                _SWITCHED[id(config)] = entry
                entry.users += 1
                taken.append(entry)
                _set_implementation(config, entry.owner, name)
            else:
                entry.users += 1
                taken.append(entry)
    except BaseException:
        _release(taken)
        raise
    return taken


def _release(taken: list[_Switched]) -> None:
    """Give back the uses in `taken`; a config whose last use this was gets its own implementation back."""
    errors: list[BaseException] = []
    for entry in reversed(taken):
        entry.users -= 1
        if entry.users > 0:
            continue
        _SWITCHED.pop(id(entry.config), None)
        try:
            _set_implementation(entry.config, entry.owner, entry.original)
        except BaseException as e:  # restore the other configs before reporting it
            _set_property(entry.config, entry.original)
            errors.append(e)
    if not _SWITCHED:
        _unregister_all()
    if errors:
        raise errors[0]


# ------------------------------------------------------------------------------------------ results


@dataclass
class Captured:
    """What one capture recorded.

    attentions[layer]: tensor (B, H, R, K) — softmax rows of the chosen queries (normalised over all keys),
    restricted to the chosen key columns, float32. With grad=True the tensor is part of the graph; after
    `backward()`, `grads[layer]` holds ∂/∂A for the same slice.
    """

    part: str
    layers: list[int]
    attentions: dict[int, torch.Tensor] = field(default_factory=dict)
    calls: dict[int, int] = field(default_factory=dict)
    backends: list[str] = field(default_factory=list)
    _full_rows: dict[int, torch.Tensor] = field(default_factory=dict, repr=False)
    _key_index: dict[int, torch.Tensor | None] = field(default_factory=dict, repr=False)

    def __getitem__(self, layer: int) -> torch.Tensor:
        return self.attentions[self._resolve(layer)]

    def _resolve(self, layer: int) -> int:
        if layer in self.attentions:
            return layer
        if not self.attentions:
            raise CaptureError(
                f"nothing was captured: no attention call of the {self.part} layers {self.layers} went through the "
                f"capturable backend (original backend: {', '.join(self.backends) or 'unknown'}). Run the model "
                "inside the `with capture(...)` block; a backend that bypasses transformers' attention interface "
                'cannot be captured: load with attn_implementation="sdpa"'
            )
        raise CaptureError(f"layer {layer} was not captured; captured layers: {sorted(self.attentions)}")

    @property
    def grads(self) -> dict[int, torch.Tensor]:
        """∂/∂A on the captured slices (after a backward pass through the captured forward)."""
        out = {}
        for layer, full in self._full_rows.items():
            if full.grad is None:
                raise CaptureError(
                    "no gradient reached the captured attention: call backward() on a value computed from "
                    "the forward pass that ran inside the capture block (with grad=True)"
                )
            out[layer] = _take_keys(full.grad, self._key_index[layer]).float()
        return out

    def stack(self) -> torch.Tensor:
        """(L, B, H, R, K) over the captured layers in order."""
        return torch.stack([self.attentions[layer] for layer in sorted(self.attentions)])

    def stack_grads(self) -> torch.Tensor:
        grads = self.grads
        return torch.stack([grads[layer] for layer in sorted(grads)])

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.attentions.values())


def _take_keys(rows: torch.Tensor, key_index: torch.Tensor | None) -> torch.Tensor:
    if key_index is None:
        return rows
    if key_index.dim() == 1:
        return rows.index_select(-1, key_index)
    b, h, r, _ = rows.shape
    idx = key_index[:, None, None, :].expand(b, h, r, key_index.shape[-1])
    return rows.gather(-1, idx)


# ------------------------------------------------------------------------------------------ recorder


def _as_index(x: Any, name: str) -> torch.Tensor | None:
    if x is None:
        return None
    if isinstance(x, slice):
        raise CaptureError(f"{name}: pass a list or tensor of positions, not a slice")
    t = torch.as_tensor(x, dtype=torch.long)
    if t.dim() == 0:
        t = t[None]
    if t.dim() not in (1, 2):
        raise CaptureError(f"{name} must be a list of positions (R,) or one list per batch row (B, R)")
    return t


class _Recorder:
    def __init__(self, part: str, layer_of: dict[nn.Module, int], queries: torch.Tensor | None,
                 keys: torch.Tensor | None, grad: bool) -> None:
        self.layer_of = layer_of
        self.queries = queries
        self.keys = keys
        self.grad = grad
        self.seen_lengths: list[int] = []
        self.found: set[int] = set()
        self.result = Captured(part=part, layers=sorted(layer_of.values()))

    def _rows(self, q_len: int, kv_len: int, batch: int, device: torch.device) -> torch.Tensor | None:
        """Query rows of this call as a (B, R) index into the call's query axis, or None if none apply."""
        if self.queries is None:
            return torch.arange(q_len, device=device).expand(batch, q_len)
        q = self.queries.to(device)
        offset = kv_len - q_len  # > 0 when decoding with a cache: query i is absolute position offset + i
        absolute = torch.where(q < 0, q + kv_len, q) if offset == 0 else q
        local = absolute - offset
        inside = (local >= 0) & (local < q_len)
        if q.dim() == 2:
            if q.shape[0] != batch:
                raise CaptureError(f"per-row query positions have {q.shape[0]} rows but the batch has {batch}")
            if not inside.all():
                raise CaptureError(f"query positions are outside the sequence of length {q_len}")
            return local
        self.seen_lengths.append(kv_len)
        if not inside.any():
            return None
        # With a cache, each decoding call computes one new position: record the requested ones it computes.
        self.found.update(absolute[inside].tolist())
        return local[inside].expand(batch, int(inside.sum()))

    def check_complete(self) -> None:
        """After the block: every requested 1-D query position must have been computed by some call."""
        if self.queries is None or self.queries.dim() != 1 or not self.seen_lengths:
            return
        longest = max(self.seen_lengths)
        wanted = {p + longest if p < 0 else p for p in self.queries.tolist()}
        missing = sorted(wanted - self.found)
        if missing:
            raise CaptureError(
                f"query positions {missing} are outside the sequence (the longest call had {longest} positions)"
            )

    def _key_index(self, kv_len: int, device: torch.device) -> torch.Tensor | None:
        if self.keys is None:
            return None
        k = self.keys.to(device)
        k = torch.where(k < 0, k + kv_len, k)
        if ((k < 0) | (k >= kv_len)).any():
            raise CaptureError(f"key positions are outside the sequence of length {kv_len}")
        return k

    def record(self, module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
               mask: torch.Tensor | None, output: torch.Tensor, kwargs: dict[str, Any]) -> torch.Tensor:
        layer = self.layer_of[module]
        batch, heads, q_len, _ = query.shape
        kv_len = key.shape[2]
        rows = self._rows(q_len, kv_len, batch, query.device)
        if rows is None:
            return output
        n_rows = rows.shape[1]
        q_sel = query.gather(2, rows[:, None, :, None].expand(batch, heads, n_rows, query.shape[-1]))
        kv_heads = key.shape[1]
        scaling = kwargs.get("scaling")
        if scaling is None:
            scaling = query.shape[-1] ** -0.5
        scores = _grouped_matmul(q_sel, key.transpose(2, 3), kv_heads) * scaling
        softcap = kwargs.get("softcap")
        if softcap is not None:
            scores = torch.tanh(scores / softcap) * softcap
        scores = scores + _mask_rows(module, mask, rows, q_len, kv_len, batch, heads, scores.dtype, kwargs)
        probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
        key_index = self._key_index(kv_len, query.device)

        if self.grad:
            probs.retain_grad()
            out_rows = _grouped_matmul(probs, value, kv_heads).transpose(1, 2)  # (B, R, H, D)
            idx = rows[:, :, None, None].expand(batch, n_rows, output.shape[2], output.shape[3])
            output = output.scatter(1, idx, out_rows.to(output.dtype))
            self.result._full_rows[layer] = probs
            self.result._key_index[layer] = key_index
            captured = _take_keys(probs, key_index).float()
        else:
            captured = _take_keys(probs.detach(), key_index).float()

        previous = self.result.attentions.get(layer)
        if previous is not None:
            captured = _append_rows(previous, captured, layer)
        self.result.attentions[layer] = captured
        self.result.calls[layer] = self.result.calls.get(layer, 0) + 1
        return output


def _append_rows(previous: torch.Tensor, rows: torch.Tensor, layer: int) -> torch.Tensor:
    """Concatenate the rows of several calls to one layer (decoding steps, per-image chunks).

    Rows of later decoding steps see more keys; earlier rows are padded with zeros on the right, which is
    exact for causal attention (those keys were in the future for them).
    """
    if previous.shape[:2] != rows.shape[:2]:
        raise CaptureError(f"layer {layer} was called with different batch/head shapes inside one capture")
    width = max(previous.shape[-1], rows.shape[-1])
    pad = torch.nn.functional.pad
    return torch.cat([pad(previous, (0, width - previous.shape[-1])), pad(rows, (0, width - rows.shape[-1]))], 2)


def _grouped_matmul(a: torch.Tensor, b: torch.Tensor, kv_heads: int) -> torch.Tensor:
    """`a @ b` where a has H heads and b has `kv_heads` (grouped-query attention), without copying b.

    Query head h uses key/value head h // (H / kv_heads), as transformers' `repeat_kv` does.
    """
    batch, heads, rows, _ = a.shape
    if heads == kv_heads:
        return torch.matmul(a, b)
    groups = heads // kv_heads
    grouped = a.reshape(batch, kv_heads, groups * rows, a.shape[-1])
    out = torch.matmul(grouped, b)
    return out.reshape(batch, heads, rows, out.shape[-1])


def _mask_rows(module: nn.Module, mask: torch.Tensor | None, rows: torch.Tensor, q_len: int, kv_len: int,
               batch: int, heads: int, dtype: torch.dtype, kwargs: dict[str, Any]) -> torch.Tensor:
    """Additive mask (B, H or 1, R, K) for the selected rows, as eager attention would apply it."""
    neg = torch.finfo(dtype).min
    n_rows = rows.shape[1]
    if mask is None:
        is_causal = kwargs.get("is_causal")
        if is_causal is None:
            is_causal = getattr(module, "is_causal", True)
        if is_causal and q_len > 1:
            # sdpa's is_causal: upper-left aligned (query i sees keys 0..i)
            allowed = torch.arange(kv_len, device=rows.device)[None, None, :] <= rows[:, :, None]
            return torch.where(allowed, 0.0, neg).to(dtype)[:, None]
        return torch.zeros((), dtype=dtype, device=rows.device)
    if not isinstance(mask, torch.Tensor):
        raise CaptureError(f"attention mask of type {type(mask).__name__} is not supported for capture; "
                           'load the model with attn_implementation="sdpa"')
    m = mask[..., :kv_len]
    if m.dim() == 2:  # (B, K) padding mask
        m = m[:, None, None, :]
    if m.shape[0] == 1 and batch > 1:
        m = m.expand(batch, *m.shape[1:])
    if m.shape[2] == 1:
        m_rows = m
    else:
        idx = rows[:, None, :, None].expand(m.shape[0], m.shape[1], n_rows, m.shape[-1])
        m_rows = m.gather(2, idx)
    if m_rows.dtype == torch.bool:
        return torch.where(m_rows, 0.0, neg).to(dtype)
    return m_rows.to(dtype)


# ------------------------------------------------------------------------------------------ public API


def _resolve_modules(target: Any, part: str | None) -> tuple[str, list[nn.Module], nn.Module | None]:
    """Attention modules (index = layer) of one stack of `target` (LoadedModel, model, or module list), and
    the model they belong to (None for a bare list)."""
    if isinstance(target, (list, tuple)):
        return part or "custom", list(target), None
    adapter = getattr(target, "adapter", None)
    if adapter is None:
        from egokit.models.adapters import adapter_for

        model_type = getattr(getattr(target, "config", None), "model_type", None)
        cls = adapter_for(model_type) if model_type else None
        if cls is None:
            raise CaptureError(
                f"no adapter knows {type(target).__name__} (model_type {model_type!r}); pass a LoadedModel "
                "from egokit.load(...), or the list of attention modules to capture"
            )
        adapter = cls(target)
    part = part or adapter.default_part
    if part not in adapter.parts:
        raise CaptureError(f"{adapter.family} has no {part!r} part; choose one of {', '.join(adapter.parts)}")
    root = getattr(adapter, "model", None)
    return part, list(adapter.attention_modules(part)), root if isinstance(root, nn.Module) else None


@contextmanager
def capture(target: Any, layers: Sequence[int] | None = None, queries: Any = None, keys: Any = None,
            part: str | None = None, grad: bool = False) -> Iterator[Captured]:
    """Record attention rows of chosen layers while the model runs on its fast backend.

    target:  a `LoadedModel`, a transformers model with an adapter, or a list of attention modules.
    layers:  layer numbers of the chosen part (negative counts from the end); None = all.
    queries: query positions, (R,) or (B, R) per batch row; negative = from the end; None = all rows.
             With a KV cache (decoding), positions are absolute; a call records the ones it computes.
    keys:    key positions (K,) or (B, K) to keep (e.g. the visual tokens); None = all keys.
    part:    which stack ("language", "vision", "text"); None = the adapter's default.
    grad:    keep the captured rows in the autograd graph; after backward, `captured.grads[layer]`.

    Yields a `Captured`; its `attentions` fill in as the model runs inside the block.
    """
    part_name, modules, root = _resolve_modules(target, part)
    if not modules:
        raise CaptureError(f"no attention modules found for part {part_name!r}")
    n = len(modules)
    chosen = list(range(n)) if layers is None else [int(layer) for layer in layers]
    for layer in chosen:
        if not -n <= layer < n:
            raise CaptureError(f"layer {layer} does not exist: the {part_name} part has {n} layers (0..{n - 1})")
    chosen = sorted({layer % n for layer in chosen})
    layer_of = {modules[layer]: layer for layer in chosen}
    recorder = _Recorder(part_name, layer_of, _as_index(queries, "queries"), _as_index(keys, "keys"), grad)

    configs: dict[int, Any] = {}
    for module in layer_of:
        config = getattr(module, "config", None)
        if config is None or not hasattr(config, "_attn_implementation"):
            raise CaptureError(f"{type(module).__name__} has no transformers config; cannot capture it")
        configs[id(config)] = config

    with _LOCK:
        busy = [m for m in layer_of if m in _ACTIVE]
        if busy:
            raise CaptureError("these attention modules are already being captured (nested capture of the "
                               "same layers is not supported)")
        taken = _switch(list(configs.values()), _owners(root))
        try:
            recorder.result.backends.extend(entry.original or "eager" for entry in taken)
            for module in layer_of:
                _ACTIVE[module] = recorder
        except BaseException:
            for module in layer_of:
                _ACTIVE.pop(module, None)
            _release(taken)
            raise
    try:
        yield recorder.result
    finally:
        with _LOCK:
            for module in layer_of:
                _ACTIVE.pop(module, None)
            _release(taken)
    recorder.check_complete()
    missing = [layer for layer in chosen if layer not in recorder.result.calls]
    if missing and recorder.result.calls:
        raise CaptureError(f"layers {missing} ran no attention through a capturable backend "
                           f"({', '.join(sorted(set(recorder.result.backends)))})")


def require_attentions(attentions: Any, backend: str | None = None) -> tuple[torch.Tensor, ...]:
    """Check that `output_attentions=True` really returned attention maps; name the backend if not."""
    if attentions is None or len(attentions) == 0 or any(a is None for a in attentions):
        raise CaptureError(
            f"the attention backend {backend or 'in use'!r} returned no attention weights "
            '(sdpa and flash attention never do): load with attn_implementation="eager", or use egokit.capture, '
            "which works with any backend"
        )
    return tuple(attentions)
