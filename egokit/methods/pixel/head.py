"""PixelLLM's point head: a small MLP on the language model's final per-token features → two points per token.

    head = PointHead(in_features=hidden_size(loaded))      # MLP depth 4, hidden 512, GELU
    points = head(word_features, image_tokens, centres)     # (..., T, 2, 2): two corners (x, y) in [0, 1]

The features are the language model's final hidden states, exactly what its vocabulary projection reads
(`feature_hooks` records them with the capture engine's `Hooks` on the output embeddings, so any family
works; the decoder layers come from the family: `adapter.module("language_blocks")`). Coordinates are
fractions of the model's view of the image (the processed picture); `egokit.methods.pixel.locate` maps them back
to the original image's pixels.

**Visual read-out.** PixelLLM's MLP reads only the word's feature: in its large models that feature already
says where the word is. The micro VLM's does not: its visual tokens carry almost no absolute position (a
linear probe reads a token's grid cell from its projected embedding barely better than from nothing), and
RoPE gives attention only *relative* offsets, which never reach the attention's output, so a word's final
feature says *what* it looked at but hardly *where*. The head therefore also reads the image tokens — as
the language model receives them (the input of its first decoder layer: the projected visual features;
the final layer's outputs at image positions feed nothing and are never trained). The word's feature
queries them with a small multi-head attention (`attn_heads` × `attn_dim`; keys = the tokens' features +
a code of their cells' positions, so a query can also prefer "left" or "further right"); each head gives an attended
centre (the attention-weighted mean of the tokens' cell centres) and its spread, and an attended value.
The MLP reads [word feature, attended values, centres, spreads] and outputs the two corners as offsets
from a learned mix of the heads' centres. With `readout=False` it is PixelLLM's plain MLP.

A head may also carry tuned copies of the language model's decoder layers (`layer_states`, layer index →
state dict; the shipped head: every layer): PixelLLM trains caption cross-entropy and the point loss
jointly through the whole language model (with LoRA), and the kit does that on copies of the layers so the
shared VLM stays untouched. `attached(loaded)` swaps the copies in
for the duration of a `with` block (parameter storage is swapped, nothing is copied into the model, and
the original weights are put back, also on errors).

Files: `save(folder)` writes `head.safetensors` (fp16 by default; the head's own weights under `head.`,
tuned layers under `layer.<index>.`) and `config.json`, atomically; `PointHead.load(folder)` reads them
back without pickle.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from egokit.capture.hooks import Hooks
from egokit.errors import InputError, MemoryFileError
from egokit.files import atomic_path, write_text_atomic
from egokit.models.adapters.base import GENERATES_TEXT

FILE_KIND = "egokit.pixel_head"
FILE_VERSION = 1
WEIGHTS_FILE = "head.safetensors"
CONFIG_FILE = "config.json"
#: Half the side of the box an untrained head puts around its centre (fractions of the image).
_INITIAL_HALF = 0.15
_PLAIN_CORNERS = (0.35, 0.35, 0.65, 0.65)
_FREQUENCIES = 4


def fourier(points: torch.Tensor) -> torch.Tensor:
    """(..., 2) points in [0, 1] → (..., 4 * _FREQUENCIES) sines and cosines of x and y at octave frequencies."""
    freq = (2.0 ** torch.arange(_FREQUENCIES, dtype=points.dtype, device=points.device)) * torch.pi
    angle = points[..., None] * freq                                        # (..., 2, F)
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1).flatten(-2)


class PointHead(nn.Module):
    """The point head (module docstring).

    in_features: width of the language model's final hidden states.
    hidden, depth: the MLP's width and number of linear layers (GELU between them).
    readout:     read the image tokens too (`attn_heads` heads of `attn_dim`); False: PixelLLM's plain MLP.
    layer_states: optional tuned copies of decoder layers ({layer index: state dict}) that `attached` swaps
                 into the model while the head is used.
    meta:        JSON-able facts about the head (base model, its fingerprint, recipe, target mode).
    """

    def __init__(self, in_features: int, hidden: int = 512, depth: int = 4, *, readout: bool = True,
                 attn_heads: int = 4, attn_dim: int = 32, layer_states: dict[int, dict[str, torch.Tensor]] | None = None,
                 meta: dict[str, Any] | None = None) -> None:
        super().__init__()
        if depth < 1:
            raise InputError(f"the point head needs depth >= 1, got {depth}")
        self.in_features, self.hidden, self.depth = int(in_features), int(hidden), int(depth)
        self.readout, self.attn_heads, self.attn_dim = bool(readout), int(attn_heads), int(attn_dim)
        d, h, a = self.in_features, self.attn_heads, self.attn_dim
        width = d
        if self.readout:
            self.word_norm = nn.LayerNorm(d)
            self.image_norm = nn.LayerNorm(d)
            self.query = nn.Linear(d, h * a)
            self.key = nn.Linear(d, h * a)
            self.key_position = nn.Linear(4 * _FREQUENCIES, h * a)  # where a token is, so "the next one to the right" can be asked
            self.value = nn.Linear(d, h * a)
            self.anchor = nn.Parameter(torch.zeros(h))       # which heads' centres the box is placed around
            width = d + h * a + 4 * h
        layers: list[nn.Module] = []
        for _ in range(self.depth - 1):
            layers += [nn.Linear(width, self.hidden), nn.GELU()]
            width = self.hidden
        last = nn.Linear(width, 4)
        with torch.no_grad():
            last.weight.mul_(0.1)
            if self.readout:  # offsets from the attended centre: a small centred box at the start
                last.bias.copy_(torch.atanh(torch.tensor([-1.0, -1.0, 1.0, 1.0]) * 2 * _INITIAL_HALF))
            else:
                last.bias.copy_(torch.logit(torch.tensor(_PLAIN_CORNERS)))
        layers.append(last)
        self.mlp = nn.Sequential(*layers)
        self.layer_states = {int(i): dict(v) for i, v in (layer_states or {}).items()}
        self.meta: dict[str, Any] = dict(meta or {})
        self._converted: dict[tuple[str, str], dict[int, dict[str, torch.Tensor]]] = {}

    def forward(self, features: torch.Tensor, image_features: torch.Tensor | None = None,
                centres: torch.Tensor | None = None) -> torch.Tensor:
        """Points of each token: (..., T, D) word features [+ (..., N, D) image-token features and (N, 2) or
        (..., N, 2) their cell centres in [0, 1]] → (..., T, 2, 2), corners (x, y) in [0, 1]."""
        if not self.readout:
            return torch.sigmoid(self.mlp(features)).unflatten(-1, (2, 2))
        if image_features is None or centres is None:
            raise InputError("this point head reads the image tokens too: pass their features and cell centres")
        h, a = self.attn_heads, self.attn_dim
        q = self.query(self.word_norm(features)).unflatten(-1, (h, a)).transpose(-2, -3)       # (..., h, T, a)
        image = self.image_norm(image_features)
        cells = centres.to(image.dtype)
        k = (self.key(image) + self.key_position(fourier(cells))).unflatten(-1, (h, a)).transpose(-2, -3)
        v = self.value(image).unflatten(-1, (h, a)).transpose(-2, -3)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(a), dim=-1)                     # (..., h, T, N)
        cells = cells.unsqueeze(-3)                                                             # (..., 1, N, 2)
        c = att @ cells                                                                         # (..., h, T, 2)
        spread = ((att @ cells.pow(2) - c.pow(2)).clamp(min=0) + 1e-6).sqrt()
        pooled = (att @ v).transpose(-2, -3).flatten(-2)                                        # (..., T, h*a)
        geometry = torch.cat([c, spread], dim=-1).transpose(-2, -3).flatten(-2)                 # (..., T, 4h)
        offsets = 0.5 * torch.tanh(self.mlp(torch.cat([features, pooled, geometry], dim=-1)))
        anchor = (torch.softmax(self.anchor, 0)[:, None, None] * c).sum(-3)                     # (..., T, 2)
        corners = torch.cat([anchor, anchor], dim=-1) + offsets
        return corners.clamp(0.0, 1.0).unflatten(-1, (2, 2))

    def config(self) -> dict[str, Any]:
        return {"kind": FILE_KIND, "version": FILE_VERSION, "in_features": self.in_features, "hidden": self.hidden,
                "depth": self.depth, "readout": self.readout, "attn_heads": self.attn_heads, "attn_dim": self.attn_dim,
                "tuned_layers": sorted(self.layer_states), "meta": self.meta}

    def __repr__(self) -> str:
        extra = ", visual read-out" if self.readout else ""
        if self.layer_states:
            extra += f", tuned layers {sorted(self.layer_states)}"
        base = self.meta.get("base_model")
        return (f"PointHead(in={self.in_features}, hidden={self.hidden}, depth={self.depth}{extra}"
                f"{f', for {base!r}' if base else ''})")

    # -- the model it belongs to -----------------------------------------------------------------------
    def check(self, loaded: Any) -> None:
        """Raise `MemoryFileError` when this head was trained for another model (width or weights differ)."""
        width = hidden_size(loaded)
        if width != self.in_features:
            raise MemoryFileError(
                f"this point head reads {self.in_features}-wide features but {loaded.name!r} has {width}: "
                "use the head trained for this model, or train one (python -m egokit.recipes.train pixel)")
        want = self.meta.get("base_fingerprint")
        if want and hasattr(loaded, "fingerprint") and loaded.fingerprint() != want:
            raise MemoryFileError(
                f"this point head was trained on {self.meta.get('base_model', 'another model')!r} (fingerprint "
                f"{want}), not on {loaded.name!r} ({loaded.fingerprint()}): its features differ; retrain the "
                "head for this model (python -m egokit.recipes.train pixel)")

    @contextmanager
    def attached(self, loaded: Any, check: bool = True) -> Iterator[None]:
        """Within the block, the model runs with this head's tuned decoder layers (if it has any)."""
        if check:
            self.check(loaded)
        layers = decoder_layers(loaded)
        saved: list[tuple[nn.Parameter, torch.Tensor]] = []
        try:
            for index, state in self._tuned_for(layers).items():
                params = dict(layers[index].named_parameters())
                missing = sorted(set(state) - set(params))
                if missing:
                    raise MemoryFileError(f"the head's tuned layer {index} has weights the model lacks: {missing[:3]}")
                for name, value in state.items():
                    saved.append((params[name], params[name].data))
                    params[name].data = value
            yield
        finally:
            for param, value in reversed(saved):
                param.data = value

    def _tuned_for(self, layers: nn.ModuleList) -> dict[int, dict[str, torch.Tensor]]:
        if not self.layer_states:
            return {}
        if max(self.layer_states) >= len(layers):
            raise MemoryFileError(f"the head tunes layer {max(self.layer_states)} but the model has {len(layers)}")
        first = next(layers[0].parameters())
        key = (str(first.device), str(first.dtype))
        if key not in self._converted:
            self._converted = {key: {i: {k: v.detach().to(device=first.device, dtype=first.dtype) for k, v in st.items()}
                                     for i, st in self.layer_states.items()}}
        return self._converted[key]

    # -- files -----------------------------------------------------------------------------------------
    def save(self, folder: str | Path, dtype: torch.dtype = torch.float16) -> Path:
        """Write `head.safetensors` + `config.json` into `folder` (atomically, file by file)."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {f"head.{k}": v.detach().to("cpu", dtype).contiguous() for k, v in self.state_dict().items()}
        for i, state in self.layer_states.items():
            for k, v in state.items():
                tensors[f"layer.{i}.{k}"] = v.detach().to("cpu", dtype).contiguous()
        with atomic_path(folder / WEIGHTS_FILE) as tmp:
            save_file(tensors, str(tmp), metadata={"egokit": json.dumps(self.config())})
        write_text_atomic(folder / CONFIG_FILE, json.dumps(self.config(), indent=2, sort_keys=True) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | Path, device: str | torch.device = "cpu") -> PointHead:
        """Read a head written by `save` (float32). Raises `MemoryFileError` for a damaged or foreign folder."""
        from safetensors.torch import load_file

        folder = Path(folder)
        try:
            config = json.loads((folder / CONFIG_FILE).read_text())
        except FileNotFoundError:
            raise MemoryFileError(f"{folder} holds no point head ({CONFIG_FILE} is missing): train one with "
                                  "python -m egokit.recipes.train pixel") from None
        except (OSError, ValueError) as e:
            raise MemoryFileError(f"{folder / CONFIG_FILE} cannot be read ({e}); re-save or retrain the head") from None
        if not isinstance(config, dict) or config.get("kind") != FILE_KIND:
            raise MemoryFileError(f"{folder / CONFIG_FILE} is not a point head's config")
        try:
            tensors = load_file(str(folder / WEIGHTS_FILE))
        except Exception as e:  # noqa: BLE001 - any failure to decode means a missing or damaged file
            raise MemoryFileError(f"the point head weights in {folder} cannot be read ({type(e).__name__}: {e}); "
                                  "re-save or retrain the head") from None
        states: dict[int, dict[str, torch.Tensor]] = {}
        for k, v in tensors.items():
            if k.startswith("layer."):
                index, _, name = k[len("layer."):].partition(".")
                states.setdefault(int(index), {})[name] = v.float()
        head = cls(config["in_features"], config["hidden"], config["depth"], readout=config.get("readout", False),
                   attn_heads=config.get("attn_heads", 4), attn_dim=config.get("attn_dim", 32), layer_states=states, meta=config.get("meta"))
        own = {k[len("head."):]: v.float() for k, v in tensors.items() if k.startswith("head.")}
        try:
            head.load_state_dict(own)
        except RuntimeError as e:
            raise MemoryFileError(f"the point head weights in {folder} do not fit its config: {e}") from None
        return head.to(device).eval()


# ---------------------------------------------------------------------------------------------- the model

#: `feature_hooks` keys: the vocabulary projection's input, and the input of the tapped decoder layer.
FEATURES = "features"
LAYER_INPUTS = "layer_inputs"


def _adapter(model: Any) -> Any:
    """The family adapter of a `LoadedModel` (or an adapter itself), checked to generate text."""
    adapter = getattr(model, "adapter", model)
    if not callable(getattr(adapter, "module", None)) or not callable(getattr(adapter, "require", None)):
        raise InputError(f"pass a LoadedModel (egokit.load(...) or egokit.models.loading.from_model(model, "
                         f"processor)), not a {type(model).__name__}: the point head asks the model's family "
                         "where its decoder layers are")
    adapter.require(GENERATES_TEXT, "the point head")
    return adapter


def decoder_layers(model: Any) -> nn.ModuleList:
    """The decoder layers of a VLM's text decoder (index = layer number), as its family declares them.

    model: a `LoadedModel` (or its adapter); a family that generates no text raises `CapabilityError`."""
    return _adapter(model).module("language_blocks")  # type: ignore[no-any-return]


def hidden_size(model: Any) -> int:
    """Width of the final hidden states (the vocabulary projection's input) of a `LoadedModel` or a bare model."""
    net = model if isinstance(model, nn.Module) else model.model
    head = net.get_output_embeddings() if hasattr(net, "get_output_embeddings") else None
    if head is None or not hasattr(head, "in_features"):
        raise InputError(f"a {type(net).__name__} has no vocabulary projection: the point head needs a "
                         "generative VLM")
    return int(head.in_features)


def prompt_pass(old: torch.Tensor | None, new: torch.Tensor) -> bool:
    """`Hooks` keep rule: keep the prompt's pass (many positions), not a one-token decoding step."""
    return old is None or new.shape[1] > 1


def feature_hooks(model: Any, layer: int | None = 0) -> Hooks:
    """Hooks that record, on each forward, the input of the vocabulary projection (the final per-token
    features, key `FEATURES`) and the input of decoder layer `layer` (key `LAYER_INPUTS`; default 0: the input
    embeddings, where the image tokens are the projected visual features the model receives; the prompt's
    pass is kept, not a decoding step's). model: a `LoadedModel`.

        with feature_hooks(loaded) as hooks:
            loaded.model(**inputs)
        hooks[FEATURES], hooks[LAYER_INPUTS]    # (B, L, D) each
    """
    layers = decoder_layers(model)
    projection = model.model.get_output_embeddings()
    if projection is None:
        raise InputError(f"a {type(model.model).__name__} has no vocabulary projection to read features from")
    hooks = Hooks()
    try:
        hooks.record_input(projection, FEATURES)
        if layer is not None:
            hooks.record_input(layers[layer], LAYER_INPUTS, keep=prompt_pass)
    except BaseException:
        hooks.release()
        raise
    return hooks


def box_from_points(points: torch.Tensor) -> torch.Tensor:
    """(..., K, 2) points → (..., 4) box (x0, y0, x1, y1): the min and max over the K points."""
    lo = points.min(dim=-2).values
    hi = points.max(dim=-2).values
    return torch.cat([lo, hi], dim=-1)


def image_readout_inputs(layout: Any, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The image tokens' final features (N, D) and their cell centres (N, 2) as fractions of the model's view,
    for one image's `ImageTokens` and one batch row's final features (L, D)."""
    boxes = layout.boxes.float()
    x0, y0, x1, y1 = layout.extra.get("view") or (0.0, 0.0, float(layout.image_size[1]), float(layout.image_size[0]))
    centres = torch.stack([((boxes[:, 0] + boxes[:, 2]) / 2 - x0) / (x1 - x0),
                           ((boxes[:, 1] + boxes[:, 3]) / 2 - y0) / (y1 - y0)], dim=-1)
    return features[layout.positions.to(features.device)], centres.to(features.device)
