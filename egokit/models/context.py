"""Soft visual tokens in a model's context: the one way the kit puts memories and images between text.

A context is a list of pieces — text, memories (K rows of projector outputs each), test images and, for
training batches, empty slots — rendered as one user turn by the model's chat template, with one image
placeholder per memory, image and slot:

    [memory bix] "this is bix ." [memory dax] "this is dax ." [test image] "is bix in this image ?"

The rendered text is tokenized as a whole (so the tokenizer behaves as it always does); then each
memory's or slot's placeholder becomes K image-token ids and each test image's placeholder the token run
the processor expands it to (`token_ids`). `assemble` writes the token embeddings and then the rows at
the image-token positions, in order — exactly what the model does itself with `pixel_values`, so a whole
image given as a memory gives the same logits as the image. The model then runs on `inputs_embeds`
(`egokit.models.generation.greedy_from_embeds`).

- `build(loaded, pieces)`: one context (`Context`, a batch of one);
- `build_batch(loaded, prompts)`: several contexts, left-padded into one `Batch` (each row's answer starts
  at the last position), token for token what one context at a time gives;
- `token_ids` + `assemble`: the two steps on their own, for training batches whose rows are computed
  later (`Slot`).

Families with multimodal rotary positions (`adapter.rope == "mrope"`, Qwen2-VL) get 3-D positions from
the family's "rope_index" part for the test images; memory tokens count as text positions there. For the
micro VLM the rendered prompt is `USER: <image> this is bix .<image> is bix in this image ? ASSISTANT:`,
the layout it was trained with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from egokit.errors import InputError
from egokit.models.adapters.base import ImageTokens
from egokit.models.text import check_context, context_limit

TEXT, MEMORY, IMAGE = 0, 1, 2  # what a token of a context is (`token_ids`' kinds)


@dataclass
class EncodedImage:
    """A test image ready to be placed in a context: the token run its placeholder expands to, the rows
    that fill its image tokens, and what the model needs besides (Qwen2-VL's `image_grid_thw`)."""

    ids: list[int]
    features: torch.Tensor
    layout: ImageTokens | None
    grid_thw: torch.Tensor | None = None
    image: Any = None


@dataclass(frozen=True)
class Slot:
    """`n` soft-token positions whose rows are written later with `assemble` (training batches)."""

    n: int


@dataclass(frozen=True)
class Memory:
    """A memory piece of a context: its rows (K, D)."""

    rows: torch.Tensor


@dataclass(frozen=True)
class Picture:
    """A test-image piece of a context."""

    encoded: EncodedImage


Piece = str | Slot | Memory | Picture


@dataclass
class Context:
    """Model inputs for one context (a batch of one)."""

    embeds: torch.Tensor                 # (1, L, D)
    attention_mask: torch.Tensor         # (1, L)
    position_ids: torch.Tensor | None    # (3, 1, L) for M-RoPE models, else None (ordinary positions)
    input_ids: torch.Tensor              # (L,) — image-token ids where memories and images sit
    text: str                            # the rendered prompt, one placeholder per memory / image
    memory_positions: list[torch.Tensor] = field(default_factory=list)
    image_positions: list[torch.Tensor] = field(default_factory=list)

    @property
    def length(self) -> int:
        return int(self.embeds.shape[1])


@dataclass
class Batch:
    """Model inputs for several contexts, left-padded: every row's answer starts at the last position."""

    embeds: torch.Tensor                 # (B, L, D); padding positions hold the pad token's embedding
    attention_mask: torch.Tensor         # (B, L), 0 on padding
    position_ids: torch.Tensor           # (B, L) counted from each row's first token, or (3, B, L) for M-RoPE
    input_ids: torch.Tensor              # (B, L)
    texts: list[str]
    lengths: list[int]                   # each row's own length

    def __len__(self) -> int:
        return int(self.embeds.shape[0])


# ---------------------------------------------------------------------------------------------- pieces


def tokenizer_of(loaded: Any) -> Any:
    """The tokenizer of a loaded model (its processor's, or the processor itself for text-only models)."""
    return getattr(loaded.processor, "tokenizer", loaded.processor)


def _ids_of(encoded: Any) -> list[int]:
    ids = encoded["input_ids"]
    return list(ids[0]) if ids and isinstance(ids[0], list) else list(ids)


def _placeholder_ids(loaded: Any) -> tuple[list[int], int]:
    """Token ids of the image placeholder alone (with the tokenizer's own specials) and its index."""
    adapter = loaded.adapter
    ids = _ids_of(tokenizer_of(loaded)(adapter.image_token))
    where = [i for i, t in enumerate(ids) if t == adapter.image_token_id]
    if len(where) != 1:
        raise InputError(f"the tokenizer does not encode {adapter.image_token!r} as one token")
    return ids, where[0]


@torch.no_grad()
def encode_image(loaded: Any, image: Any) -> EncodedImage:
    """Run the processor and the vision side once for a test image (reusable across questions)."""
    adapter = loaded.adapter
    inputs = adapter.prepare([image], adapter.image_token)
    expanded = inputs["input_ids"][0].tolist()
    alone, at = _placeholder_ids(loaded)
    prefix, suffix = alone[:at], alone[at + 1:]
    if expanded[: len(prefix)] != prefix or (suffix and expanded[len(expanded) - len(suffix):] != suffix):
        raise InputError("cannot find how the processor expands an image placeholder for this model")
    run = expanded[len(prefix): len(expanded) - len(suffix)]
    features = adapter.image_features(inputs)
    if len(features) != 1:
        raise InputError(f"expected features of one image, got {len(features)}")
    rows = features[0]
    n_image = sum(1 for t in run if t == adapter.image_token_id)
    if rows.shape[0] != n_image:
        raise InputError(f"the image has {rows.shape[0]} feature rows for {n_image} image tokens")
    layout = adapter.visual_layout(inputs, 0)
    grid = inputs.get("image_grid_thw")
    return EncodedImage(ids=run, features=rows, layout=layout[0] if layout else None,
                        grid_thw=None if grid is None else torch.as_tensor(grid).reshape(-1, 3), image=image)


def render(loaded: Any, pieces: Sequence[Piece]) -> str:
    """The prompt text of a context: one user turn through the chat template (or a plain fallback)."""
    adapter = loaded.adapter
    token = adapter.image_token
    content: list[dict[str, Any]] = []
    for p in pieces:
        if isinstance(p, (Slot, Memory, Picture)):
            content.append({"type": "image"})
        elif isinstance(p, str):
            if token in p:
                raise InputError(f"a text piece contains the image placeholder {token!r}")
            content.append({"type": "text", "text": p})
        else:
            raise InputError(f"a context piece must be text, a Memory, a Picture or a Slot, not {type(p).__name__}")
    messages = [{"role": "user", "content": content}]
    for owner in (loaded.processor, tokenizer_of(loaded)):
        if getattr(owner, "chat_template", None):
            return owner.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    body = "".join(token if c["type"] == "image" else c["text"] for c in content)
    sentinel = "\x00EGO\x00"
    return adapter.prompt(sentinel, 0).replace(sentinel, body)


def _slot_size(piece: Slot | Memory) -> int:
    return int(piece.n) if isinstance(piece, Slot) else int(piece.rows.shape[0])


def token_ids(loaded: Any, pieces: Sequence[Piece]) -> tuple[list[int], list[int]]:
    """The context's token ids (ending with the generation prompt) and each token's kind (`TEXT`,
    `MEMORY` for memories and slots, `IMAGE`): every slot or memory placeholder expanded to K image-token
    ids, every test image's to the processor's run."""
    ids, kinds, _, _ = _expand(loaded, pieces)
    return ids, kinds


def _expand(loaded: Any, pieces: Sequence[Piece]) -> tuple[list[int], list[int], list[int], str]:
    """`token_ids`, where each slot's, memory's or image's run starts, and the rendered text."""
    image_id = loaded.adapter.image_token_id
    text = render(loaded, pieces)
    ids = _ids_of(tokenizer_of(loaded)(text))
    slots = [p for p in pieces if isinstance(p, (Slot, Memory, Picture))]
    where = [i for i, t in enumerate(ids) if t == image_id]
    if len(where) != len(slots):
        raise InputError(f"the rendered prompt holds {len(where)} image placeholders for {len(slots)} memories "
                         "and images; does the chat template write one placeholder per image?")
    out: list[int] = []
    kinds: list[int] = []
    starts: list[int] = []
    last = 0
    for pos, slot in zip(where, slots):
        out += ids[last:pos]
        kinds += [TEXT] * (pos - last)
        starts.append(len(out))
        if isinstance(slot, Picture):
            out += slot.encoded.ids
            kinds += [IMAGE if t == image_id else TEXT for t in slot.encoded.ids]
        else:
            k = _slot_size(slot)
            out += [image_id] * k
            kinds += [MEMORY] * k
        last = pos + 1
    out += ids[last:]
    kinds += [TEXT] * (len(ids) - last)
    return out, kinds, starts, text


def assemble(model: Any, input_ids: torch.Tensor, rows: Sequence[torch.Tensor], image_token_id: int) -> torch.Tensor:
    """Input embeddings of `input_ids` (B, L) with the image-token positions filled by `rows`.

    rows: (n_i, D) tensors in the order their slots appear, row by row through the batch; together they
    fill every image-token position."""
    embeds = model.get_input_embeddings()(input_ids)
    mask = input_ids == image_token_id
    n = int(mask.sum())
    if n == 0:
        return embeds
    for r in rows:
        if r.shape[-1] != embeds.shape[-1]:
            raise InputError(f"memory rows have width {r.shape[-1]} but the model's embeddings {embeds.shape[-1]}: "
                             "the memory was made with another model")
    filled = torch.cat([r.to(device=embeds.device, dtype=embeds.dtype) for r in rows], dim=0)
    if filled.shape[0] != n:
        raise InputError(f"the prompt has {n} image-token positions but the memories hold {filled.shape[0]} rows")
    return embeds.masked_scatter(mask.unsqueeze(-1), filled)


def pad(rows: Sequence[Sequence[int]], value: int, side: str = "right") -> torch.Tensor:
    """Stack ragged rows into a (B, L) long tensor, padding on `side` ("right" or "left")."""
    length = max(len(r) for r in rows)
    out = torch.full((len(rows), length), value, dtype=torch.long)
    for i, r in enumerate(rows):
        if side == "right":
            out[i, :len(r)] = torch.tensor(r, dtype=torch.long)
        else:
            out[i, length - len(r):] = torch.tensor(r, dtype=torch.long)
    return out


# ---------------------------------------------------------------------------------------------- contexts


@dataclass
class _Laid:
    ids: list[int]
    kinds: list[int]
    rows: list[torch.Tensor]
    grids: list[torch.Tensor]
    spans: list[tuple[int, int, int]]  # (start, n rows, kind) per memory / image
    text: str


def _lay_out(loaded: Any, pieces: Sequence[Piece]) -> _Laid:
    for p in pieces:
        if isinstance(p, Slot):
            raise InputError("a Slot has no rows to put in a context: pass Memory(rows) (slots are for "
                             "training batches, filled with assemble)")
    ids, kinds, starts, text = _expand(loaded, pieces)
    slots = [p for p in pieces if isinstance(p, (Memory, Picture))]
    rows, grids, spans = [], [], []
    for slot, start in zip(slots, starts):
        if isinstance(slot, Memory):
            rows.append(slot.rows)
            spans.append((start, int(slot.rows.shape[0]), MEMORY))
        else:
            rows.append(slot.encoded.features)
            spans.append((start, int(slot.encoded.features.shape[0]), IMAGE))
            if slot.encoded.grid_thw is not None:
                grids.append(slot.encoded.grid_thw)
    return _Laid(ids, kinds, rows, grids, spans, text)


def _mrope_positions(loaded: Any, input_ids: torch.Tensor, kinds: torch.Tensor,
                     grids: list[torch.Tensor]) -> torch.Tensor:
    """(3, 1, L) M-RoPE positions of one context: 3-D for test images, text positions for the rest."""
    device = input_ids.device
    if not grids:
        return torch.arange(len(input_ids), device=device).view(1, 1, -1).expand(3, 1, -1)
    # Always explicit: a model left to infer M-RoPE positions from `inputs_embeds` reuses stale deltas.
    owner = loaded.adapter.module("rope_index")
    types = (kinds == IMAGE).int()[None]
    positions, _ = owner.get_rope_index(input_ids[None], mm_token_type_ids=types,
                                        image_grid_thw=torch.cat(grids).to(device))
    return positions


def build(loaded: Any, pieces: Sequence[Piece]) -> Context:
    """Model inputs (`inputs_embeds`, mask, positions) for one context (see the module docstring).
    Raises `InputError` when the context is longer than the model's context length."""
    laid = _lay_out(loaded, pieces)
    check_context(len(laid.ids), context_limit(loaded.model, tokenizer_of(loaded)))
    device = loaded.device
    input_ids = torch.tensor(laid.ids, dtype=torch.long, device=device)
    kinds = torch.tensor(laid.kinds, dtype=torch.long, device=device)
    embeds = assemble(loaded.model, input_ids[None], laid.rows, loaded.adapter.image_token_id)
    memory_positions, image_positions = [], []
    for start, n, kind in laid.spans:
        if kind == MEMORY:
            memory_positions.append(torch.arange(start, start + n, device=device))
        else:
            image_positions.append(start + torch.nonzero(kinds[start:] == IMAGE).flatten()[:n])
    position_ids = None
    if loaded.adapter.rope == "mrope":
        position_ids = _mrope_positions(loaded, input_ids, kinds, laid.grids)
    return Context(embeds=embeds, attention_mask=torch.ones_like(input_ids)[None], position_ids=position_ids,
                   input_ids=input_ids, text=laid.text, memory_positions=memory_positions,
                   image_positions=image_positions)


def build_batch(loaded: Any, prompts: Sequence[Sequence[Piece]]) -> Batch:
    """Several contexts as one left-padded batch (see the module docstring)."""
    if not prompts:
        raise InputError("no prompts to batch")
    laid = [_lay_out(loaded, p) for p in prompts]
    tok = tokenizer_of(loaded)
    pad_id = getattr(tok, "pad_token_id", None)
    if pad_id is None:
        pad_id = getattr(tok, "eos_token_id", None) or 0
    device = loaded.device
    input_ids = pad([x.ids for x in laid], int(pad_id), side="left").to(device)
    mask = pad([[1] * len(x.ids) for x in laid], 0, side="left").to(device)
    embeds = assemble(loaded.model, input_ids, [r for x in laid for r in x.rows], loaded.adapter.image_token_id)
    if loaded.adapter.rope == "mrope":
        position_ids = torch.zeros((3, len(laid), input_ids.shape[1]), dtype=torch.long, device=device)
        for b, x in enumerate(laid):
            row = torch.tensor(x.ids, dtype=torch.long, device=device)
            kinds = torch.tensor(x.kinds, dtype=torch.long, device=device)
            position_ids[:, b, input_ids.shape[1] - len(x.ids):] = _mrope_positions(loaded, row, kinds, x.grids)[:, 0]
    else:
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    return Batch(embeds=embeds, attention_mask=mask, position_ids=position_ids, input_ids=input_ids,
                 texts=[x.text for x in laid], lengths=[len(x.ids) for x in laid])


__all__ = [
    "IMAGE",
    "MEMORY",
    "TEXT",
    "Batch",
    "Context",
    "EncodedImage",
    "Memory",
    "Picture",
    "Piece",
    "Slot",
    "assemble",
    "build",
    "build_batch",
    "encode_image",
    "pad",
    "render",
    "token_ids",
    "tokenizer_of",
]
