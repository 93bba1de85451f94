"""Load a model and its processor from a local folder, the hub or the kit's micro zoo — offline-safe.

`load(name_or_path)` accepts:

- a **local folder** holding `config.json`, weights and processor files (what `save_pretrained` writes);
- a **micro model name** (`"micro-clip"`, `"micro-vlm"`, ...): a folder shipped inside the package at
  `egokit/zoo/<name>/`, loaded through the same code as any folder;
- a **hub id** (`"llava-hf/llava-1.5-7b-hf"`). With `HF_HUB_OFFLINE=1` only the local cache is used,
  and a model that is not cached fails at once with a `ModelLoadError` saying how to get the weights.
  An existing local folder of the same name wins over the hub.

The family is read from `config.json`'s `model_type` and picks both the adapter (`ADAPTERS`) and the
model class (`AutoModel` for dual encoders such as CLIP, `AutoModelForImageTextToText` for VLMs, or an
adapter's own `auto_class`). No remote code runs unless `trust_remote_code=True`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from egokit.errors import DeviceError, ModelLoadError
from egokit.models.adapters import IMPORT_ERRORS, Adapter, load_adapters
from egokit.models.adapters.base import GENERATES_TEXT
from egokit.models.settings import read_settings
from egokit.zoo import ZOO_DIR

MICRO_PREFIX = "micro-"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[A-Za-z0-9][\w.\-]*)?$")
_DTYPE_NAMES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


# ------------------------------------------------------------------------------------------ the result


@dataclass(repr=False)
class LoadedModel:
    """A model, its processor and its family adapter, ready for capture and methods.

    `name` is what was asked for (folder, hub id or micro name); `device` is where inputs go; `settings`
    are the checkpoint's own settings per method, from `egokit.json` beside its weights (see
    `egokit.models.settings`; empty for a hub checkpoint or a model built in memory).
    """

    model: nn.Module
    processor: Any
    adapter: Adapter
    name: str
    device: torch.device
    settings: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False)
    _fingerprint: str | None = field(default=None, compare=False)

    def settings_for(self, method: str) -> dict[str, Any]:
        """This checkpoint's settings for `method` (a copy; {} when it has none)."""
        return dict(self.settings.get(method, {}))

    @property
    def config(self) -> Any:
        return self.model.config

    @property
    def family(self) -> str:
        return self.adapter.family

    @property
    def model_type(self) -> str:
        return str(self.model.config.model_type)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def fingerprint(self) -> str:
        """A stable 16-hex-digit id of this model's architecture and weights (see `model_fingerprint`).

        Computed once and cached; call `model_fingerprint(lm.model)` again after changing weights in place.
        """
        if self._fingerprint is None:
            self._fingerprint = model_fingerprint(self.model)
        return self._fingerprint

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.model.parameters())
        attn = getattr(self.model.config, "_attn_implementation", None)
        return (
            f"LoadedModel(name={self.name!r}, family={self.family!r}, model={type(self.model).__name__}, "
            f"params={_count(n)}, dtype={str(self.dtype).removeprefix('torch.')}, device={str(self.device)!r}, "
            f"attn={attn!r})"
        )


