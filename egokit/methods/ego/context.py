"""Putting memories in a model's context as soft visual tokens, and answering from `inputs_embeds`.

A context is a list of pieces — text, memories (K embeddings each) and test images — rendered as one
user turn by the model's chat template, with one image placeholder per memory and per image:

    [memory bix] "this is bix ." [memory dax] "this is dax ." [test image] "is bix in this image ?"

The rendered text is tokenized as a whole (so the tokenizer behaves as it always does); then each
memory's placeholder becomes K image-token ids whose embeddings are replaced by the memory rows, and
each test image's placeholder becomes the token run the processor expands it to, filled with the
image's projector outputs — exactly what the model does itself with `pixel_values`. The model then
runs on `inputs_embeds`. Models with multimodal rotary positions (Qwen2-VL's M-RoPE, found by the
presence of `get_rope_index`) get 3-D positions for the test images; memory tokens count as text
positions there. For the micro VLM this is token for token the layout it was trained with
(`egokit.recipes.prompting`).

Answers are decoded greedily with a KV cache; a yes/no question also gets `p_yes`, the softmax of the
first answer token over the format's yes and no words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from egokit.errors import InputError
from egokit.models.adapters.base import ImageTokens


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
class Memory:
    """A memory piece of a context: its rows (K, D)."""

    rows: torch.Tensor


@dataclass(frozen=True)
class Picture:
    """A test-image piece of a context."""

    encoded: EncodedImage


Piece = str | Memory | Picture


@dataclass
class Context:
    """Model inputs for a context (batch of one)."""

    embeds: torch.Tensor                 # (1, L, D)
    attention_mask: torch.Tensor         # (1, L)
    position_ids: torch.Tensor | None    # (3, 1, L) for M-RoPE models, else None
    input_ids: torch.Tensor              # (L,) — image-token ids where memories and images sit
    text: str                            # the rendered prompt, one placeholder per memory / image
    memory_positions: list[torch.Tensor] = field(default_factory=list)
    image_positions: list[torch.Tensor] = field(default_factory=list)

    @property
    def length(self) -> int:
        return int(self.embeds.shape[1])


# ---------------------------------------------------------------------------------------------- pieces


def tokenizer_of(loaded: Any) -> Any:
    return getattr(loaded.processor, "tokenizer", loaded.processor)


def _rope_owner(model: Any) -> Any:
    for obj in (getattr(model, "model", None), model):
        if obj is not None and hasattr(obj, "get_rope_index"):
            return obj
    return None


def _placeholder_ids(loaded: Any) -> tuple[list[int], int]:
    """Token ids of the image placeholder alone (with the tokenizer's own specials) and its index."""
    adapter = loaded.adapter
    ids = tokenizer_of(loaded)(adapter.image_token)["input_ids"]
    ids = ids[0] if ids and isinstance(ids[0], list) else ids
    where = [i for i, t in enumerate(ids) if t == adapter.image_token_id]
    if len(where) != 1:
        raise InputError(f"the tokenizer does not encode {adapter.image_token!r} as one token")
    return list(ids), where[0]


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
        if isinstance(p, (Memory, Picture)):
            content.append({"type": "image"})
        elif isinstance(p, str):
            if token in p:
                raise InputError(f"a text piece contains the image placeholder {token!r}")
            content.append({"type": "text", "text": p})
        else:
            raise InputError(f"a context piece must be text, a Memory or a Picture, not {type(p).__name__}")
    messages = [{"role": "user", "content": content}]
    for owner in (loaded.processor, tokenizer_of(loaded)):
        if getattr(owner, "chat_template", None):
            return owner.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    body = "".join(token if c["type"] == "image" else c["text"] for c in content)
    sentinel = "\x00EGO\x00"
    return adapter.prompt(sentinel, 0).replace(sentinel, body)


def build(loaded: Any, pieces: Sequence[Piece]) -> Context:
    """Model inputs (`inputs_embeds`, mask, positions) for a context (see the module docstring)."""
    adapter, model = loaded.adapter, loaded.model
    image_id = adapter.image_token_id
    text = render(loaded, pieces)
    ids = tokenizer_of(loaded)(text)["input_ids"]
    ids = ids[0] if ids and isinstance(ids[0], list) else list(ids)
    slots = [p for p in pieces if isinstance(p, (Memory, Picture))]
    where = [i for i, t in enumerate(ids) if t == image_id]
    if len(where) != len(slots):
        raise InputError(f"the rendered prompt holds {len(where)} image placeholders for {len(slots)} memories "
                         "and images; does the chat template write one placeholder per image?")
    out_ids: list[int] = []
    kinds: list[int] = []  # 0 text, 1 memory, 2 image
    fills: list[tuple[int, torch.Tensor, int]] = []  # (start, rows, kind)
    last = 0
    for pos, slot in zip(where, slots):
        out_ids += ids[last:pos]
        kinds += [0] * (pos - last)
        start = len(out_ids)
        if isinstance(slot, Memory):
            k = int(slot.rows.shape[0])
            out_ids += [image_id] * k
            kinds += [1] * k
            fills.append((start, slot.rows, 1))
        else:
            run = slot.encoded.ids
            out_ids += run
            kinds += [2 if t == image_id else 0 for t in run]
            fills.append((start, slot.encoded.features, 2))
        last = pos + 1
    out_ids += ids[last:]
    kinds += [0] * (len(ids) - last)

    device = loaded.device
    input_ids = torch.tensor(out_ids, dtype=torch.long, device=device)
    kind = torch.tensor(kinds, dtype=torch.long, device=device)
    embed = model.get_input_embeddings()
    embeds = embed(input_ids).clone()
    memory_positions, image_positions = [], []
    for start, rows, k in fills:
        if k == 1:
            positions = torch.arange(start, start + rows.shape[0], device=device)
            memory_positions.append(positions)
        else:
            span = kind[start:]
            positions = start + torch.nonzero(span == 2).flatten()[: rows.shape[0]]
            image_positions.append(positions)
        if rows.shape[-1] != embeds.shape[-1]:
            raise InputError(f"memory rows have width {rows.shape[-1]} but the model's embeddings {embeds.shape[-1]}: "
                             "the memory was made with another model")
        embeds[positions] = rows.to(device=device, dtype=embeds.dtype)

    position_ids = None
    owner = _rope_owner(model)
    if owner is not None:
        # Always explicit: a model left to infer M-RoPE positions from `inputs_embeds` reuses stale deltas.
        grids = [s.encoded.grid_thw for s in slots if isinstance(s, Picture) and s.encoded.grid_thw is not None]
        if grids:
            types = (kind == 2).int()[None]
            position_ids, _ = owner.get_rope_index(input_ids[None], mm_token_type_ids=types,
                                                   image_grid_thw=torch.cat(grids).to(device))
        else:
            position_ids = torch.arange(len(out_ids), device=device).view(1, 1, -1).expand(3, 1, -1)
    return Context(embeds=embeds[None], attention_mask=torch.ones_like(input_ids)[None], position_ids=position_ids,
                   input_ids=input_ids, text=text, memory_positions=memory_positions, image_positions=image_positions)


# ---------------------------------------------------------------------------------------------- decoding


def answer_ids(tokenizer: Any, words: Sequence[str]) -> list[int]:
    """First token id of each answer word (deduplicated)."""
    out: list[int] = []
    for w in words:
        ids = tokenizer(w, add_special_tokens=False)["input_ids"]
        ids = ids[0] if ids and isinstance(ids[0], list) else ids
        if ids and ids[0] not in out and ids[0] != getattr(tokenizer, "unk_token_id", None):
            out.append(int(ids[0]))
    return out


def eos_ids(model: Any) -> set[int]:
    ids: set[int] = set()
    for cfg in (getattr(model, "generation_config", None), getattr(model, "config", None)):
        value = getattr(cfg, "eos_token_id", None) if cfg is not None else None
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    return ids


@dataclass
class Decoded:
    token_ids: list[int]
    first_logits: torch.Tensor  # (V,) logits of the first answer token


@torch.no_grad()
def decode(loaded: Any, ctx: Context, max_new_tokens: int = 1) -> Decoded:
    """Greedy decoding from a context with a KV cache."""
    model = loaded.model
    out = model(inputs_embeds=ctx.embeds, attention_mask=ctx.attention_mask, position_ids=ctx.position_ids,
                use_cache=max_new_tokens > 1)
    logits = out.logits[0, -1].float()
    first = logits
    tokens: list[int] = []
    stop = eos_ids(model)
    cache = getattr(out, "past_key_values", None)
    mask = ctx.attention_mask
    next_pos = None if ctx.position_ids is None else int(ctx.position_ids.max()) + 1
    embed = model.get_input_embeddings()
    for step in range(max_new_tokens):
        token = int(logits.argmax())
        if token in stop:
            break
        tokens.append(token)
        if step + 1 == max_new_tokens:
            break
        mask = torch.cat([mask, mask.new_ones(1, 1)], dim=1)
        pos = None
        if next_pos is not None:
            pos = torch.full((3, 1, 1), next_pos + step, dtype=torch.long, device=mask.device)
        emb = embed(torch.tensor([[token]], device=mask.device))
        out = model(inputs_embeds=emb, attention_mask=mask, position_ids=pos, past_key_values=cache, use_cache=True)
        cache = out.past_key_values
        logits = out.logits[0, -1].float()
    return Decoded(token_ids=tokens, first_logits=first)


def p_yes(logits: torch.Tensor, yes: Sequence[int], no: Sequence[int]) -> float | None:
    """Probability of yes over yes+no from the first answer token's logits (None without both)."""
    if not yes or not no:
        return None
    ly = torch.logsumexp(logits[list(yes)], 0)
    ln = torch.logsumexp(logits[list(no)], 0)
    return float(torch.sigmoid(ly - ln))


__all__ = ["Context", "EncodedImage", "Memory", "Picture", "build", "decode", "encode_image", "render"]
