"""Prompts of the micro VLM with visual memories: token ids with image slots, and the embedding assembly.

The micro VLM is an ordinary `LlavaForConditionalGeneration`: with `input_ids` + `pixel_values` each
`<image>` placeholder of the chat template becomes 64 image tokens (an 8×8 grid, raster order). A
*memory* is any subset of an image's projected tokens (the language model's input embeddings for that
image, `image_features`), kept in raster order. To put memories in the context, the prompt holds one
image-token id per memory token, and `assemble` writes the token embeddings, then the memory rows at
the image-token positions, in order — exactly what LLaVA does internally with whole images, so a
memory of all 64 tokens gives the same logits as `pixel_values`. The model then runs on
`inputs_embeds`. This is the mechanism the zoo is trained with and Ego's memories use.

A prompt is a list of pieces: text strings and `Slot(n)` (n image tokens). `encode` renders it as the
chat template does (`USER: <image> ... ASSISTANT: answer</s>`, word-level, so spacing is irrelevant):

    ids, labels = encode(tok, [Slot(13), "this is bix .", Slot(64), "is bix in this image ?"], "yes")
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

IGNORE = -100


@dataclass(frozen=True)
class Slot:
    """`n` image-token positions in a prompt (a memory or a whole image)."""

    n: int


Piece = str | Slot


def encode(tokenizer, pieces: Sequence[Piece], answer: str | None = None) -> tuple[list[int], list[int]]:
    """Token ids of a one-turn chat prompt and its labels (IGNORE except on the answer and its eos).

    Without `answer` the prompt ends with the generation prompt `ASSISTANT:`."""
    image_id = tokenizer.image_token_id
    ids = [tokenizer.bos_token_id, *tokenizer.encode("user :", add_special_tokens=False)]
    for piece in pieces:
        if isinstance(piece, Slot):
            ids += [image_id] * piece.n
        else:
            ids += tokenizer.encode(piece, add_special_tokens=False)
    ids += tokenizer.encode("assistant :", add_special_tokens=False)
    labels = [IGNORE] * len(ids)
    if answer is not None:
        target = [*tokenizer.encode(answer, add_special_tokens=False), tokenizer.eos_token_id]
        ids += target
        labels += target
    return ids, labels


def pad(rows: Sequence[Sequence[int]], value: int, side: str = "right") -> torch.Tensor:
    """Stack ragged rows into a (B, L) long tensor, padding on `side`."""
    length = max(len(r) for r in rows)
    out = torch.full((len(rows), length), value, dtype=torch.long)
    for i, r in enumerate(rows):
        if side == "right":
            out[i, :len(r)] = torch.tensor(r, dtype=torch.long)
        else:
            out[i, length - len(r):] = torch.tensor(r, dtype=torch.long)
    return out


def image_features(model, pixel_values: torch.Tensor) -> torch.Tensor:
    """Projected image tokens (B, n_tokens, D): what the language model receives for each image."""
    out = model.get_image_features(pixel_values=pixel_values,
                                   vision_feature_layer=model.config.vision_feature_layer,
                                   vision_feature_select_strategy=model.config.vision_feature_select_strategy)
    feats = out.pooler_output if hasattr(out, "pooler_output") else out
    if isinstance(feats, (list, tuple)):
        feats = torch.stack(list(feats))
    return feats


def assemble(model, input_ids: torch.Tensor, memories: Sequence[torch.Tensor]) -> torch.Tensor:
    """Input embeddings for `input_ids` with the image-token positions filled by `memories`.

    memories: (n_i, D) tensors, in the order their slots appear (row by row through the batch); their
    total length must equal the number of image tokens in `input_ids`."""
    embeds = model.get_input_embeddings()(input_ids)
    mask = input_ids == model.config.image_token_id
    n = int(mask.sum())
    if n == 0:
        return embeds
    rows = torch.cat([m.to(embeds.dtype) for m in memories], dim=0)
    if rows.shape[0] != n:
        raise ValueError(f"the prompt has {n} image-token positions but the memories hold {rows.shape[0]} tokens")
    return embeds.masked_scatter(mask.unsqueeze(-1), rows)