def _count(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


# ------------------------------------------------------------------------------------------ fingerprint

_VOLATILE_CONFIG_KEYS = frozenset(
    {
        "_name_or_path",
        "name_or_path",
        "transformers_version",
        "dtype",
        "torch_dtype",
        "architectures",
        "_attn_implementation",
        "attn_implementation",
        "_attn_implementation_autoset",
        "_experts_implementation",
        "_commit_hash",
        "output_attentions",
        "output_hidden_states",
        "return_dict",
        "use_cache",
    }
)
_CHUNK = 1 << 24


def _config_essentials(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _config_essentials(v) for k, v in sorted(value.items()) if k not in _VOLATILE_CONFIG_KEYS}
    if isinstance(value, (list, tuple)):
        return [_config_essentials(v) for v in value]
    return value


def _tensor_digest(t: torch.Tensor, samples: int = 256) -> bytes:
    """Exact, device-independent statistics of `t` rounded to bfloat16: sum and sum of squares of the bit
    patterns over every element, plus the bit patterns at `samples` evenly spaced positions."""
    flat = t.detach().reshape(-1)
    if flat.is_floating_point():
        bits = flat.to(torch.bfloat16).view(torch.int16)
    else:
        bits = flat
    total = torch.zeros((), dtype=torch.int64, device=flat.device)
    squares = torch.zeros((), dtype=torch.int64, device=flat.device)
    for start in range(0, bits.numel(), _CHUNK):
        chunk = bits[start : start + _CHUNK].to(torch.int64)
        total += chunk.sum()
        squares += (chunk * chunk).sum()
    idx = torch.linspace(0, max(bits.numel() - 1, 0), min(samples, bits.numel()), device=flat.device).long()
    picked = bits[idx].to(torch.int64).cpu().tolist()
    return json.dumps([int(total), int(squares), picked]).encode()


def model_fingerprint(model: nn.Module) -> str:
    """A stable id of a model: 16 hex digits of a SHA-256 over

    - `config.model_type` and the config's JSON (`to_dict()`, sorted keys) without the entries that only
      say how it was loaded (`dtype`, `_name_or_path`, `transformers_version`, `architectures`, the
      attention implementation, output flags, `use_cache`);
    - for every parameter, by name: its shape, and exact integer statistics of its values rounded to
      bfloat16 (the sum and the sum of squares of the bf16 bit patterns over all elements, and the bit
      patterns at 256 evenly spaced positions).

    So it is identical after `save_pretrained` + `from_pretrained`, on CPU or GPU, and in float32, bfloat16
    or float16 (fp16 weights cast to bf16 the same way as through fp32), and it differs between two
    random initialisations. Changes smaller than bfloat16's resolution (about 0.4 % of a weight) do not
    change it; quantised weights give a different one. Parameters offloaded to the `meta` device count by
    name and shape only. Buffers are not included.
    """
    config = model.config
    h = hashlib.sha256()
    h.update(str(getattr(config, "model_type", "")).encode())
    h.update(json.dumps(_config_essentials(config.to_dict()), sort_keys=True, default=str).encode())
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        h.update(f"{name}:{tuple(p.shape)}".encode())
        if p.device.type != "meta":
            with torch.no_grad():
                h.update(_tensor_digest(p))
    return h.hexdigest()[:16]


# ------------------------------------------------------------------------------------------ devices


_DEVICE_TYPES = ("cpu", "cuda", "mps")
_DEVICE_HINT = "use --device cpu or auto (in Python: device='cpu' or 'auto')"


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The one device resolver of the kit (`egokit.load`, every command, the tour and the recipes).

    `"auto"` → CUDA when available, else CPU; `"cpu"`, `"cuda"`, `"cuda:N"` and `"mps"` are checked
    against this machine. Raises `DeviceError` (one line, saying what to pass instead) for an unknown name
    or a device that is not there, before any model is read.
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as e:
        raise DeviceError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from e
    if resolved.type not in _DEVICE_TYPES:
        raise DeviceError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N")
    if resolved.type == "cuda":
        _check_cuda(str(device), resolved)
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"device {str(device)!r} was asked for but Apple's MPS is not available here; "
                          + _DEVICE_HINT)
    return resolved


def _check_cuda(asked: str, resolved: torch.device) -> None:
    if not torch.cuda.is_available():
        why = ("this torch is built without CUDA" if torch.version.cuda is None
               else "torch sees no GPU (check the driver and CUDA_VISIBLE_DEVICES)")
        raise DeviceError(f"device {asked!r} was asked for but no CUDA GPU is available ({why}); " + _DEVICE_HINT)
    count = torch.cuda.device_count()
    if resolved.index is not None and resolved.index >= count:
        raise DeviceError(f"device {asked!r} was asked for but this machine has {count} CUDA GPU(s): "
                          f"use cuda:0 to cuda:{count - 1}, or --device auto")


