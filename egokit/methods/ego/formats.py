"""Prompt formats of Ego: the exact words a model is asked with, configurable per model.

Ego talks to a model in five places: it asks for a description of the reference view (whose keyword
tokens pick the visual tokens), optionally for the subject's coverage (the dynamic budget), and at
inference it writes each memory's introduction ("this is bix ."), then asks a recognition question or
for a caption. A `PromptFormat` holds those texts; the model's own chat template wraps them.

Two formats ship:

- `MICRO` — the exact texts the kit's micro VLM was trained on (its training mixture:
  `[memory] this is <n> . [query] is <n> in this image ?` → yes / no, "describe the subject .",
  "what percentage of the image does the subject cover ?", "describe the image ."). Its chat template
  renders `USER: ... ASSISTANT:`, the layout it was trained with.
- `CHAT` — plain English for real checkpoints (LLaVA, LLaVA-OneVision, Qwen2-VL, SmolVLM, ...).

`format_for(model)` reads the checkpoint's own settings (`egokit.json` beside its weights:
`{"ego": {"prompt_format": "micro"}}` for the micro VLM; `from_model(..., settings=...)` for a model in
memory) and falls back to `CHAT`; pass `format=` (a `PromptFormat` or a name in `FORMATS`) to override,
or `register_format` a new one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from egokit.errors import InputError


@dataclass(frozen=True)
class PromptFormat:
    """The texts Ego asks a model with. `{name}` is a concept's name; `{keywords}` its keywords.

    describe:    asks for a short description of the reference view's subject (keywords come from it).
    coverage:    asks what percentage of the image the subject covers (dynamic budget).
    intro:       follows a concept's memory tokens in the context.
    text_intro:  a text-only memory (the keywords baseline), in place of memory tokens + intro.
    recognise:   the recognition question about one concept (answered yes / no).
    caption:     asks for a caption of the test image (personalized captions use the names).
    video:       how frames are asked: "per_frame" (one question per frame; yes if any frame says yes)
                 or "joint" (all frames in one context, then `video_question`).
    yes, no:     the answer words of a recognition question (the first token decides).
    max_concepts: memories put in one context at most (more are pre-filtered by similarity).
    """

    name: str
    describe: str
    coverage: str
    intro: str
    text_intro: str
    recognise: str
    caption: str
    video: str = "per_frame"
    video_question: str = "is {name} in this video ?"
    yes: tuple[str, ...] = ("yes",)
    no: tuple[str, ...] = ("no",)
    max_concepts: int = 3

    def introduce(self, name: str) -> str:
        return self.intro.format(name=name)

    def introduce_text(self, name: str, keywords: list[str]) -> str:
        return self.text_intro.format(name=name, keywords=" ".join(keywords))

    def question(self, name: str) -> str:
        return self.recognise.format(name=name)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_(self, **changes: Any) -> PromptFormat:
        """A copy with some texts changed (e.g. `MICRO.with_(max_concepts=2)`)."""
        return replace(self, **changes)


MICRO = PromptFormat(
    name="micro",
    describe="describe the subject .",
    coverage="what percentage of the image does the subject cover ?",
    intro="this is {name} .",
    text_intro="this is {name} , {keywords} .",
    recognise="is {name} in this image ?",
    caption="describe the image .",
    video="per_frame",
    video_question="is {name} in this video ?",
    yes=("yes",),
    no=("no",),
    max_concepts=3,
)

CHAT = PromptFormat(
    name="chat",
    describe="Describe the main object in this image in a few words.",
    coverage="What percentage of the image does the main object cover? Answer with a number.",
    intro="\nThis is {name}.\n",
    text_intro="\nThis is {name}: {keywords}.\n",
    recognise="Is {name} in this image? Answer yes or no.",
    caption="Describe this image in one sentence, calling known objects by their names.",
    video="joint",
    video_question="Is {name} in this video? Answer yes or no.",
    yes=("yes", "Yes", " yes", " Yes", "YES"),
    no=("no", "No", " no", " No", "NO"),
    max_concepts=4,
)

FORMATS: dict[str, PromptFormat] = {"micro": MICRO, "chat": CHAT}
#: the format of a checkpoint whose settings name none
DEFAULT_FORMAT = "chat"


def register_format(fmt: PromptFormat) -> PromptFormat:
    """Make `fmt` available by name (`format="<name>"`)."""
    FORMATS[fmt.name] = fmt
    return fmt


def resolve_format(model: Any, fmt: PromptFormat | str | None) -> PromptFormat:
    """`fmt` itself, a registered name, or (None) `format_for(model)`."""
    if isinstance(fmt, PromptFormat):
        return fmt
    if fmt is None:
        return format_for(model)
    if fmt not in FORMATS:
        raise InputError(f"unknown prompt format {fmt!r}; choose one of {', '.join(FORMATS)} or pass a PromptFormat")
    return FORMATS[fmt]


def format_for(model: Any) -> PromptFormat:
    """The format a checkpoint's settings name (`settings_for("ego")["prompt_format"]`), else `CHAT`."""
    settings_for = getattr(model, "settings_for", None)
    name = settings_for("ego").get("prompt_format", DEFAULT_FORMAT) if callable(settings_for) else DEFAULT_FORMAT
    if name not in FORMATS:
        raise InputError(f"the checkpoint's settings name the prompt format {name!r}, which is not registered; "
                         f"choose one of {', '.join(FORMATS)} or register_format() it first")
    return FORMATS[name]


__all__ = ["CHAT", "DEFAULT_FORMAT", "FORMATS", "MICRO", "PromptFormat", "format_for", "register_format", "resolve_format"]
