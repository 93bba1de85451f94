"""Running the micro VLM on prompts with memories: next-token scores and greedy generation, batched.

A prompt is a list of pieces: text, or a (n_tokens, D) tensor of projected image tokens (a whole image
from `prompting.image_features`, or a memory, any subset of one). Prompts are left-padded and run on
`inputs_embeds` (see `prompting.assemble`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from egokit.recipes.prompting import Slot, assemble, encode, pad

Prompt = Sequence[str | torch.Tensor]


def _prepare(model, tok, prompts: Sequence[Prompt]) -> tuple[torch.Tensor, torch.Tensor]:
    rows, memories = [], []
    for prompt in prompts:
        pieces = []
        for p in prompt:
            if isinstance(p, torch.Tensor):
                pieces.append(Slot(int(p.shape[0])))
                memories.append(p)
            else:
                pieces.append(p)
        rows.append(encode(tok, pieces)[0])
    device = next(model.parameters()).device
    ids = pad(rows, tok.pad_token_id, side="left").to(device)
    mask = pad([[1] * len(r) for r in rows], 0, side="left").to(device)
    return assemble(model, ids, [m.to(device) for m in memories]), mask


@torch.no_grad()
def next_token_logits(model, tok, prompts: Sequence[Prompt]) -> torch.Tensor:
    """(B, vocab) logits of the first answer token of each prompt."""
    embeds, mask = _prepare(model, tok, prompts)
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(inputs_embeds=embeds, attention_mask=mask, position_ids=position_ids)
    return out.logits[:, -1].float()


@torch.no_grad()
def generate(model, tok, prompts: Sequence[Prompt], max_new_tokens: int = 40) -> list[str]:
    """Greedy answers (decoded, special tokens dropped) of a batch of prompts."""
    embeds, mask = _prepare(model, tok, prompts)
    out = model.generate(inputs_embeds=embeds, attention_mask=mask, max_new_tokens=max_new_tokens,
                         do_sample=False, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    return [decode(tok, row) for row in out.tolist()]


def decode(tok, ids: Sequence[int]) -> str:
    """Words of `ids` up to the first eos, separated by single spaces."""
    words = []
    for i in ids:
        if i == tok.eos_token_id:
            break
        if i in (tok.pad_token_id, tok.bos_token_id):
            continue
        words.append(tok.convert_ids_to_tokens(int(i)))
    return " ".join(words)
