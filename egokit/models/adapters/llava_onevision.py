"""LLaVA-OneVision (`LlavaOnevisionForConditionalGeneration`): anyres tiles + a base view, row newlines.

The layout replays the model's own arithmetic (transformers' `modeling_llava_onevision.py`:
`image_size_to_num_patches`, `get_anyres_image_grid_shape`, `unpad_image`, `pack_image_features`) from
`image_sizes`, `batch_num_images`, `config.image_grid_pinpoints` and the vision config. For one image
the features that fill its image-token run are, in order:

1. the base view: `h*w` tokens in raster order (`h = w = image_size // patch_size`), the whole image
   resized to the tile size;
2. only when the prompt has a single image ("anyres"): the tiles of the best pinpoint resolution put
   together as one `(tiles_h*h, tiles_w*w)` map, unpadded (rows or columns that only show the
   processor's padding are cut, with the model's rounding), bilinearly shrunk when larger than
   `anyres_max_N` tiles allow (each shrunk token covers the span of the cells it was interpolated from —
   an approximation of bilinear weights), then read row by row with one `image_newline` token after each
   row;
3. with several images in one prompt: the base view of the image padded to a square, then one newline.

Newline tokens have no pixel box: they are left out of `positions` (listed in
`extra["newline_positions"]`) and `feature_index` skips them, so `features[feature_index]` lines up with
`positions`. Tile boxes map from the padded canvas back to original pixels with the processor's
resize-to-fit arithmetic; boxes are clipped to the image.
"""

from __future__ import annotations

import copy
import math
from typing import Any, ClassVar

import torch
from transformers import LlavaOnevisionProcessor
from transformers.image_processing_utils import select_best_resolution
from transformers.processing_utils import ProcessorMixin

from egokit.errors import InputError
from egokit.models.adapters.base import (
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
    feature_list,
    group_images,
    load_images,
    merge_config,
    real_overrides,
    real_tokenizer,
    tiny_layers,
    tiny_model,
    tiny_token_ids,
    to_model,
)
from egokit.models.adapters.llava import LlavaAdapter
from egokit.models.geometry import PixelMap, grid_boxes
from egokit.models.processors import PROCESSOR_CLASSES
from egokit.models.text import TINY_WORDS, word_tokenizer


class LlavaOnevisionImageOnlyProcessor(LlavaOnevisionProcessor):
    """The stock processor without its video processor (which cannot be built without torchvision).

    Images and text behave exactly as in `LlavaOnevisionProcessor`; videos are not supported. Like the
    other image-only processors (`egokit.models.processors`), it saves under the stock class name, so a
    saved folder stays an ordinary checkpoint folder, and it is registered in
    `egokit.models.processors.PROCESSOR_CLASSES` so the loader picks it by `model_type`.
    """

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["processor_class"] = "LlavaOnevisionProcessor"
        return out

    def __init__(
        self,
        image_processor: Any = None,
        tokenizer: Any = None,
        num_image_tokens: int | None = None,
        vision_feature_select_strategy: str | None = None,
        chat_template: str | None = None,
        image_token: str = "<image>",
        video_token: str = "<video>",
        vision_aspect_ratio: str = "anyres_max_9",
        **kwargs: Any,
    ) -> None:
        self.num_image_tokens = num_image_tokens
        self.vision_feature_select_strategy = vision_feature_select_strategy
        self.image_token = getattr(tokenizer, "image_token", None) or image_token
        self.video_token = getattr(tokenizer, "video_token", None) or video_token
        self.image_token_id = getattr(tokenizer, "image_token_id", None)
        if self.image_token_id is None:
            self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = getattr(tokenizer, "video_token_id", None)
        if self.video_token_id is None:
            self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
        self.vision_aspect_ratio = vision_aspect_ratio
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)


PROCESSOR_CLASSES.setdefault("llava_onevision", LlavaOnevisionImageOnlyProcessor)


def _max_tiles(vision_aspect_ratio: str) -> int:
    # the model's own parsing: int(vision_aspect_ratio.strip("anyres_max_"))
    return int(vision_aspect_ratio.strip("anyres_max_"))  # noqa: B005 - same parsing as the model