def resolve_dtype(
    dtype: str | torch.dtype | None, device: torch.device, checkpoint_dtype: Any = None
) -> torch.dtype:
    """`None`: float32 on CPU; on CUDA the checkpoint's dtype, or bfloat16 (float16 where bf16 is not
    supported) when the checkpoint records none. `"auto"`: the checkpoint's dtype (float32 if none)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    saved = _as_dtype(checkpoint_dtype)
    if dtype is None:
        if device.type != "cuda":
            return torch.float32
        if saved is not None:
            return saved
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if dtype == "auto":
        return saved or torch.float32
    resolved = _as_dtype(dtype)
    if resolved is None:
        raise ModelLoadError(f"unknown dtype {dtype!r}: use float32, bfloat16, float16 or 'auto'")
    return resolved


def _as_dtype(value: Any) -> torch.dtype | None:
    if isinstance(value, torch.dtype):
        return value
    if isinstance(value, str):
        return _DTYPE_NAMES.get(value.removeprefix("torch.").lower())
    return None


# ------------------------------------------------------------------------------------------ sources


@dataclass
class _Source:
    kind: str  # "folder", "micro" or "hub"
    where: str  # folder path or hub id
    config: dict[str, Any]
    local_only: bool = False  # a hub id read from the local cache because the hub cannot be reached


def _offline() -> bool:
    flag = os.environ.get("HF_HUB_OFFLINE", "") or os.environ.get("TRANSFORMERS_OFFLINE", "")
    return flag.strip().lower() in {"1", "true", "yes", "on"}


def _how_to_get(name: str) -> str:
    return (
        f"On a machine with a network, download it with `hf download {name} --local-dir FOLDER` "
        f"(older huggingface_hub: `huggingface-cli download {name} --local-dir FOLDER`), copy FOLDER here "
        "and pass its path: egokit.load('FOLDER'). Any local folder with config.json, weights and "
        "processor files works the same way."
    )


def _read_config(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"cannot read {folder / 'config.json'}: {e}; is it a model folder?") from e


def micro_models() -> list[str]:
    """Names of the micro models present in this installation."""
    if not ZOO_DIR.is_dir():
        return []
    return sorted(p.name for p in ZOO_DIR.iterdir() if (p / "config.json").is_file())


def _folder_source(folder: Path, kind: str) -> _Source:
    if not folder.is_dir():
        raise ModelLoadError(
            f"{str(folder)!r} is a file, not a model folder: pass the folder that holds config.json"
        )
    if not (folder / "config.json").is_file():
        present = ", ".join(sorted(p.name for p in folder.iterdir())[:10]) or "nothing"
        raise ModelLoadError(
            f"{str(folder)!r} has no config.json (it holds: {present}); pass a folder written by "
            "save_pretrained (config.json, weights and processor files)"
        )
    return _Source(kind, str(folder), _read_config(folder))


_OFFLINE_HINT = (
    "Set HF_HUB_OFFLINE=1 to work from the local cache only (an uncached model then fails at once)."
)
_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the hub's endpoint opens within `timeout` seconds (name lookup
    included). True when a proxy is configured: the connection then goes through it, which this does not
    try."""
    import socket
    import threading
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    if any(os.environ.get(v) for v in _PROXY_VARIABLES):
        return True
    url = urlsplit(constants.ENDPOINT)
    host, port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
    if not host:
        return True
    outcome: list[bool] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(True)
        except OSError:
            outcome.append(False)

    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    return bool(outcome and outcome[0])


def _hub_host() -> str:
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    return urlsplit(constants.ENDPOINT).hostname or constants.ENDPOINT


def _hub_source(name: str, **hub_kwargs: Any) -> _Source:
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError

    local_only = bool(hub_kwargs.get("local_files_only"))
    if not _offline() and not local_only and not _hub_reachable():
        # huggingface_hub would retry for half a minute: decide now, from the cache alone.
        cached = try_to_load_from_cache(name, "config.json", cache_dir=hub_kwargs.get("cache_dir"),
                                        revision=hub_kwargs.get("revision"))
        if not isinstance(cached, str):
            raise ModelLoadError(
                f"cannot load {name!r}: the hub ({_hub_host()}) cannot be reached from here and the model "
                f"is not in the local cache. {_OFFLINE_HINT} " + _how_to_get(name)
            )
        hub_kwargs = {**hub_kwargs, "local_files_only": True}
        local_only = True
    try:
        path = hf_hub_download(name, "config.json", **hub_kwargs)
    except GatedRepoError as e:
        raise ModelLoadError(
            f"{name!r} is gated on the hub: accept its licence on its page and log in (`hf auth login`). "
            + _how_to_get(name)
        ) from e
    except RepositoryNotFoundError as e:
        raise ModelLoadError(
            f"no folder named {name!r} here, and no model {name!r} on the hub (or it is private). "
            + _how_to_get(name)
        ) from e
    except LocalEntryNotFoundError as e:
        why = (
            "the hub is offline (HF_HUB_OFFLINE=1; unset it where there is a network to download) and it "
            "is not in the local cache"
            if _offline() or local_only
            else f"the hub cannot be reached and it is not in the local cache. {_OFFLINE_HINT}"
        )
        raise ModelLoadError(f"cannot load {name!r}: {why}. " + _how_to_get(name)) from e
    except Exception as e:  # network errors, bad ids, ...
        raise ModelLoadError(f"cannot load {name!r} from the hub: {_first_line(e)}. {_OFFLINE_HINT} "
                             + _how_to_get(name)) from e
    return _Source("hub", name, _read_config(Path(path).parent), local_only=local_only)


