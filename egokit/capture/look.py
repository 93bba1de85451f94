"""Generate, then look: answer a prompt about an image, then see where each generated token looks.

`generate_and_look` runs `generate` (fast, no attention kept), then one teacher-forced forward over
prompt + answer with targeted capture of the generated tokens' rows against the visual tokens' columns.
`generate` runs without gradients; the teacher-forced pass can keep them (grad=True) so gradient ×
attention is available for the answer's log-likelihood.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from egokit.capture.engine import capture
from egokit.errors import InputError
from egokit.models.adapters.base import ImageTokens
from egokit.models.generation import eos_ids
from egokit.models.text import check_context, context_limit

# How to extend per-token inputs other than input_ids over generated tokens: the value a generated
# token takes (attention: attended; token types: "suffix"/text).
_EXTEND_FILL = {"attention_mask": 1, "token_type_ids": 1, "mm_token_type_ids": 0}


@dataclass
class Look:
    """What `generate_and_look` returns (batch row 0).

    attentions: (L, H, T, N) — rows = generated tokens (each token's own position), columns = the visual
    tokens of every image in order (`layout[i]` tells which columns belong to image i), float32.
    grads: the same shape, ∂(answer log-likelihood)/∂A, when asked for; else None.
    """

    prompt: str
    answer: str
    tokens: list[str]
    token_ids: list[int]
    positions: list[int]
    layers: list[int]
    layout: list[ImageTokens]
    attentions: torch.Tensor
    grads: torch.Tensor | None = None
    input_ids: torch.Tensor | None = field(default=None, repr=False)
    inputs: dict[str, Any] | None = field(default=None, repr=False)  # teacher-forced model inputs

    def columns(self, image: int = 0) -> slice:
        """The attention columns that belong to image `image`."""
        start = sum(len(t) for t in self.layout[:image])
        return slice(start, start + len(self.layout[image]))

    def token_scores(self, token: int | str, image: int = 0, layers: str = "mean", heads: str = "mean",
                     gradient: bool = False) -> torch.Tensor:
        """Per-visual-token score (N_image,) for one generated token (index or its string)."""
        from egokit.capture.aggregate import aggregate, gradient_attention

        t = self.token_index(token)
        cols = self.columns(image)
        att = self.attentions[:, None, :, t : t + 1, cols]  # (L, 1, H, 1, N)
        if gradient:
            if self.grads is None:
                raise InputError("this look has no gradients: call generate_and_look(..., grad=True)")
            return gradient_attention(att, self.grads[:, None, :, t : t + 1, cols], layers=layers)[0, 0]
        return aggregate(att, layers=layers, heads=heads)[0]

    def token_index(self, token: int | str) -> int:
        if isinstance(token, int):
            if not -len(self.tokens) <= token < len(self.tokens):
                raise InputError(f"token {token} does not exist: the answer has {len(self.tokens)} tokens")
            return token % len(self.tokens)
        words = [t.strip().lower() for t in self.tokens]
        if token.strip().lower() not in words:
            raise InputError(f"{token!r} is not in the answer; its tokens are: {', '.join(self.tokens)}")
        return words.index(token.strip().lower())


def extend_inputs(inputs: dict[str, Any], new_ids: torch.Tensor) -> dict[str, Any]:
    """The model inputs for prompt + generated tokens (teacher forcing)."""
    out = dict(inputs)
    prompt_len = inputs["input_ids"].shape[1]
    out["input_ids"] = torch.cat([inputs["input_ids"], new_ids], dim=1)
    for key, value in inputs.items():
        if key == "input_ids" or not isinstance(value, torch.Tensor) or value.dim() != 2:
            continue
        if value.shape[1] != prompt_len:
            continue
        fill = _EXTEND_FILL.get(key)
        if fill is None:
            raise InputError(f"do not know how to extend input {key!r} over generated tokens")
        out[key] = torch.cat([value, torch.full_like(new_ids, fill, dtype=value.dtype)], dim=1)
    return out


def generate_and_look(loaded: Any, image: Any, prompt: str, max_new_tokens: int = 20,
                      layers: list[int] | None = None, grad: bool = False, images: list[Any] | None = None,
                      answer: str | None = None) -> Look:
    """Generate an answer to `prompt` about `image` (or `images`), then capture where each answer token looks.

    loaded: a `LoadedModel` (model, processor, adapter) of a generative family.
    layers: language-model layers to capture (default: all).
    answer: skip generation and look at this given answer instead (teacher forcing only).
    """
    adapter = loaded.adapter
    if not getattr(adapter, "is_generative", True):
        raise InputError(f"{adapter.family} does not generate text; use a VLM (LLaVA, Qwen2-VL, ...)")
    if not prompt or not prompt.strip():
        raise InputError("the prompt is empty: ask a question about the image")
    pics = list(images) if images is not None else [image]
    text = adapter.prompt(prompt, len(pics))
    tokenizer = getattr(loaded.processor, "tokenizer", loaded.processor)
    limit = context_limit(loaded.model, tokenizer)
    if isinstance(text, str):  # the text alone already too long: refuse before the processor warns
        check_context(len(tokenizer(text, verbose=False)["input_ids"]), limit)
    inputs = adapter.prepare(pics, text)
    model_inputs = adapter.model_inputs(inputs)
    prompt_len = model_inputs["input_ids"].shape[1]
    check_context(int(prompt_len), limit)

    if answer is None:
        with torch.no_grad():
            generated = loaded.model.generate(**model_inputs, max_new_tokens=max_new_tokens, do_sample=False)
        new_ids = generated[:, prompt_len:]
        eos = eos_ids(loaded.model)
        keep = [i for i, t in enumerate(new_ids[0].tolist()) if t not in eos]
        new_ids = new_ids[:, : (max(keep) + 1 if keep else 0)]
    else:
        new_ids = tokenizer(answer, add_special_tokens=False, return_tensors="pt")["input_ids"]
        new_ids = new_ids.to(model_inputs["input_ids"].device)
        check_context(int(prompt_len + new_ids.shape[1]), limit, "the prompt and answer")
    if new_ids.shape[1] == 0:
        raise InputError("the model generated an empty answer; nothing to look at")

    full = extend_inputs(model_inputs, new_ids)
    positions = list(range(prompt_len, prompt_len + new_ids.shape[1]))
    layout = adapter.visual_layout(inputs, 0)
    visual = torch.cat([t.positions for t in layout]) if layout else torch.zeros(0, dtype=torch.long)
    with torch.set_grad_enabled(grad), capture(loaded, layers=layers, queries=positions, keys=visual,
                                               part="language", grad=grad) as cap:
        out = loaded.model(**full)
    grads = None
    if grad:
        logp = torch.log_softmax(out.logits[0, prompt_len - 1 : -1].float(), -1)
        logp.gather(-1, new_ids[0, :, None]).sum().backward()
        grads = cap.stack_grads()[:, 0]
        loaded.model.zero_grad(set_to_none=True)
    att = cap.stack()[:, 0].detach()
    ids = new_ids[0].tolist()
    return Look(
        prompt=prompt,
        answer=tokenizer.decode(ids, skip_special_tokens=True),
        tokens=[tokenizer.decode([i]) for i in ids],
        token_ids=ids,
        positions=positions,
        layers=sorted(cap.attentions),
        layout=layout,
        attentions=att,
        grads=grads,
        input_ids=full["input_ids"][0].detach().cpu(),
        inputs=full,
    )
