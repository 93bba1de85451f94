"""Offline tokenizers built in memory: no download, no training corpus needed.

Tiny test models and the micro zoo need a tokenizer that transformers treats like any other: it
tokenizes, pads, applies a chat template, knows its multimodal special tokens (`tok.image_token_id`)
and survives `save_pretrained` + `from_pretrained` from a local folder. Two builders:

- `word_tokenizer(words)`: a closed-vocabulary WordLevel tokenizer (one id per word or punctuation
  mark). The micro zoo builds its VLM tokenizer from ShapesWorld's closed vocabulary with it.
- `byte_bpe_tokenizer(texts)`: a small byte-level BPE trained in memory, for a processor that needs
  an open vocabulary (any text encodes, nothing maps to `<unk>`).

Contract of `word_tokenizer` (stable: saved micro models depend on it):

- ids 0.. are, in this order: pad, unk, bos, eos (`DEFAULT_SPECIAL_TOKENS`, overridable; eos is 3, not 2,
  because CLIP's text model treats `eos_token_id == 2` as a legacy checkpoint and pools at argmax), then the
  `extra_special_tokens` values in the order given (e.g. `<image>`), then the words of the chat
  template (`user`, `assistant`, `:`), then default punctuation, then `words` in the order given.
  Duplicates are dropped (first occurrence wins), so the same inputs always give the same ids.
- Text is lower-cased (unless `lowercase=False`) and split on whitespace and punctuation; each
  punctuation character is its own token. A word given with punctuation inside (`two-tone`) is
  split the same way and its pieces are added. Unknown words become `<unk>`.
- Special tokens (pad/bos/eos/unk and the extra ones such as `<image>`) are matched verbatim before
  splitting, so `"<image><image>"` is two image tokens.
- `tok(text)` adds bos in front (`add_bos=True`) and eos at the end only with `add_eos=True` (CLIP-style
  text encoders pool at eos).
- The chat template renders `messages` in the transformers format (`content` is a string or a list
  of `{"type": "image"}` / `{"type": "text", "text": ...}` items) as
  `USER: <image> <image> question ASSISTANT: answer</s>` — one image placeholder per image item,
  `ASSISTANT:` appended when `add_generation_prompt=True`. The template carries no bos (the
  tokenizer adds it). The placeholder is `image_placeholder`, by default the `image_token`.
- Padding is on the left by default (batched generation), set `padding_side="right"` for training.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from egokit.errors import InputError

DEFAULT_SPECIAL_TOKENS: dict[str, str] = {
    "pad_token": "<pad>",
    "unk_token": "<unk>",
    "bos_token": "<s>",
    "eos_token": "</s>",
}
PUNCTUATION: tuple[str, ...] = (".", ",", "?", "!", ":", ";", "'", "-", "(", ")")
TEMPLATE_WORDS: tuple[str, ...] = ("user", "assistant", ":")

# A small English vocabulary for tiny test models (about 200 words): scenes of shapes, questions, answers.
TINY_WORDS: tuple[str, ...] = tuple(
    """
    a an the this that these those is are was be it its there here of in on at to from with and or not no yes
    what which where who how many much color colour shape size pattern left right top bottom middle center
    above below under over next near far behind front between inside outside image picture photo scene view
    describe caption question answer object objects thing things one two three four five six seven eight nine
    ten zero red green blue yellow orange purple pink brown black white gray grey cyan magenta dark light
    circle square triangle star cross heart diamond hexagon pentagon ellipse rectangle ring disk blob line dot
    dots stripes striped checkered solid plain spotted dotted mark marked small large big tiny medium huge
    tall short wide narrow round sharp cat dog person man woman child car bus bike tree house sky grass water
    sun moon cup ball box book table chair door window road street my your his her our their named called
    name same different other another both each every all some any only also very more less than as like
    moving moves moved frame video first second last then now see show find look where's i you we they he she
    do does did can could would should will have has had
    """.split()
)


def chat_template(
    image_placeholder: str | None = "<image>", user: str = "USER", assistant: str = "ASSISTANT"
) -> str:
    """A jinja chat template: `USER: <image> text ASSISTANT: answer</s>` (see the module docstring).

    `image_placeholder` is inserted once per `{"type": "image"}` content item (followed by a space);
    `None` drops image items. Other roles render as their upper-cased name followed by `:`.
    """
    image = "" if image_placeholder is None else image_placeholder.replace("'", "\\'") + " "
    return (
        "{%- for message in messages -%}"
        "{%- if not loop.first %} {% endif -%}"
        f"{{%- if message['role'] == 'user' -%}}{{{{ '{user}: ' }}}}"
        f"{{%- elif message['role'] == 'assistant' -%}}{{{{ '{assistant}: ' }}}}"
        "{%- else -%}{{ message['role'] | upper ~ ': ' }}{%- endif -%}"
        "{%- if message['content'] is string -%}{{ message['content'] }}"
        "{%- else -%}{%- for item in message['content'] -%}"
        f"{{%- if item['type'] == 'image' -%}}{{{{ '{image}' }}}}"
        "{%- elif item['type'] == 'text' -%}{{ item['text'] }}{%- endif -%}"
        "{%- endfor -%}{%- endif -%}"
        "{%- if message['role'] == 'assistant' -%}{{ eos_token }}{%- endif -%}"
        "{%- endfor -%}"
        f"{{%- if add_generation_prompt %}} {assistant}:{{% endif -%}}"
    )


def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation("isolated")])


def _special_tokens(special_tokens: Mapping[str, str] | None) -> dict[str, str]:
    merged = dict(DEFAULT_SPECIAL_TOKENS)
    if special_tokens:
        unknown = set(special_tokens) - set(DEFAULT_SPECIAL_TOKENS)
        if unknown:
            raise ValueError(
                f"special_tokens takes {', '.join(DEFAULT_SPECIAL_TOKENS)}; got {', '.join(sorted(unknown))} "
                "(pass multimodal tokens such as image_token through extra_special_tokens)"
            )
        merged.update(special_tokens)
    return merged


def _post_processor(
    vocab_id: Callable[[str], int], bos: str, eos: str, add_bos: bool, add_eos: bool
) -> processors.TemplateProcessing | None:
    if not (add_bos or add_eos):
        return None
    head = f"{bos} " if add_bos else ""
    tail = f" {eos}" if add_eos else ""
    used = [t for t, on in ((bos, add_bos), (eos, add_eos)) if on]
    return processors.TemplateProcessing(
        single=f"{head}$A{tail}",
        pair=f"{head}$A{tail} $B{tail}",
        special_tokens=[(t, vocab_id(t)) for t in used],
    )


def _wrap(
    tokenizer: Tokenizer,
    specials: dict[str, str],
    extra: dict[str, str],
    template: str | None,
    padding_side: str,
    model_max_length: int,
) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        **specials,
        extra_special_tokens=dict(extra),
        chat_template=template,
        padding_side=padding_side,
        model_max_length=model_max_length,
    )


def word_tokenizer(
    words: Iterable[str],
    special_tokens: Mapping[str, str] | None = None,
    *,
    extra_special_tokens: Mapping[str, str] | None = None,
    image_placeholder: str | None = None,
    chat_template_str: str | None = None,
    lowercase: bool = True,
    add_bos: bool = True,
    add_eos: bool = False,
    punctuation: Iterable[str] = PUNCTUATION,
    padding_side: str = "left",
    model_max_length: int = 512,
) -> PreTrainedTokenizerFast:
    """A closed-vocabulary WordLevel tokenizer built in memory (contract in the module docstring).

    words:                the vocabulary (order fixes the ids). Lower-cased when `lowercase`.
    special_tokens:       overrides of `pad_token`, `bos_token`, `eos_token`, `unk_token`.
    extra_special_tokens: named multimodal tokens, e.g. `{"image_token": "<image>"}` → `tok.image_token_id`.
    image_placeholder:    what the chat template writes per image; default: the `image_token` if given.
    chat_template_str:    a jinja template replacing the default one (`chat_template(...)`).
    add_bos, add_eos:     prepend bos / append eos when encoding with `add_special_tokens=True` (the default).
    """
    specials = _special_tokens(special_tokens)
    extra = dict(extra_special_tokens or {})
    pre = _pre_tokenizer()

    def norm(word: str) -> str:
        return word.lower() if lowercase else word

    vocab: dict[str, int] = {}

    def add(token: str) -> None:
        if token and token not in vocab:
            vocab[token] = len(vocab)

    for token in (*specials.values(), *extra.values()):
        add(token)
    for word in (*TEMPLATE_WORDS, *punctuation, *words):
        for piece, _ in pre.pre_tokenize_str(norm(word)):
            add(piece)

    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token=specials["unk_token"]))
    if lowercase:
        tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre
    post = _post_processor(vocab.__getitem__, specials["bos_token"], specials["eos_token"], add_bos, add_eos)
    if post is not None:
        tokenizer.post_processor = post
    if image_placeholder is None:
        image_placeholder = extra.get("image_token")
    template = chat_template_str if chat_template_str is not None else chat_template(image_placeholder)
    return _wrap(tokenizer, specials, extra, template, padding_side, model_max_length)


def byte_bpe_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 300,
    special_tokens: Mapping[str, str] | None = None,
    *,
    extra_special_tokens: Mapping[str, str] | None = None,
    image_placeholder: str | None = None,
    chat_template_str: str | None = None,
    add_bos: bool = True,
    add_eos: bool = False,
    padding_side: str = "left",
    model_max_length: int = 512,
) -> PreTrainedTokenizerFast:
    """A small byte-level BPE trained in memory on `texts` (deterministic for the same inputs).

    Any text encodes (256 byte symbols are always in the vocabulary, so `vocab_size` must be larger than
    256 + number of special tokens). Special tokens take the first ids in the same order as in
    `word_tokenizer`; the chat template and bos handling are the same.
    """
    specials = _special_tokens(special_tokens)
    extra = dict(extra_special_tokens or {})
    reserved = [*specials.values(), *[t for t in extra.values() if t not in specials.values()]]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(dict.fromkeys(reserved)),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(texts), trainer=trainer)
    post = _post_processor(
        tokenizer.token_to_id, specials["bos_token"], specials["eos_token"], add_bos, add_eos
    )
    if post is not None:
        tokenizer.post_processor = post
    if image_placeholder is None:
        image_placeholder = extra.get("image_token")
    template = chat_template_str if chat_template_str is not None else chat_template(image_placeholder)
    return _wrap(tokenizer, specials, extra, template, padding_side, model_max_length)


# ---------------------------------------------------------------------------------------------- checks
# A tokenizer's `model_max_length` at or above this is transformers' "no limit" placeholder.
_NO_LIMIT = 10**9


def _merge_spans(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def unknown_words(tokenizer: Any, text: str) -> list[str]:
    """The pieces of `text` that `tokenizer` can only read as its unknown token, in order, without repeats.

    A closed-vocabulary tokenizer (`word_tokenizer`: the micro zoo, the tiny test models) maps every word
    outside its vocabulary to `<unk>` — "日本", an emoji, a misspelling. A byte-level BPE (real checkpoints,
    `byte_bpe_tokenizer`) encodes any text, so it gives []. So does a tokenizer without an unknown token.
    With a fast tokenizer the pieces are the exact spans of the unknown tokens (neighbouring ones merged);
    otherwise each whitespace-separated word that encodes to nothing but unknown tokens is named.
    """
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None or not isinstance(text, str) or not text.strip():
        return []
    pieces: list[str] = []
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        spans = [tuple(off) for i, off in zip(enc["input_ids"], enc["offset_mapping"]) if i == unk]
        pieces = [text[a:b].strip() for a, b in _merge_spans([(int(a), int(b)) for a, b in spans])]
    else:
        words = text.split()
        encoded = tokenizer(words, add_special_tokens=False, verbose=False)["input_ids"]
        pieces = [w for w, ids in zip(words, encoded) if ids and all(i == unk for i in ids)]
    return list(dict.fromkeys(p for p in pieces if p))


def only_unknown(tokenizer: Any, text: str) -> bool:
    """True when `text` encodes to nothing but `tokenizer`'s unknown token (and has at least one token)."""
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None or not isinstance(text, str) or not text.strip():
        return False
    ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
    return bool(ids) and all(i == unk for i in ids)


