"""PixelLLM (Xu et al., CVPR 2024): where in the image is each generated word.

A small MLP — the point head — reads the language model's final per-token features (what the vocabulary
projection reads) and regresses two points per token, a box's corners. The kit's head was trained on the
micro VLM with caption cross-entropy + 0.1 × L1 on the points (`egokit.methods.pixel.training`).

    import egokit
    lm = egokit.load("micro-vlm")
    head = egokit.pixel.load_head("micro-pixel")
    r = egokit.pixel.localize(lm, head, image)           # the generated caption, a point and box per word
    r.point("circle"), r.word_box("circle"), r           # a notebook shows the picture
    box = egokit.pixel.refer(lm, head, image, "the red circle").box

How a word is located. After generation (greedy), one teacher-forced forward over prompt + answer runs
with the head attached (its tuned copies of the last decoder layers, if it has them); the feature at each
answer token's *own* position (which has read that token) goes through the head, which also reads the
image tokens' final features (`PointHead`'s visual read-out). A word's box is the min/max over its tokens'
points, its point that box's centre.

Referring localisation follows PixelLLM: the expression is teacher-forced as the answer to `where is
<expression> ?`, ended by the end-of-sequence token, and the box is the two corners the head predicts at
the expression's *last* token (the one the end-of-sequence token follows, which has read all of it; the
official `point_output_ignore='^end-1'` and `decode_boxes_from_points`). `readout="answer_position"` reads
the two corners at the answer position instead (the prompt's last token, where the model starts its
answer): **not the paper's rule**, offered beside it and measured beside it (`egokit pixel eval` reports
both; on the shipped head neither is better, so the paper's rule is the default).

Coordinates: the head works in fractions of the model's view of the image (the processed picture); results
are in pixels of the original image (through the adapter's visual layout, which knows how the processor
resized and cropped).
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from egokit.capture.look import extend_inputs
from egokit.errors import InputError, ModelLoadError
from egokit.methods.pixel.head import (
    FEATURES,
    LAYER_INPUTS,
    PointHead,
    box_from_points,
    feature_hooks,
    image_readout_inputs,
)
from egokit.methods.pixel.result import PixelResult
from egokit.methods.pixel.targets import CAPTION_PROMPT, refer_prompt
from egokit.models.adapters.base import GENERATES_TEXT
from egokit.models.generation import eos_ids, greedy_ids
from egokit.models.text import check_context, check_known_words, context_limit
from egokit.zoo import ZOO_DIR

DEFAULT_HEAD = "micro-pixel"
#: where `refer` reads the box: "last_token" (PixelLLM's rule) or "answer_position" (not the paper's)
READOUTS = ("last_token", "answer_position")


# ---------------------------------------------------------------------------------------------- loading


def load_head(name_or_path: str | Path = DEFAULT_HEAD, device: str | torch.device = "cpu") -> PointHead:
    """A saved point head: a folder, or the name of one shipped in the zoo (`"micro-pixel"`)."""
    path = Path(name_or_path).expanduser()
    if not path.is_dir() and isinstance(name_or_path, str) and name_or_path.startswith("micro-"):
        path = ZOO_DIR / name_or_path
    if not (path / "config.json").exists():
        raise ModelLoadError(f"no point head at {name_or_path!r}: pass a folder written by PointHead.save, or "
                             f"train the shipped one with python -m egokit.recipes.train pixel")
    return PointHead.load(path, device=device)


def loaded_model(model: Any, device: str = "auto") -> Any:
    """A `LoadedModel`: `model` itself, or loaded from a zoo name, hub id or folder."""
    if isinstance(model, (str, Path)):
        from egokit.models.loading import load

        return load(str(model), device=device)
    if not hasattr(model, "adapter"):
        raise InputError("pass a LoadedModel (egokit.load(...) or egokit.models.loading.from_model(model, processor))")
    return model


def as_head(head: Any, device: torch.device) -> PointHead:
    """A `PointHead` on `device` in eval mode: `head` itself, or loaded with `load_head`."""
    if isinstance(head, (str, Path)):
        head = load_head(head)
    if not isinstance(head, PointHead):
        raise InputError(f"expected a PointHead (egokit.pixel.load_head(...)), got a {type(head).__name__}")
    return head.to(device).eval()


def _picture(image: Any) -> np.ndarray:
    """The image as (H, W, 3) uint8 (a ShapesWorld scene, an array, a PIL image or a file)."""
    from egokit.data.images import load_image

    if hasattr(image, "image") and isinstance(image.image, np.ndarray):
        image = image.image
    return np.asarray(load_image(image).convert("RGB"))


def tokenizer_of(loaded: Any) -> Any:
    """The tokenizer of a `LoadedModel` (its processor's, or the processor itself)."""
    return getattr(loaded.processor, "tokenizer", loaded.processor)


# ---------------------------------------------------------------------------------------------- core


def answer_words(tokenizer: Any, ids: list[int]) -> tuple[list[str], list[int], list[str], str]:
    """(tokens, word index of each token (-1: none), words, text) of answer token ids.

    A token belongs to the word that the decoded text up to and including it ends in; tokens that decode
    to nothing visible (specials, bare spaces) belong to no word."""
    tokens, token_word = [], []
    for k, i in enumerate(ids):
        piece = tokenizer.decode([i], skip_special_tokens=True)
        tokens.append(tokenizer.decode([i]))
        if not piece.strip():
            token_word.append(-1)
            continue
        n = len(tokenizer.decode(ids[: k + 1], skip_special_tokens=True).split())
        token_word.append(n - 1)
    text = tokenizer.decode(ids, skip_special_tokens=True).strip()
    words = text.split()
    token_word = [k if k < len(words) else len(words) - 1 for k in token_word]
    return tokens, token_word, words, text


def prompt_inputs(loaded: Any, picture: Any, prompt: str) -> tuple[Any, dict[str, Any]]:
    """The processor's inputs for `prompt` about one picture, and the keyword arguments of `model(**...)`."""
    if not prompt or not prompt.strip():
        raise InputError("the prompt is empty: ask something about the image")
    adapter = loaded.adapter
    adapter.require(GENERATES_TEXT, "the point head")
    text = adapter.prompt(prompt, 1)
    limit = context_limit(loaded.model, tokenizer_of(loaded))
    if isinstance(text, str):  # the text alone already too long: refuse before the processor warns
        check_context(len(tokenizer_of(loaded)(text, verbose=False)["input_ids"]), limit)
    inputs = adapter.prepare([picture], text)
    model_inputs = adapter.model_inputs(inputs)
    check_context(int(model_inputs["input_ids"].shape[1]), limit)
    return inputs, model_inputs


def _layout(loaded: Any, inputs: Any) -> Any:
    """The first image's `ImageTokens` in the prompt, or None."""
    try:
        layout = loaded.adapter.visual_layout(inputs, 0)
    except NotImplementedError:
        return None
    return layout[0] if layout else None


def _view(layout: Any, picture: np.ndarray) -> tuple[float, float, float, float]:
    """The part of the original image the model sees, (x0, y0, x1, y1) in its pixels."""
    view = layout.extra.get("view") if layout is not None else None
    if view is None:
        return (0.0, 0.0, float(picture.shape[1]), float(picture.shape[0]))
    return tuple(float(v) for v in view)  # type: ignore[return-value]


def token_points(loaded: Any, head: PointHead, image: Any, prompt: str, answer_ids: list[int],
                 check: bool = True) -> torch.Tensor:
    """(T, 2, 2) points (x, y) in pixels of the original image for each answer token, teacher-forced
    after `prompt`, with the head attached."""
    return forced_points(loaded, head, image, prompt, answer_ids, check=check)[0]


def forced_points(loaded: Any, head: PointHead, image: Any, prompt: str, answer_ids: list[int],
                  check: bool = True, end_ids: list[int] | tuple[int, ...] = ()) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher-force `answer_ids` (then `end_ids`, e.g. the end-of-sequence token) after `prompt` with the head
    attached: the (T, 2, 2) points of the T answer tokens and the (2, 2) points at the answer position (the
    prompt's last token), in pixels (x, y) of the original image."""
    if not answer_ids:
        raise InputError("the answer is empty: nothing to locate")
    picture = _picture(image)
    inputs, model_inputs = prompt_inputs(loaded, picture, prompt)
    start = model_inputs["input_ids"].shape[1]
    forced = list(answer_ids) + list(end_ids)
    check_context(start + len(forced), context_limit(loaded.model, tokenizer_of(loaded)),
                  "the prompt and answer")
    ids = torch.tensor([forced], dtype=torch.long, device=model_inputs["input_ids"].device)
    full = extend_inputs(model_inputs, ids)
    with torch.no_grad(), head.attached(loaded, check=check), feature_hooks(loaded) as hooks:
        loaded.model(**full)
    feats = hooks[FEATURES][0, start - 1:start + len(answer_ids)].float()      # the answer position, then T
    layout = _layout(loaded, inputs)
    head = head.to(feats.device)
    with torch.no_grad():
        if head.readout:
            if layout is None:
                raise InputError("this point head reads the image tokens, but the adapter found none in the prompt")
            image_feats, centres = image_readout_inputs(layout, hooks[LAYER_INPUTS][0].float())
            unit = head(feats, image_feats, centres).cpu()
        else:
            unit = head(feats).cpu()
    x0, y0, x1, y1 = _view(layout, picture)
    scale = torch.tensor([x1 - x0, y1 - y0])
    pixels = unit * scale + torch.tensor([x0, y0])
    return pixels[1:], pixels[0]


def generate_ids(loaded: Any, head: PointHead | None, model_inputs: dict[str, Any], max_new_tokens: int,
                 check: bool = True) -> list[int]:
    """The greedy answer's token ids (up to the first end or padding id), with `head` attached (None: the
    untouched model)."""
    ctx = head.attached(loaded, check=check) if head is not None else nullcontext()
    with ctx:
        return greedy_ids(loaded.model, model_inputs, max_new_tokens, tokenizer=tokenizer_of(loaded), include_pad=True)


# ---------------------------------------------------------------------------------------------- verbs


def localize(model: Any, head: Any = DEFAULT_HEAD, image: Any = None, prompt: str = CAPTION_PROMPT,
             max_new_tokens: int = 48, answer: str | None = None, check: bool = True,
             keep_image: bool = True) -> PixelResult:
    """Generate an answer to `prompt` about `image` (a caption by default) with the head attached, then give
    every word a point and a box (pixels of `image`).

    model:  a `LoadedModel` (or a name/folder to load); head: a `PointHead` or where to load one from.
    answer: locate the words of this given answer instead of generating one (teacher forcing only).
    check:  refuse a head trained for another model (`MemoryFileError`)."""
    if image is None:
        raise InputError("give an image to localize words in")
    loaded = loaded_model(model)
    head = as_head(head, loaded.device)
    picture = _picture(image)
    tok = tokenizer_of(loaded)
    if answer is None:
        _, model_inputs = prompt_inputs(loaded, picture, prompt)
        ids = generate_ids(loaded, head, model_inputs, max_new_tokens, check=check)
        if not ids:
            raise InputError("the model generated an empty answer; nothing to locate")
    else:
        check_known_words(tok, answer, f"the answer {answer!r}")
        ids = _encode(tok, answer)
    points = token_points(loaded, head, picture, prompt, ids, check=check)
    tokens, token_word, words, text = answer_words(tok, ids)
    return PixelResult(kind="caption", prompt=prompt, answer=text, words=words, tokens=tokens, token_ids=ids,
                       token_word=token_word, token_points=points, image_size=picture.shape[:2],
                       image=picture if keep_image else None, model_name=str(loaded.name))


def refer(model: Any, head: Any = DEFAULT_HEAD, image: Any = None, expression: str = "",
          check: bool = True, keep_image: bool = True, readout: str = "last_token") -> PixelResult:
    """Locate a referring expression ("the red circle"): `.box` is the two corners the head predicts at the
    expression's last token (PixelLLM's rule), teacher-forced as the answer to `where is <expression> ?` and
    ended by the end-of-sequence token (see the module docstring). `token_points` holds every expression
    token's points; `box_points` the two corners of the box.

    readout: "last_token" (the paper's rule), or "answer_position": the corners predicted at the prompt's
             last token, where the model starts its answer (not the paper's rule)."""
    if image is None:
        raise InputError("give an image to find the expression in")
    if not expression or not expression.strip():
        raise InputError("the expression is empty: say which object to find (e.g. 'the red circle')")
    if readout not in READOUTS:
        raise InputError(f"unknown readout {readout!r}; choose one of {', '.join(READOUTS)}")
    loaded = loaded_model(model)
    head = as_head(head, loaded.device)
    picture = _picture(image)
    tok = tokenizer_of(loaded)
    check_known_words(tok, expression, f"the expression {expression.strip()!r}")
    prompt = refer_prompt(expression)
    ids = _encode(tok, expression.strip())
    points, at_answer = forced_points(loaded, head, picture, prompt, ids, check=check, end_ids=[end_id(loaded)])
    tokens, token_word, words, text = answer_words(tok, ids)
    corners = points[-1] if readout == "last_token" else at_answer
    return PixelResult(kind="refer", prompt=prompt, answer=text, words=words, tokens=tokens, token_ids=ids,
                       token_word=token_word, token_points=points, image_size=picture.shape[:2],
                       image=picture if keep_image else None, model_name=str(loaded.name),
                       extra={"readout": readout, "paper_rule": readout == "last_token",
                              "last_token_box": _rounded(box_from_points(points[-1])),
                              "answer_position_box": _rounded(box_from_points(at_answer))},
                       box_points=corners)


def _rounded(box: torch.Tensor) -> list[float]:
    return [round(float(v), 3) for v in box]


def end_id(loaded: Any) -> int:
    """The end-of-sequence id that ends a teacher-forced expression (the tokenizer's, else the model's)."""
    tok = tokenizer_of(loaded)
    if getattr(tok, "eos_token_id", None) is not None:
        return int(tok.eos_token_id)
    ids = eos_ids(loaded.model, tok)
    if not ids:
        raise InputError("the model has no end-of-sequence token to end the expression with")
    return min(ids)


def _encode(tok: Any, text: str) -> list[int]:
    ids = tok(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise InputError(f"{text!r} encodes to no tokens")
    return list(ids)


__all__ = [
    "DEFAULT_HEAD",
    "READOUTS",
    "answer_words",
    "as_head",
    "end_id",
    "forced_points",
    "generate_ids",
    "load_head",
    "loaded_model",
    "localize",
    "prompt_inputs",
    "refer",
    "token_points",
    "tokenizer_of",
]
