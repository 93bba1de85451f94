"""Concept memories and the memory bank: what Ego keeps per personal concept, and how it is stored.

A `ConceptMemory` is a few projector-output embeddings (the language model's input embeddings of the
chosen visual tokens, raster order, views one after another) plus everything needed to explain them:
the name, the description and its keywords, per view the attention scores of every token, the chosen
token indices, their pixel boxes and grid, and the fingerprint of the model that made them (a memory
is only meaningful to that model).

Both are results (`egokit.results.Result`: `to_dict`, a picture, `save` / `load`), with the bank's own
file layout. A `MemoryBank` holds many concepts for one model. `save(path)` writes one safetensors file: tensors
named `c<i>.<field>` and, in the file's metadata, a JSON document (schema version, fingerprint, each
concept's fields) and a SHA-256 digest over the JSON and every tensor's bytes. The write is atomic (a
temporary file in the same folder, fsync, rename), so a bank on disk is never half-written. `load`
reads it back without pickle and raises `MemoryFileError` (an `EgokitError`) for a missing, truncated,
corrupted or tampered file, a newer schema, or — when given a model — a bank made with another model.
A `ConceptMemory` saves as a bank of one concept.

`MemoryBank.update(path, model, change)` is the read-modify-write a command needs (load or create the
bank, change it, save it) under a lock on the file, so that runs adding concepts to one bank at the same
time each keep theirs. A replaced bank keeps its file permissions.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image

from egokit.errors import InputError, MemoryFileError
from egokit.files import atomic_path, file_lock
from egokit.results import Result, content_digest, owned_tensors

FILE_KIND = "egokit.ego.memory_bank"
SCHEMA_VERSION = 1  # the bank's schema (its FILE_VERSION)


@dataclass(repr=False)
class MemoryView:
    """What one reference view contributed to a memory.

    scores:    (N,) float — the selection score of every visual token of the view (Ego: keyword→visual
               attention; oracle: mask coverage; uniform/random/all/keywords: zeros).
    selected:  (k,) long — indices (into the view's tokens) kept, ascending.
    boxes:     (N, 4) float — each token's pixel box (x0, y0, x1, y1) in the view's image.
    grid:      (rows, cols) of the view's token grid.
    image:     (H, W, 3) uint8 — the view, for pictures (not part of what the model is given).
    """

    scores: torch.Tensor
    selected: torch.Tensor
    boxes: torch.Tensor
    grid: tuple[int, int]
    image: np.ndarray | None = None

    @property
    def n_tokens(self) -> int:
        return int(self.scores.numel())


@dataclass(repr=False)
class ConceptMemory(Result):
    """One personal concept as Ego remembers it (see the module docstring).

    name:        the concept's name (what the model is told: "this is <name> .").
    embeddings:  (K, D) — the memory tokens given to the model, raster order, views concatenated;
                 (0, D) for a text-only (keywords) memory.
    selection:   how tokens were chosen: "ego", "uniform", "random", "oracle", "all" or "keywords".
    description: the model's description of the subject (or the caller's); keywords: its keyword words.
    views:       one `MemoryView` per reference view.
    layers, aggregate: the language-model layers and the reduction used for Ego's scores.
    budget:      tokens kept per view; coverage_answer: the model's coverage answer (dynamic budget).
    fingerprint, model_name: the model this memory belongs to.
    seconds:     wall time `remember` took.
    """

    FILE_KIND: ClassVar[str] = FILE_KIND
    FILE_VERSION: ClassVar[int] = SCHEMA_VERSION
    FILE_WHAT: ClassVar[str | None] = "Ego memory bank"

    name: str
    embeddings: torch.Tensor
    selection: str = "ego"
    description: str = ""
    keywords: list[str] = field(default_factory=list)
    views: list[MemoryView] = field(default_factory=list)
    layers: list[int] = field(default_factory=list)
    aggregate: str = "mean"
    budget: list[int] = field(default_factory=list)
    coverage_answer: str | None = None
    fingerprint: str = ""
    model_name: str = ""
    seconds: float = 0.0

    # -- sizes --------------------------------------------------------------------------------------
    @property
    def n_tokens(self) -> int:
        """Memory tokens put in the context."""
        return int(self.embeddings.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes of the memory tokens (what a bank must keep per concept to answer)."""
        return int(self.embeddings.numel() * self.embeddings.element_size())

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[-1])

    def view_of_token(self) -> torch.Tensor:
        """(K,) long — the view each memory token comes from."""
        parts = [torch.full((v.selected.numel(),), j, dtype=torch.long) for j, v in enumerate(self.views)]
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (no tensors except the small per-view index lists)."""
        return {
            "name": self.name,
            "selection": self.selection,
            "description": self.description,
            "keywords": list(self.keywords),
            "tokens": self.n_tokens,
            "bytes": self.nbytes,
            "dim": self.dim,
            "dtype": str(self.embeddings.dtype).removeprefix("torch."),
            "views": [{"grid": list(v.grid), "n_tokens": v.n_tokens, "selected": v.selected.tolist()}
                      for v in self.views],
            "layers": list(self.layers),
            "aggregate": self.aggregate,
            "budget": list(self.budget),
            "coverage_answer": self.coverage_answer,
            "fingerprint": self.fingerprint,
            "model_name": self.model_name,
            "seconds": self.seconds,
        }

    def __repr__(self) -> str:
        return (f"ConceptMemory(name={self.name!r}, selection={self.selection!r}, tokens={self.n_tokens}, "
                f"bytes={self.nbytes}, views={len(self.views)}, keywords={self.keywords})")

    # -- pictures -----------------------------------------------------------------------------------
    def to_image(self, tile: int = 256) -> Image.Image:
        """Each view with its score heatmap and the kept tokens outlined, captioned with the keywords."""
        from egokit.methods.ego.render import memory_picture

        return memory_picture(self, tile=tile)

    # -- files --------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save this memory alone (a bank of one concept)."""
        bank = MemoryBank(fingerprint=self.fingerprint, model_name=self.model_name)
        bank.add(self)
        return bank.save(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str], model: Any = None) -> ConceptMemory:
        """Read a memory written by `save` (a bank of one concept); with `model`, check it is that model's."""
        bank = MemoryBank.load(path, model=model)
        if len(bank) != 1:
            raise MemoryFileError(f"{path} holds a bank of {len(bank)} concepts ({', '.join(bank.names) or 'none'}), "
                                  "not one memory: read it with MemoryBank.load")
        return next(iter(bank))