def check_known_words(tokenizer: Any, text: str, what: str) -> list[str]:
    """Name the words of `text` the model cannot read (`unknown_words`): a `UserWarning` when some are
    unknown, an `InputError` when the text is nothing but unknown words. `what` says which text it is
    (e.g. `'the expression "..."'`). Returns the unknown words ([] for text the model reads whole)."""
    unknown = unknown_words(tokenizer, text)
    if not unknown:
        return []
    import warnings

    shown = ", ".join(f'"{w}"' for w in unknown[:10]) + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
    unk = getattr(tokenizer, "unk_token", None) or "the unknown token"
    if only_unknown(tokenizer, text):
        raise InputError(f"the model cannot read any word of {what}: {shown} are not in its vocabulary (each "
                         f"becomes {unk}); use words the model knows")
    warnings.warn(f"the model cannot read {shown} in {what}: not in its vocabulary, read as {unk}; results for "
                  "those words mean nothing — use words the model knows", UserWarning, stacklevel=3)
    return unknown


def context_limit(model: Any, tokenizer: Any = None) -> int | None:
    """How many tokens the model reads at most: the smaller of its language model's
    `max_position_embeddings` and the tokenizer's `model_max_length` (when set); None when neither is known."""
    limits: list[int] = []
    config = getattr(model, "config", None)
    if config is not None:
        get_text = getattr(config, "get_text_config", None)
        text_config = get_text() if callable(get_text) else getattr(config, "text_config", None) or config
        n = getattr(text_config, "max_position_embeddings", None)
        if isinstance(n, int) and n > 0:
            limits.append(n)
    n = getattr(tokenizer, "model_max_length", None)
    if isinstance(n, int) and 0 < n < _NO_LIMIT:
        limits.append(n)
    return min(limits) if limits else None


def check_context(n_tokens: int, limit: int | None, what: str = "the prompt") -> None:
    """`InputError` when `n_tokens` do not fit the model's context length `limit` (None: no known limit)."""
    if limit is not None and n_tokens > limit:
        raise InputError(f"{what} needs {n_tokens} tokens (image tokens included), but the model reads at most "
                         f"{limit} (its context length): shorten the text or use fewer images")


__all__ = [
    "DEFAULT_SPECIAL_TOKENS",
    "PUNCTUATION",
    "TINY_WORDS",
    "byte_bpe_tokenizer",
    "chat_template",
    "check_context",
    "check_known_words",
    "context_limit",
    "only_unknown",
    "unknown_words",
    "word_tokenizer",
]
