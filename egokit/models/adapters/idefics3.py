"""Idefics3 and SmolVLM: image splitting into tiles plus a global view, pixel-shuffle connector.

Layout, from the config and the prompt the processor expanded:
- the image processor resizes the whole image (longest edge to `size["longest_edge"]`, then up to multiples of
  the tile size `max_image_size["longest_edge"]`) and, when that is larger than one tile, cuts it into
  `rows × cols` tiles and appends the whole image squeezed to one tile (the *global* view);
- every view becomes `(image_size / patch_size)²` patches, and the connector's pixel shuffle folds each
  `scale_factor × scale_factor` block into one token: `n × n` tokens per view, raster order,
  `n = image_size / patch_size / scale_factor` (the processor's `image_seq_len` is `n²`);
- the prompt holds, per tile, `<fake_token_around_image><row_r_col_c>` + `<image>`·n², and for the global view
  `<fake_token_around_image><global-img>` + `<image>`·n² + `<fake_token_around_image>`. Fake, row/col and
  global tokens are not image tokens (no pixel box);
- the resizes cover the whole picture, so tile (r, c) covers the (r, c) cell of an even rows × cols split of
  the original image and the global view covers all of it.

`ImageTokens` lists the global view first (it is the base `n × n` grid), then the tiles in prompt order;
`feature_index` points into the image's connector output, which is in prompt order (tiles, then global).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import Idefics3Config, Idefics3Processor, SmolVLMConfig
from transformers.models.smolvlm.processing_smolvlm import SmolVLMProcessor
from transformers.processing_utils import ProcessorMixin

from egokit.errors import InputError
from egokit.models.adapters.base import (
    GENERATES_TEXT,
    SOFT_VISUAL_TOKENS,
    ImageTokens,
    RealCheckpoint,
    TowerShape,
    register_adapter,
    register_real,
    register_tiny,
)
from egokit.models.adapters.common import (
    REAL_TEXT_CUT,
    REAL_VISION_CUT,
    merge_config,
    real_overrides,
    real_tokenizer,
    tiny_model,
    tiny_token_ids,
    vlm_paths,
)
from egokit.models.adapters.vlm import VLMAdapter
from egokit.models.geometry import grid_boxes
from egokit.models.processors import (
    PROCESSOR_CLASSES,
    PilImageProcessorLoading,
    StockNameMixin,
    pil_image_processor,
)
from egokit.models.text import TINY_WORDS, word_tokenizer

_ROW_COL = re.compile(r"<row_(\d+)_col_(\d+)>")


@dataclass
class _View:
    """One run of n² image tokens: a tile at (row, col), or the global view (tile None)."""

    start: int
    tile: tuple[int, int] | None



class SmolVLMImageOnlyProcessor(PilImageProcessorLoading, StockNameMixin, SmolVLMProcessor):
    """`SmolVLMProcessor` without the video processor and without the `num2words` requirement (videos only)."""

    stock_class_name = "SmolVLMProcessor"

    def __init__(
        self,
        image_processor: Any,
        tokenizer: Any,
        image_seq_len: int = 169,
        chat_template: str | None = None,
        **kwargs: Any,
    ):
        # Same attributes as SmolVLMProcessor.__init__, minus the num2words check and the video processor.
        self.fake_image_token = getattr(tokenizer, "fake_image_token", "<fake_token_around_image>")
        self.image_token = getattr(tokenizer, "image_token", "<image>")
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.end_of_utterance_token = getattr(tokenizer, "end_of_utterance_token", "<end_of_utterance>")
        self.global_image_token = getattr(tokenizer, "global_image_token", "<global-img>")
        self.image_seq_len = image_seq_len
        self.video_token = getattr(tokenizer, "video_token", "<video>")
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template, **kwargs)

    def apply_chat_template(self, conversation: Any, chat_template: str | None = None, **kwargs: Any) -> Any:
        # The stock override reads video defaults from the video processor; images need none of that.
        return ProcessorMixin.apply_chat_template(self, conversation, chat_template, **kwargs)


class Idefics3Loading(PilImageProcessorLoading, Idefics3Processor):
    """The stock `Idefics3Processor`, loadable without torchvision on every supported release."""


IDEFICS3_IMAGE_PROCESSOR, _placeholder = pil_image_processor("idefics3", "Idefics3ImageProcessorPil")
if _placeholder:
    Idefics3Loading.pil_image_processor_class = IDEFICS3_IMAGE_PROCESSOR
    PROCESSOR_CLASSES["idefics3"] = Idefics3Loading
SMOLVLM_IMAGE_PROCESSOR, _placeholder = pil_image_processor("smolvlm", "SmolVLMImageProcessorPil")
if _placeholder:
    SmolVLMImageOnlyProcessor.pil_image_processor_class = SMOLVLM_IMAGE_PROCESSOR
PROCESSOR_CLASSES["smolvlm"] = SmolVLMImageOnlyProcessor


@register_adapter
class Idefics3Adapter(VLMAdapter):
    """Adapter for `Idefics3ForConditionalGeneration` and `SmolVLMForConditionalGeneration`."""

    family = "idefics3"
    model_types = ("idefics3", "smolvlm")
    capabilities = frozenset({GENERATES_TEXT, SOFT_VISUAL_TOKENS})
    #: the projector is the connector (pixel shuffle + linear): its output rows are the image tokens' input embeddings
    paths = vlm_paths(
        vision="vision_model", vision_blocks=("encoder.layers",), projector="connector", language="text_model")

    # -- structure -------------------------------------------------------------------------------------

    def attention_modules(self, part: str | None = None) -> list[nn.Module]:
        part = part or self.default_part
        if part == "language":
            return [layer.self_attn for layer in self.language_model.layers]
        if part == "vision":
            return [layer.self_attn for layer in self.vision_tower.encoder.layers]
        raise InputError(f"{self.family} has no {part!r} part; choose one of {', '.join(self.parts)}")

    @property
    def tokens_side(self) -> int:
        """n: each view is an n × n grid of language-model tokens."""
        config = self.model.config
        vision = config.vision_config
        return int(vision.image_size // vision.patch_size // config.scale_factor)

    @property
    def tile_size(self) -> int:
        """Pixel side of one view as the vision encoder sees it."""
        return int(self.model.config.vision_config.image_size)

    # -- inputs ----------------------------------------------------------------------------------------
    def processor_call(self, groups: list[list[Any]], texts: list[str], **kwargs: Any) -> Any:
        # Images go per prompt (a nested list): a flat list would be read as one prompt's images.
        call: dict[str, Any] = {"text": texts, "return_tensors": "pt", "padding": True, **kwargs}
        if any(groups):
            call["images"] = groups
        return self.processor(**call)

    # -- layout ----------------------------------------------------------------------------------------
    def _token_strings(self, ids: list[int]) -> str:
        tokenizer = getattr(self.processor, "tokenizer", self.processor)
        if tokenizer is None or not hasattr(tokenizer, "convert_ids_to_tokens"):
            return ""
        return "".join(str(t) for t in tokenizer.convert_ids_to_tokens(ids))

    def _views(self, input_ids: torch.Tensor) -> list[list[_View]]:
        """The image views of one batch row, grouped per image (tiles in prompt order, then the global view)."""
        ids = input_ids.tolist()
        token_id = self.image_token_id
        per_view = self.tokens_side**2
        images: list[list[_View]] = []
        current: list[_View] = []
        pos, last_end = 0, 0
        while pos < len(ids):
            if ids[pos] != token_id:
                pos += 1
                continue
            end = pos
            while end < len(ids) and ids[end] == token_id:
                end += 1
            if (end - pos) % per_view:
                raise InputError(
                    f"a run of {end - pos} image tokens at position {pos} is not a whole number of views of "
                    f"{per_view} tokens; the processor's image_seq_len does not match the model config"
                )
            for k, start in enumerate(range(pos, end, per_view)):
                found = _ROW_COL.findall(self._token_strings(ids[last_end:pos])) if k == 0 else []
                if found:
                    row, col = found[-1]
                    current.append(_View(start, (int(row) - 1, int(col) - 1)))
                else:  # the global view closes the image
                    current.append(_View(start, None))
                    images.append(current)
                    current = []
            pos = last_end = end
        if current:
            images.append(current)  # tiles without a global view: keep them as their own image
        return images

    def _image_tokens(self, views: list[_View], image_size: tuple[int, int] | None) -> ImageTokens:
        n = self.tokens_side
        per_view = n * n
        tiles = [v.tile for v in views if v.tile is not None]
        rows = max((r for r, _ in tiles), default=-1) + 1
        cols = max((c for _, c in tiles), default=-1) + 1
        if image_size is None:  # processed coordinates: the tiles side by side, or one view
            side = self.tile_size
            image_size = (max(rows, 1) * side, max(cols, 1) * side)
        height, width = image_size
        # the global view is the base grid; tiles follow in prompt order
        order = [i for i, v in enumerate(views) if v.tile is None] + [
            i for i, v in enumerate(views) if v.tile is not None
        ]
        positions, boxes, feature_index, described = [], [], [], []
        for i in order:
            view = views[i]
            if view.tile is None:
                top, left, cell_h, cell_w = 0.0, 0.0, height / n, width / n
            else:
                r, c = view.tile
                tile_h, tile_w = height / rows, width / cols
                top, left, cell_h, cell_w = r * tile_h, c * tile_w, tile_h / n, tile_w / n
            box = (left, top, left + cell_w * n, top + cell_h * n)
            described.append(
                {"kind": "global" if view.tile is None else "tile", "tile": view.tile, "box": box}
            )
            positions.append(torch.arange(view.start, view.start + per_view))
            boxes.append(grid_boxes(n, n, cell_h, cell_w, top=top, left=left))
            feature_index.append(torch.arange(i * per_view, (i + 1) * per_view))
        return ImageTokens(
            positions=torch.cat(positions),
            boxes=torch.cat(boxes),
            feature_index=torch.cat(feature_index),
            grid=(n, n),
            image_size=(int(height), int(width)),
            extra={
                "tiles": (rows, cols),
                "views": described,
                "tokens_per_view": per_view,
                "view": (0.0, 0.0, float(width), float(height)),
            },
        )

    def _first_image(self, inputs: Any, batch_index: int) -> int:
        return sum(len(self._views(inputs["input_ids"][row])) for row in range(batch_index))

    def visual_layout(self, inputs: Any, batch_index: int = 0) -> list[ImageTokens]:
        views = self._views(inputs["input_ids"][batch_index])
        if not views:
            return []
        first = self._first_image(inputs, batch_index)
        sizes, coords = self.sizes_for(inputs, first, len(views), [None] * len(views))
        layout = []
        for k, (image_views, size) in enumerate(zip(views, sizes)):
            tokens = self._image_tokens(image_views, size)
            tokens.extra.update(image_index=first + k, coords=coords)
            layout.append(tokens)
        return layout

    def image_features(self, inputs: Any) -> list[torch.Tensor]:
        pixel_values = inputs.get("pixel_values")
        if pixel_values is None:
            return []
        mask = inputs.get("pixel_attention_mask")
        out = self.base.get_image_features(pixel_values=pixel_values, pixel_attention_mask=mask)
        per_row = out.pooler_output if hasattr(out, "pooler_output") else out
        if isinstance(per_row, torch.Tensor):
            # Releases before 5.2x return every real view of the batch in one tensor (views, tokens, width);
            # later ones one flat entry per batch row. Views that are all zeros are padding, dropped by both.
            real = pixel_values.flatten(2).ne(0).any(-1).sum(1).tolist()
            per_row = [f.reshape(-1, f.shape[-1]) for f in per_row.split(real)]
        per_view = self.tokens_side**2
        features: list[torch.Tensor] = []
        for row, row_features in enumerate(per_row):
            start = 0
            for views in self._views(inputs["input_ids"][row]):
                size = len(views) * per_view
                features.append(row_features[start : start + size])
                start += size
        return features


# ---------------------------------------------------------------------------------------- tiny model


TINY_MAX_TILES_SIDE = 6  # the processors know <row_1_col_1> .. <row_6_col_6>
TINY_SPECIAL = {
    "image_token": "<image>",
    "fake_image_token": "<fake_token_around_image>",
    "global_image_token": "<global-img>",
    "end_of_utterance_token": "<end_of_utterance>",
    **{
        f"row_{r}_col_{c}_token": f"<row_{r}_col_{c}>"
        for r in range(1, TINY_MAX_TILES_SIDE + 1)
        for c in range(1, TINY_MAX_TILES_SIDE + 1)
    },
}

TINY_VARIANTS = ("idefics3", "smolvlm")




@register_tiny("idefics3")
def build_tiny_idefics3(
    seed: int = 0,
    attn_implementation: str = "sdpa",
    *,
    variant: str = "idefics3",
    longest_edge: int = 64,
    do_image_splitting: bool = True,
    tile: int = 64,
    patch: int = 8,
    scale: int = 2,
    tokenizer: Any = None,
    **overrides: Any,
) -> tuple[Any, Any]:
    """Tiny random Idefics3 / SmolVLM with an offline tokenizer.

    Views of 64×64 pixels, patch 8, pixel-shuffle scale 2: every view is 4×4 = 16 language-model tokens. By default
    images are resized to a longest edge of 64 (one view, 16 tokens). Pass `longest_edge=128` (or more) to turn
    on image splitting: a 64×64 image then becomes 2×2 tiles plus a global view (80 tokens).

    Build `(model, processor)`: Llama text model 2×32, SigLIP-style vision 2×32, tiny word vocabulary, fp32,
    eval mode.

    variant:      "idefics3" or "smolvlm".
    longest_edge: the image processor resizes the longest image edge to this before splitting into 64-pixel tiles.
    tile, patch, scale: the view size in pixels, the vision patch size and the pixel-shuffle scale factor.
    tokenizer:    a tokenizer with the special tokens of `TINY_SPECIAL`, instead of the tiny word tokenizer.
    overrides:    `text_config` / `vision_config` / `image_processor` dicts merged into the defaults; other
                  keys set top-level config fields.
    """
    if variant not in TINY_VARIANTS:
        raise ValueError(f"unknown Idefics3 variant {variant!r}; choose one of {', '.join(TINY_VARIANTS)}")
    if tokenizer is None:
        tokenizer = word_tokenizer(TINY_WORDS, extra_special_tokens=TINY_SPECIAL, model_max_length=4096)
    image_seq_len = (tile // patch // scale) ** 2
    image_kwargs = merge_config(
        {
            "size": {"longest_edge": longest_edge},
            "max_image_size": {"longest_edge": tile},
            "do_image_splitting": do_image_splitting,
        },
        overrides.pop("image_processor", None),
    )
    width, heads = 32, 2
    text_config = merge_config(
        {
            "model_type": "llama",
                        "hidden_size": width,
            "intermediate_size": 2 * width,
            "num_hidden_layers": 2,
            "num_attention_heads": heads,
            "num_key_value_heads": heads,
            "max_position_embeddings": 1024,
            **tiny_token_ids(tokenizer),
        },
        overrides.pop("text_config", None),
    )
    vision_config = merge_config(
        {
            "hidden_size": width,
            "intermediate_size": 2 * width,
            "num_hidden_layers": 2,
            "num_attention_heads": heads,
            "image_size": tile,
            "patch_size": patch,
        },
        overrides.pop("vision_config", None),
    )
    if variant == "idefics3":
        from transformers import Idefics3ForConditionalGeneration as Model

        Config, ImageProcessor, Processor = Idefics3Config, IDEFICS3_IMAGE_PROCESSOR, Idefics3Processor
    else:
        from transformers import SmolVLMForConditionalGeneration as Model

        Config, ImageProcessor = SmolVLMConfig, SMOLVLM_IMAGE_PROCESSOR

        Processor = SmolVLMImageOnlyProcessor

    processor = Processor(
        ImageProcessor(**image_kwargs),
        tokenizer,
        image_seq_len=image_seq_len,
        chat_template=tokenizer.chat_template,
    )
    config = Config(
        text_config=text_config,
        vision_config=vision_config,
        scale_factor=scale,
        image_token_id=tokenizer.image_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **overrides,
    )
    model = tiny_model(Model, config, seed, attn_implementation, tokenizer)
    return model.eval(), processor


# ------------------------------------------------------------------------------------- real geometry

#: HuggingFaceM4/Idefics3-8B-Llama3 (config.json): SigLIP-so400m/14 tower on 364-pixel views, Llama-3-8B
IDEFICS3_8B = RealCheckpoint(
    "HuggingFaceM4/Idefics3-8B-Llama3",
    text=TowerShape(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, intermediate_size=14336,
                    num_key_value_heads=8, vocab_size=128259),
    vision=TowerShape(hidden_size=1152, num_hidden_layers=27, num_attention_heads=16, intermediate_size=4304),
)
#: HuggingFaceTB/SmolVLM-256M-Instruct (config.json): SigLIP-base/16 tower on 512-pixel views, SmolLM2-135M
SMOLVLM_256M = RealCheckpoint(
    "HuggingFaceTB/SmolVLM-256M-Instruct",
    text=TowerShape(hidden_size=576, num_hidden_layers=30, num_attention_heads=9, intermediate_size=1536,
                    num_key_value_heads=3, vocab_size=49280),
    vision=TowerShape(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
)
#: per variant: (view pixels, patch, pixel-shuffle scale, longest edge before splitting, bos token)
REAL_VIEWS = {"idefics3": (364, 14, 2, 4 * 364, "<|begin_of_text|>"), "smolvlm": (512, 16, 4, 4 * 512, "<|im_start|>")}

#: the chat template form of both checkpoints: `<bos>User:<image><question><end_of_utterance>\nAssistant:`
IDEFICS3_TEMPLATE = (
    "{{ bos_token }}"
    "{%- for message in messages -%}"
    "{{ message['role'] | capitalize }}"
    "{%- if message['content'] is string -%}{{ ': ' + message['content'] }}"
    "{%- else -%}{%- if message['content'][0]['type'] == 'image' -%}{{ ':' }}{%- else -%}{{ ': ' }}{%- endif -%}"
    "{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{{ '<image>' }}{%- elif item['type'] == 'text' -%}{{ item['text'] }}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{{ '<end_of_utterance>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ 'Assistant:' }}{%- endif -%}"
)


@register_real("idefics3", idefics3=IDEFICS3_8B, smolvlm=SMOLVLM_256M)
def build_real_idefics3(seed: int = 0, attn_implementation: str = "sdpa", *, variant: str = "idefics3",
                        **overrides: Any) -> tuple[Any, Any]:
    """Idefics3 / SmolVLM with the geometry of `HuggingFaceM4/Idefics3-8B-Llama3` (variant "idefics3") or
    `HuggingFaceTB/SmolVLM-256M-Instruct` ("smolvlm"), 2 layers per stack.

    Idefics3: longest edge resized to 1456 (Lanczos, mean/std 0.5), then to multiples of 364 and cut into
    364×364 tiles plus a global view; patch 14, scale factor 2 → 13×13 = 169 tokens per view.
    SmolVLM: longest edge 2048, 512×512 tiles plus a global view; patch 16, scale factor 4 → 8×8 = 64 per view.
    """
    if variant not in REAL_VIEWS:
        raise ValueError(f"unknown Idefics3 variant {variant!r}; choose one of {', '.join(REAL_VIEWS)}")
    tile, patch, scale, longest, bos = REAL_VIEWS[variant]
    tokenizer = real_tokenizer({"bos_token": bos, "eos_token": "<end_of_utterance>", **TINY_SPECIAL},
                               IDEFICS3_TEMPLATE, add_bos=False, model_max_length=16384)
    settings = real_overrides(
        {
            "longest_edge": longest,
            "vision_config": {**REAL_VISION_CUT},
            "text_config": {**REAL_TEXT_CUT, "max_position_embeddings": 16384},
        },
        overrides,
    )
    return build_tiny_idefics3(seed, attn_implementation, variant=variant, tile=tile, patch=patch, scale=scale,
                               tokenizer=tokenizer, **settings)