class MemoryBank(Result):
    """Many concept memories for one model (see the module docstring).

    bank = MemoryBank()            # fingerprint taken from the first memory added
    bank.add(remember(model, image, "bix"))
    bank.save("my.bank")          # one .safetensors file
    bank = MemoryBank.load("my.bank", model=model)   # checks the model fingerprint
    """

    FILE_KIND: ClassVar[str] = FILE_KIND
    FILE_VERSION: ClassVar[int] = SCHEMA_VERSION
    FILE_WHAT: ClassVar[str | None] = "Ego memory bank"

    def __init__(self, memories: list[ConceptMemory] | None = None, fingerprint: str = "", model_name: str = "",
                 layers: list[int] | None = None) -> None:
        self.fingerprint = fingerprint
        self.model_name = model_name
        self.layers = list(layers or [])
        self._memories: dict[str, ConceptMemory] = {}
        for m in memories or []:
            self.add(m)

    # -- container ----------------------------------------------------------------------------------
    def add(self, memory: ConceptMemory, replace: bool = True) -> ConceptMemory:
        """Add (or replace) a concept. Its fingerprint must match the bank's."""
        if not isinstance(memory, ConceptMemory):
            raise InputError(f"a bank holds ConceptMemory objects, not {type(memory).__name__}")
        if not self.fingerprint:
            self.fingerprint = memory.fingerprint
            self.model_name = self.model_name or memory.model_name
        elif memory.fingerprint and memory.fingerprint != self.fingerprint:
            raise InputError(
                f"memory {memory.name!r} was made with model {memory.model_name!r} (fingerprint "
                f"{memory.fingerprint}), but this bank belongs to {self.model_name!r} ({self.fingerprint}); "
                "remember the concept again with the bank's model"
            )
        if memory.name in self._memories and not replace:
            raise InputError(f"the bank already holds a concept named {memory.name!r}")
        if self._memories:
            dim = next(iter(self._memories.values())).dim
            if memory.dim != dim:
                raise InputError(f"memory {memory.name!r} has width {memory.dim}, the bank's memories {dim}")
        self._memories[memory.name] = memory
        return memory

    def remove(self, name: str) -> ConceptMemory:
        if name not in self._memories:
            raise InputError(f"no concept named {name!r} in the bank; it holds {', '.join(self.names) or 'none'}")
        return self._memories.pop(name)

    @property
    def names(self) -> list[str]:
        return list(self._memories)

    def __getitem__(self, name: str) -> ConceptMemory:
        if name not in self._memories:
            raise InputError(f"no concept named {name!r} in the bank; it holds {', '.join(self.names) or 'none'}")
        return self._memories[name]

    def __contains__(self, name: object) -> bool:
        return name in self._memories

    def __iter__(self) -> Iterator[ConceptMemory]:
        return iter(list(self._memories.values()))

    def __len__(self) -> int:
        return len(self._memories)

    def subset(self, names: list[str]) -> MemoryBank:
        """A bank with only the named concepts (same model)."""
        return MemoryBank([self[n] for n in names], self.fingerprint, self.model_name, self.layers)

    def stats(self) -> dict[str, dict[str, int]]:
        """Per concept: memory tokens and bytes."""
        return {m.name: {"tokens": m.n_tokens, "bytes": m.nbytes} for m in self}

    def __repr__(self) -> str:
        parts = ", ".join(f"{m.name}:{m.n_tokens}" for m in self)
        return f"MemoryBank(model={self.model_name!r}, fingerprint={self.fingerprint!r}, concepts=[{parts}])"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary: the model it belongs to and each concept's `ConceptMemory.to_dict()`."""
        return {"fingerprint": self.fingerprint, "model_name": self.model_name, "layers": list(self.layers),
                "concepts": [m.to_dict() for m in self]}

    def to_image(self, tile: int = 220) -> Image.Image:
        """Each concept's first view with its kept tokens outlined, side by side."""
        from egokit.methods.ego.render import bank_picture

        return bank_picture(self, tile=tile)

    def check_model(self, model: Any) -> None:
        """Raise `MemoryFileError` unless `model` (a LoadedModel) is the model this bank was made with."""
        fp = model.fingerprint() if hasattr(model, "fingerprint") else str(model)
        if self.fingerprint and fp != self.fingerprint:
            name = getattr(model, "name", "?")
            raise MemoryFileError(
                f"this memory bank was made with model {self.model_name!r} (fingerprint {self.fingerprint}), "
                f"not with {name!r} (fingerprint {fp}); memories are the model's own input embeddings and "
                "mean nothing to another model: remember the concepts again with this model"
            )

    # -- files --------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:  # the bank's own layout (schema 1), not save_result's
        """Write the bank atomically as one safetensors file (see the module docstring). Returns the path."""
        from safetensors.torch import save_file

        path = Path(path).expanduser()
        tensors, doc = _encode(self)
        tensors = owned_tensors(tensors)  # concepts copied with dataclasses.replace share their tensors
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
        metadata = {"kind": FILE_KIND, "schema": str(SCHEMA_VERSION), "json": text,
                    "sha256": content_digest(text, tensors)}
        if not path.parent.exists():
            raise InputError(f"cannot save the bank: the folder {path.parent} does not exist")
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str], model: Any = None) -> MemoryBank:
        """Read a bank written by `save`; with `model`, check it was made with that model."""
        path = Path(path).expanduser()
        if not path.is_file():
            raise MemoryFileError(f"no memory bank at {path}: pass the file written by MemoryBank.save")
        tensors, metadata = _read(path)
        if metadata.get("kind") != FILE_KIND:
            raise MemoryFileError(f"{path} is a safetensors file but not an Ego memory bank (kind "
                                  f"{metadata.get('kind')!r}); pass a file written by MemoryBank.save")
        try:
            schema = int(metadata.get("schema", ""))
        except ValueError:
            raise MemoryFileError(f"{path} has an unreadable schema version; the file is damaged") from None
        if schema > SCHEMA_VERSION:
            raise MemoryFileError(f"{path} uses bank schema {schema}, newer than this egokit reads "
                                  f"({SCHEMA_VERSION}); upgrade egokit")
        if schema < 1:
            raise MemoryFileError(f"{path} has bank schema {schema}, which no egokit writes (schemas start at 1): "
                                  "the file is damaged or edited; remember the concepts again or restore it from a copy")
        text = metadata.get("json")
        if not isinstance(text, str) or content_digest(text, tensors) != metadata.get("sha256"):
            raise MemoryFileError(f"{path} does not match its checksum: it was corrupted or edited after it was "
                                  "saved; remember the concepts again or restore the file from a copy")
        try:
            doc = json.loads(text)
            bank = _decode(doc, tensors)
        except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as e:
            raise MemoryFileError(f"{path} holds an inconsistent memory bank ({type(e).__name__}: {e})") from e
        if model is not None:
            bank.check_model(model)
        return bank

    @classmethod
    def update(cls, path: str | os.PathLike[str], model: Any, change: Callable[[MemoryBank], Any],
               timeout: float | None = None) -> MemoryBank:
        """Load the bank at `path` (or start one for `model` when there is none), apply `change` to it and
        save it, all under a lock on the file: concurrent updates (two `egokit ego remember` runs on one bank)
        each keep their concepts. With `model`, the bank must be that model's. Returns the saved bank.

            MemoryBank.update("my.bank", model, lambda bank: bank.add(memory))
        """
        path = Path(path).expanduser()
        if not path.parent.exists():
            raise InputError(f"cannot save the bank: the folder {path.parent} does not exist")
        kwargs = {} if timeout is None else {"timeout": timeout}
        with file_lock(path, what="memory bank", **kwargs):
            if path.exists():
                bank = cls.load(path, model=model)
            elif model is not None:
                bank = cls(fingerprint=model.fingerprint(), model_name=getattr(model, "name", ""))
            else:
                bank = cls()
            change(bank)
            bank.save(path)
        return bank