def _first_line(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[0] if lines else type(e).__name__


def _resolve(name_or_path: str | os.PathLike[str], **hub_kwargs: Any) -> _Source:
    name = os.fspath(name_or_path)
    if not name:
        raise ModelLoadError("empty model name: pass a folder, a hub id or a micro model name")
    if name.startswith(MICRO_PREFIX) and "/" not in name:
        folder = ZOO_DIR / name
        if not (folder / "config.json").is_file():
            have = ", ".join(micro_models()) or "none yet"
            raise ModelLoadError(
                f"the micro model {name!r} is not built yet: it would be the folder {folder} "
                f"(micro models present: {have}). Build it with "
                f"`python -m egokit.recipes.train {name.removeprefix(MICRO_PREFIX)} --out {folder}`, "
                "or pass a folder or a hub id."
            )
        return _folder_source(folder, "micro")
    path = Path(name).expanduser()
    if path.exists():
        return _folder_source(path, "folder")
    if isinstance(name_or_path, os.PathLike) or not _HUB_ID.match(name) or name.startswith((".", "~")):
        raise ModelLoadError(
            f"no folder at {name!r}: pass an existing model folder (with config.json), a hub id such as "
            "'llava-hf/llava-1.5-7b-hf', or a micro model name such as 'micro-clip'"
        )
    return _hub_source(name, **hub_kwargs)


# ------------------------------------------------------------------------------------------ loading


def _adapter_class(config: dict[str, Any], where: str, trust_remote_code: bool) -> type[Adapter]:
    model_type = config.get("model_type")
    registry = load_adapters()
    if model_type in registry:
        return registry[model_type]
    supported = ", ".join(sorted(registry))
    hint = ""
    if config.get("auto_map") and not trust_remote_code:
        hint = " It ships its own code (auto_map); the kit has no adapter for it either way."
    broken = f" (family modules that failed to import: {', '.join(IMPORT_ERRORS)})" if IMPORT_ERRORS else ""
    what = f"model_type {model_type!r}" if model_type else "no model_type"
    raise ModelLoadError(
        f"{where} has {what}, which egokit does not support. Supported families (model_type): "
        f"{supported}.{hint}{broken}"
    )


def _model_class(adapter_cls: type[Adapter]) -> Any:
    auto = getattr(adapter_cls, "auto_class", None)
    if auto is not None:
        return auto
    if GENERATES_TEXT in adapter_cls.capabilities:
        from transformers import AutoModelForImageTextToText

        return AutoModelForImageTextToText
    from transformers import AutoModel

    return AutoModel


def _load_processor(where: str, model_type: str, adapter_cls: type[Adapter], **kwargs: Any) -> Any:
    from egokit.models.processors import load_processor

    try:
        processor = load_processor(where, model_type, **kwargs)
    except Exception as e:
        raise ModelLoadError(
            f"cannot load the processor of {where!r}: {e}. The folder needs the processor files that "
            "save_pretrained writes (tokenizer files, processor_config.json or preprocessor_config.json); "
            "or pass one: egokit.load(..., processor=...)"
        ) from e
    if getattr(processor, "image_processor", None) is None:
        raise ModelLoadError(
            f"{where!r} has a tokenizer but no image processor (preprocessor_config.json): save the "
            "processor with save_pretrained, or pass one: egokit.load(..., processor=...)"
        )
    return processor


def load(
    name_or_path: str | os.PathLike[str],
    device: str | torch.device = "auto",
    dtype: str | torch.dtype | None = None,
    *,
    attn_implementation: str | dict[str, str] | None = "sdpa",
    trust_remote_code: bool = False,
    device_map: str | dict[str, Any] | None = None,
    processor: Any = None,
    **kwargs: Any,
) -> LoadedModel:
    """Load a model, its processor and its adapter (see the module docstring for what is accepted).

    device:    "auto" (CUDA when available, else CPU), "cpu", "cuda", "cuda:1", ...
    dtype:     None → float32 on CPU, the checkpoint's dtype on CUDA (bfloat16/float16 if it records
               none); or "float32" / "bfloat16" / "float16" / "auto" / a torch dtype.
    attn_implementation: "sdpa" (default), "eager" (attention weights from every layer), or a per
               sub-config dict; `egokit.capture` works with any of them.
    device_map: e.g. "auto" to shard a large model over several GPUs with accelerate (then `device` is
               where inputs go: the device of the input embeddings).
    processor: use this processor instead of loading one from the folder.
    kwargs:    passed to the model's `from_pretrained` (e.g. `revision`, `cache_dir`, `quantization_config`).
    Raises `ModelLoadError` with what to do when anything is missing.
    """
    target = resolve_device(device)  # a device that is not there fails before anything is read
    hub_kwargs = {k: kwargs[k] for k in ("revision", "cache_dir", "token", "local_files_only") if k in kwargs}
    source = _resolve(name_or_path, **hub_kwargs)
    if source.local_only:
        hub_kwargs["local_files_only"] = kwargs["local_files_only"] = True
    adapter_cls = _adapter_class(source.config, repr(source.where), trust_remote_code)
    torch_dtype = resolve_dtype(dtype, target, source.config.get("dtype") or source.config.get("torch_dtype"))
    load_kwargs: dict[str, Any] = {"dtype": torch_dtype, "trust_remote_code": trust_remote_code, **kwargs}
    if attn_implementation is not None:
        load_kwargs["attn_implementation"] = attn_implementation
    if device_map is not None:
        load_kwargs["device_map"] = device_map
    elif target.type != "cpu":
        load_kwargs["device_map"] = {"": target}
    model_class = _model_class(adapter_cls)
    with _cache_only(source.local_only):
        try:
            model = model_class.from_pretrained(source.where, **load_kwargs)
        except Exception as e:
            raise _weights_error(e, source.where, model_class) from e
        model.eval()
        _own_cpu_memory(model)
        if processor is None:
            processor = _load_processor(
                source.where,
                str(source.config.get("model_type")),
                adapter_cls,
                trust_remote_code=trust_remote_code,
                **hub_kwargs,
            )
    settings = read_settings(source.where) if source.kind in ("folder", "micro") else {}
    return _wrap(model, processor, os.fspath(name_or_path), adapter_cls, settings)


@contextmanager
def _cache_only(on: bool) -> Iterator[None]:
    """While `on`, huggingface_hub (and transformers through it) reads the local cache only, as with
    HF_HUB_OFFLINE=1: a cached model whose hub cannot be reached loads without half a minute of retries."""
    if not on:
        yield
        return
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


def _weights_error(e: Exception, where: str, model_class: Any) -> ModelLoadError:
    """One line saying why the weights of `where` could not be read and what to do."""
    import pickle

    from safetensors import SafetensorError

    if isinstance(e, pickle.UnpicklingError) or "weights only load failed" in str(e).lower():
        return ModelLoadError(
            f"refused the weights of {where!r}: they are a pickle (.bin/.pt) holding objects other than "
            "tensors, and loading it could run code from the file. Use a model saved as safetensors; if you "
            "trust its source, convert it once elsewhere (load it there and save_pretrained, which writes "
            "model.safetensors)"
        )
    if isinstance(e, SafetensorError):
        return ModelLoadError(
            f"the weights file of {where!r} is damaged or truncated ({_first_line(e)}): download or copy "
            "model.safetensors again"
        )
    name = getattr(model_class, "__name__", str(model_class))
    return ModelLoadError(f"cannot load the weights of {where!r} as {name}: {type(e).__name__}: {_first_line(e)}")


def _own_cpu_memory(model: nn.Module, alignment: int = 64) -> None:
    """Copy CPU tensors that still point into the memory-mapped weights file at an unaligned address.

    safetensors maps the file; tensors at odd offsets make CPU kernels take other code paths, which
    changes results in the last bit (a loaded model would not reproduce the in-memory one exactly).
    Copying them gives ordinary aligned memory (tied parameters stay tied: the Parameter is shared).
    """
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.device.type == "cpu" and tensor.numel() and tensor.data_ptr() % alignment:
                tensor.data = tensor.data.clone()


def _wrap(model: nn.Module, processor: Any, name: str, adapter_cls: type[Adapter],
          settings: dict[str, dict[str, Any]] | None = None) -> LoadedModel:
    from egokit.models.adapters.common import model_device_dtype

    device, _ = model_device_dtype(model)
    return LoadedModel(
        model=model, processor=processor, adapter=adapter_cls(model, processor), name=name, device=device,
        settings=dict(settings or {}),
    )


def from_model(model: nn.Module, processor: Any = None, name: str | None = None,
               settings: dict[str, dict[str, Any]] | None = None) -> LoadedModel:
    """Wrap a model already in memory (e.g. a tiny one from `egokit.models.tiny`) as a `LoadedModel`;
    `settings` as in `egokit.json` (method → its settings)."""
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type is None:
        raise ModelLoadError(f"{type(model).__name__} has no config.model_type: pass a transformers model")
    adapter_cls = _adapter_class({"model_type": model_type}, type(model).__name__, False)
    return _wrap(model, processor, name or f"<in-memory {type(model).__name__}>", adapter_cls, settings)


__all__ = [
    "DeviceError",
    "LoadedModel",
    "ZOO_DIR",
    "from_model",
    "load",
    "micro_models",
    "model_fingerprint",
    "resolve_device",
    "resolve_dtype",
]