def _fit_size(size: tuple[int, int], target: tuple[int, int]) -> tuple[int, int]:
    """transformers' `get_patch_output_size`: the image resized to fit `target`, aspect ratio kept."""
    oh, ow = size
    th, tw = target
    scale_w, scale_h = tw / ow, th / oh
    if scale_w < scale_h:
        return min(math.ceil(oh * scale_w), th), tw
    return th, min(math.ceil(ow * scale_h), tw)


def _cell_edges(
    first: int, count: int, n: int, side: int, patch: int, tile_px: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Canvas pixel edges (start, end) of `n` tokens that evenly split the `count` cells from `first` along one
    axis. Cell k is patch `k % side` of tile `k // side`: it starts at `(k // side) * tile_px + (k % side) *
    patch` (a tile wider than side*patch leaves its last pixels to no patch, as the vision tower does)."""
    edges = first + torch.arange(n + 1, dtype=torch.float64) * (count / n)

    def pixels(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return (k // side) * tile_px + (k % side) * patch + (u - k) * patch

    start_k = edges[:-1].floor()
    end_k = edges[1:].ceil() - 1
    return pixels(edges[:-1], start_k).float(), pixels(edges[1:], end_k).float()


@register_adapter
class LlavaOnevisionAdapter(LlavaAdapter):
    """LLaVA-OneVision: base view + anyres tiles with row newlines (see the module docstring)."""

    family: ClassVar[str] = "llava_onevision"
    model_types: ClassVar[tuple[str, ...]] = ("llava_onevision",)

    # -- inputs ----------------------------------------------------------------------------------------
    def prepare(self, images: list[Any] | None, text: str | list[str], **kwargs: Any) -> Any:
        """Like LLaVA, but images go to the processor grouped per text, so a prompt with several images
        uses the model's multi-image mode (base views only), as in OneVision's own processing."""
        texts = [text] if isinstance(text, str) else list(text)
        groups = [load_images(g) for g in group_images(images, texts)]
        token = self.image_token
        texts = [self.prompt(t, len(g)) if g and token not in t else t for t, g in zip(texts, groups)]
        call: dict[str, Any] = {"text": texts, "return_tensors": "pt", "padding": True, **kwargs}
        if any(groups):
            call["images"] = groups
        try:
            inputs = self.processor(**call)
        except ValueError as e:
            raise InputError(f"the processor refused the inputs: {e}") from e
        return to_model(inputs, self.model)

    # -- layout arithmetic -----------------------------------------------------------------------------
    @property
    def base_side(self) -> int:
        vc = self.config.vision_config
        return int(vc.image_size) // int(vc.patch_size)

    def _pinpoints(self) -> list[list[int]]:
        return [list(p) for p in self.config.image_grid_pinpoints]

    def _processor_pinpoints(self) -> list[list[int]]:
        ip = getattr(self.processor, "image_processor", None)
        pins = getattr(ip, "image_grid_pinpoints", None)
        return [list(p) for p in pins] if pins else self._pinpoints()

    def image_plan(self, size: tuple[int, int], patched: bool, tile_size: tuple[int, int]) -> dict[str, Any]:
        """Token plan of one image of original `size` (height, width).

        Returns `n_features` (all rows of its projector output, newlines included), `feature_index`
        (rows with a pixel box), `boxes` (their boxes in original pixels), `newline_index`, `tile_grid`
        and a few details. `tile_size` is the processed (height, width) of one tile / base view.
        """
        oh, ow = int(size[0]), int(size[1])
        side = self.base_side
        th, tw = tile_size
        n_base = side * side
        if patched:  # base view: the whole image resized (stretched) to the tile size
            base_map = PixelMap(ow / tw, 0.0, oh / th, 0.0, (oh, ow))
        else:  # multi-image: padded to a square (centred), then resized
            sq = max(oh, ow)
            base_map = PixelMap(sq / tw, -((sq - ow) // 2), sq / th, -((sq - oh) // 2), (oh, ow))
        patch = int(self.config.vision_config.patch_size)
        boxes = [base_map.boxes(grid_boxes(side, side, patch, patch))]
        feature_index = [torch.arange(n_base)]
        plan: dict[str, Any] = {"patched": patched, "base_grid": (side, side)}
        if not patched:
            plan.update(n_features=n_base + 1, newline_index=torch.tensor([n_base]), tile_grid=(0, 0))
            plan.update(feature_index=torch.cat(feature_index), boxes=torch.cat(boxes))
            return plan

        image_size = int(self.config.vision_config.image_size)
        best_h, best_w = select_best_resolution([oh, ow], self._pinpoints())
        rows_full, cols_full = best_h // image_size * side, best_w // image_size * side
        # unpad_image, with the model's rounding
        if ow / oh > cols_full / rows_full:
            new_h = int(round(oh * (cols_full / ow), 7))
            pad = (rows_full - new_h) // 2
            r0, r1, c0, c1 = pad, rows_full - pad, 0, cols_full
        else:
            new_w = int(round(ow * (rows_full / oh), 7))
            pad = (cols_full - new_w) // 2
            r0, r1, c0, c1 = 0, rows_full, pad, cols_full - pad
        ch, cw = r1 - r0, c1 - c0
        ratio = math.sqrt(ch * cw / (_max_tiles(self.config.vision_aspect_ratio) * side**2))
        nh, nw = (int(ch // ratio), int(cw // ratio)) if ratio > 1.1 else (ch, cw)

        # canvas (best resolution, padded) → original pixels, with the processor's resize-to-fit
        pb_h, pb_w = select_best_resolution([oh, ow], self._processor_pinpoints())
        fit_h, fit_w = _fit_size((oh, ow), (pb_h, pb_w))
        paste_y, paste_x = (pb_h - fit_h) // 2, (pb_w - fit_w) // 2
        canvas_map = PixelMap(ow / fit_w, -paste_x * ow / fit_w, oh / fit_h, -paste_y * oh / fit_h, (oh, ow))
        # token (i, j) spans the source cells [r0 + i*ch/nh, r0 + (i+1)*ch/nh) × [...] (all of one cell
        # when not downsampled); a cell k of the tile map is patch k % side of tile k // side
        y0, y1 = _cell_edges(r0, ch, nh, side, patch, th)
        x0, x1 = _cell_edges(c0, cw, nw, side, patch, tw)
        tiles = torch.stack(
            [x0.repeat(nh), y0.repeat_interleave(nw), x1.repeat(nh), y1.repeat_interleave(nw)], dim=1
        )
        boxes.append(canvas_map.boxes(tiles))

        row = torch.arange(nh).repeat_interleave(nw)
        col = torch.arange(nw).repeat(nh)
        feature_index.append(n_base + row * (nw + 1) + col)
        newline_index = n_base + torch.arange(nh) * (nw + 1) + nw
        plan.update(
            n_features=n_base + nh * (nw + 1),
            feature_index=torch.cat(feature_index),
            boxes=torch.cat(boxes),
            newline_index=newline_index,
            tile_grid=(nh, nw),
            tiles=(best_h // image_size, best_w // image_size),
            best_resolution=(best_h, best_w),
            unpadded_cells=(r0, r1, c0, c1),
            downsampled=ratio > 1.1,
        )
        return plan

    def _plans(self, inputs: Any) -> list[dict[str, Any]]:
        sizes = [tuple(int(v) for v in s) for s in torch.as_tensor(inputs["image_sizes"]).tolist()]
        per_row = inputs.get("batch_num_images")
        if per_row is None:
            patched = [True] * len(sizes)
        else:
            counts = [int(n) for n in torch.as_tensor(per_row).flatten().tolist()]
            patched = [n == 1 for n in counts for _ in range(n)]
        tile = tuple(int(v) for v in inputs["pixel_values"].shape[-2:])
        return [self.image_plan(s, p, tile) for s, p in zip(sizes, patched)]

    # -- layout ----------------------------------------------------------------------------------------
    def visual_layout(self, inputs: Any, batch_index: int = 0) -> list[ImageTokens]:
        if inputs.get("image_sizes") is None:
            return []
        plans = self._plans(inputs)
        ids = inputs["input_ids"]
        # assign images to rows in order: each row's image tokens are filled by whole images
        first = 0
        for r in range(batch_index + 1):
            row_count = int((ids[r] == self.image_token_id).sum())
            k, total = first, 0
            while total < row_count and k < len(plans):
                total += plans[k]["n_features"]
                k += 1
            if total != row_count:
                raise InputError(
                    f"row {r} has {row_count} image tokens but its images need {total}: were the inputs made "
                    "by this model's processor, without truncation?"
                )
            if r < batch_index:
                first = k
        row_images = range(first, k)
        positions = self._image_token_positions(inputs, batch_index)
        layout, offset = [], 0
        for i in row_images:
            plan = plans[i]
            run = positions[offset : offset + plan["n_features"]]
            offset += plan["n_features"]
            extra = {
                key: plan[key]
                for key in (
                    "patched",
                    "tile_grid",
                    "tiles",
                    "best_resolution",
                    "unpadded_cells",
                    "downsampled",
                )
                if key in plan
            }
            size = tuple(int(v) for v in torch.as_tensor(inputs["image_sizes"][i]).tolist())
            extra.update(
                image_index=i,
                coords="original",
                newline_positions=run[plan["newline_index"]],
                view=(0.0, 0.0, float(size[1]), float(size[0])),
            )
            layout.append(
                ImageTokens(
                    positions=run[plan["feature_index"]],
                    boxes=plan["boxes"],
                    feature_index=plan["feature_index"],
                    grid=plan["base_grid"],
                    image_size=size,
                    extra=extra,
                )
            )
        return layout

    # -- features --------------------------------------------------------------------------------------
    def image_features(self, inputs: Any) -> list[torch.Tensor]:
        """Per image, every row that fills its image-token run (newlines included), in order."""
        out = self.model.get_image_features(
            pixel_values=inputs["pixel_values"],
            image_sizes=inputs["image_sizes"],
            batch_num_images=inputs.get("batch_num_images"),
            return_dict=True,
        )
        return feature_list(out)


# ---------------------------------------------------------------------------------------- tiny model


TINY_PINPOINTS = [[64, 64], [64, 128], [128, 64], [128, 128], [64, 192], [192, 64], [256, 256]]




@register_tiny("llava_onevision")
def build_tiny_llava_onevision(
    seed: int = 0, attn_implementation: str = "sdpa", *, image_size: int = 64, tokenizer: Any = None,
    **overrides: Any
) -> tuple[Any, Any]:
    """Tiny random LLaVA-OneVision with an offline word tokenizer.

    SigLIP vision tower (64×64 tiles, patch 8, no class token, `vision_feature_select_strategy="full"`) → 64
    tokens per tile; Qwen2 decoder 2 layers × width 32. Grid pinpoints up to 256×256 (4×4 tiles), so a large
    image exercises the `anyres_max_9` downsampling and a non-square one the unpadding.

    Build `(model, processor)`: `LlavaOnevisionForConditionalGeneration` (fp32, eval mode) and an
    image-only OneVision processor.

    tokenizer: a tokenizer (with `image_token` and `video_token`) instead of the tiny word tokenizer.
    overrides: `text_config` / `vision_config` / `image_processor` dicts merged into the defaults; other
               keys set top-level config fields (e.g. `image_grid_pinpoints`, `vision_aspect_ratio`).
    """
    from transformers import LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration
    from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
        LlavaOnevisionImageProcessorPil,
    )


    patch, width = 8, 32
    if tokenizer is None:
        tokenizer = word_tokenizer(
            TINY_WORDS,
            extra_special_tokens={"image_token": "<image>", "video_token": "<video>"},
            model_max_length=4096,
        )
    settings = {
        "image_token_id": tokenizer.image_token_id,
        "video_token_id": tokenizer.video_token_id,
        "vision_feature_layer": -1,
        "vision_feature_select_strategy": "full",
        "image_grid_pinpoints": copy.deepcopy(TINY_PINPOINTS),
        "vision_aspect_ratio": "anyres_max_9",
        **overrides,
    }
    image_processor = LlavaOnevisionImageProcessorPil(
        **merge_config(
            {
                "size": {"height": image_size, "width": image_size},
                "image_grid_pinpoints": copy.deepcopy(settings["image_grid_pinpoints"]),
            },
            settings.pop("image_processor", None),
        )
    )
    text_config = merge_config(
        {
            "model_type": "qwen2",
            **tiny_layers(width),
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            **tiny_token_ids(tokenizer),
        },
        settings.pop("text_config", None),
    )
    vision_config = merge_config(
        {
            "model_type": "siglip_vision_model",
            "image_size": image_size,
            "patch_size": patch,
            **tiny_layers(width),
        },
        settings.pop("vision_config", None),
    )
    config = LlavaOnevisionConfig(text_config=text_config, vision_config=vision_config, **settings)
    model = tiny_model(LlavaOnevisionForConditionalGeneration, config, seed, attn_implementation, tokenizer)
    side = image_size // vision_config["patch_size"]
    processor = LlavaOnevisionImageOnlyProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        num_image_tokens=side * side,
        vision_feature_select_strategy=config.vision_feature_select_strategy,
        chat_template=tokenizer.chat_template,
        vision_aspect_ratio=config.vision_aspect_ratio,
    )
    return model.eval(), processor


# ------------------------------------------------------------------------------------- real geometry

#: llava-hf/llava-onevision-qwen2-0.5b-ov-hf (config.json): SigLIP-so400m/14-384 tower (26 layers kept),
#: Qwen2-0.5B language model
LLAVA_ONEVISION_0_5B = RealCheckpoint(
    "llava-hf/llava-onevision-qwen2-0.5b-ov-hf",
    text=TowerShape(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, intermediate_size=4864,
                    num_key_value_heads=2, vocab_size=152000),
    vision=TowerShape(hidden_size=1152, num_hidden_layers=26, num_attention_heads=16, intermediate_size=4304),
)
#: its `image_grid_pinpoints`: every (rows × 384, cols × 384) for 1..6 tiles per side
ONEVISION_PINPOINTS = [[384 * r, 384 * c] for r in range(1, 7) for c in range(1, 7)]

#: LLaVA-OneVision's chat template form: `<|im_start|>user <image>\n<question><|im_end|>\n<|im_start|>assistant\n`
ONEVISION_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + ' ' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}"
    "{%- for item in message['content'] if item['type'] == 'image' -%}{{ '<image>' }}{%- endfor -%}"
    "{%- for item in message['content'] if item['type'] == 'text' -%}{{ '\n' + item['text'] }}{%- endfor -%}"
    "{%- endif -%}"
    "{{ '<|im_end|>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}"
)
ONEVISION_SPECIAL = {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "image_token": "<image>",
                     "video_token": "<video>", "im_start": "<|im_start|>"}


@register_real("llava_onevision", llava_onevision=LLAVA_ONEVISION_0_5B)
def build_real_llava_onevision(seed: int = 0, attn_implementation: str = "sdpa", **overrides: Any
                               ) -> tuple[Any, Any]:
    """LLaVA-OneVision with the geometry of `llava-hf/llava-onevision-qwen2-0.5b-ov-hf`, 2 layers per stack.

    Tiles and base view of 384×384 (bicubic, mean/std 0.5), SigLIP tower with patch 14 and no class token →
    27×27 = 729 tokens per tile (`vision_feature_layer=-1`, `"full"`); `image_grid_pinpoints` from 384×384 to
    2304×2304 (up to 6×6 tiles) and `anyres_max_9`: the tile map is unpadded to the image's aspect ratio,
    shrunk when it holds more than 9 tiles' worth of tokens, and every row ends with a newline token.
    """
    tokenizer = real_tokenizer(ONEVISION_SPECIAL, ONEVISION_TEMPLATE, model_max_length=32768)
    settings = real_overrides(
        {
            "image_size": 384,
            "vision_config": {**REAL_VISION_CUT, "patch_size": 14},
            "text_config": {**REAL_TEXT_CUT, "max_position_embeddings": 32768},
            "image_processor": {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "do_pad": True},
            "image_grid_pinpoints": copy.deepcopy(ONEVISION_PINPOINTS),
            "vision_feature_layer": -1,
            "vision_feature_select_strategy": "full",
            "vision_aspect_ratio": "anyres_max_9",
        },
        overrides,
    )
    return build_tiny_llava_onevision(seed, attn_implementation, tokenizer=tokenizer, **settings)