# ---------------------------------------------------------------------------------------------- encoding


def _encode(bank: MemoryBank) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    concepts = []
    for i, m in enumerate(bank):
        tensors[f"c{i}.embeddings"] = m.embeddings.detach().cpu().contiguous()
        views = []
        for j, v in enumerate(m.views):
            key = f"c{i}.v{j}"
            tensors[f"{key}.scores"] = v.scores.detach().float().cpu().contiguous()
            tensors[f"{key}.selected"] = v.selected.detach().long().cpu().contiguous()
            tensors[f"{key}.boxes"] = v.boxes.detach().float().cpu().contiguous()
            has_image = v.image is not None
            if has_image:
                tensors[f"{key}.image"] = torch.from_numpy(np.array(v.image, dtype=np.uint8, copy=True))
            views.append({"grid": [int(g) for g in v.grid], "image": has_image})
        d = m.to_dict()
        d["views"] = views
        concepts.append(d)
    doc = {"fingerprint": bank.fingerprint, "model_name": bank.model_name, "layers": bank.layers,
           "concepts": concepts}
    return tensors, doc


def _decode(doc: dict[str, Any], tensors: dict[str, torch.Tensor]) -> MemoryBank:
    bank = MemoryBank(fingerprint=str(doc["fingerprint"]), model_name=str(doc["model_name"]),
                      layers=[int(x) for x in doc.get("layers", [])])
    for i, d in enumerate(doc["concepts"]):
        emb = tensors[f"c{i}.embeddings"]
        if emb.dim() != 2 or emb.shape[0] != int(d["tokens"]) or not torch.isfinite(emb.float()).all():
            raise ValueError(f"concept {i} ({d.get('name')!r}) has malformed embeddings {tuple(emb.shape)}")
        views = []
        for j, vd in enumerate(d["views"]):
            key = f"c{i}.v{j}"
            scores, selected, boxes = tensors[f"{key}.scores"], tensors[f"{key}.selected"], tensors[f"{key}.boxes"]
            n = scores.numel()
            if boxes.shape != (n, 4) or (selected.numel() and (selected.min() < 0 or selected.max() >= n)):
                raise ValueError(f"concept {i} view {j} has inconsistent token data")
            image = tensors[f"{key}.image"].numpy().copy() if vd.get("image") else None
            views.append(MemoryView(scores, selected, boxes, (int(vd["grid"][0]), int(vd["grid"][1])), image))
        if sum(v.selected.numel() for v in views) != emb.shape[0]:
            raise ValueError(f"concept {i} ({d.get('name')!r}): selected tokens do not match its embeddings")
        bank.add(ConceptMemory(
            name=str(d["name"]), embeddings=emb, selection=str(d["selection"]), description=str(d["description"]),
            keywords=[str(k) for k in d["keywords"]], views=views, layers=[int(x) for x in d["layers"]],
            aggregate=str(d["aggregate"]), budget=[int(x) for x in d["budget"]],
            coverage_answer=d.get("coverage_answer"), fingerprint=str(d["fingerprint"]),
            model_name=str(d["model_name"]), seconds=float(d.get("seconds", 0.0)),
        ))
    return bank


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    try:
        tensors: dict[str, torch.Tensor] = {}
        with safe_open(str(path), framework="pt") as fh:
            metadata = dict(fh.metadata() or {})
            for name in fh.keys():
                tensors[name] = fh.get_tensor(name)
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types for damaged files
        raise MemoryFileError(f"{path} is not a readable memory bank (truncated or corrupted: {e}); "
                              "pass a file written by MemoryBank.save") from None
    return tensors, metadata


__all__ = ["FILE_KIND", "SCHEMA_VERSION", "ConceptMemory", "MemoryBank", "MemoryView"]
