"""PixelLLM (Xu et al., CVPR 2024): where in the image is each generated word.

A point head (an MLP on the language model's final per-token features) regresses two points per token, a
box's corners. `localize` gives every word of a generated caption a point and a box; `refer` gives a
referring expression a box by the paper's rule: the expression, teacher-forced after `where is <expression>
?` and ended by the end-of-sequence token, is boxed by the two corners predicted at its last token. The
shipped head (`micro-pixel`) was trained with PixelLLM's loss, caption cross-entropy + 0.1 × L1 in pixels,
with referring as a task of its own (no caption loss, a box target on the expression's last token only) and
copies of every decoder layer tuned (`egokit.methods.pixel.training`).

Deliberate differences from the official code (google-research/scenic, `projects/pixel_llm`, `*_ref.py`
configs); numbers from `egokit pixel eval --json --seed 0 --n 150` on micro zoo v1's head unless named (`--model
stages/micro-vlm-v1 --head stages/micro-pixel-v1`, the shipped pair when the recipe was chosen):

| what differs (official → kit) | why | measured effect |
|---|---|---|
| The head also reads the image tokens (a small attention over them with their cell positions); the official MLP reads the word's feature only | the micro VLM's image tokens carry little absolute position (probe error 1.10 cells vs 2.00 for the mean) and RoPE passes only relative offsets, so a word's feature says what it looked at, hardly where | 300-step runs, `evaluate(seed=11, n=40)`: without it refer_p50 0.09 and word_in_box 0.47, with it 0.33 and 0.75 |
| Tuned copies of all decoder layers; the official tunes the language model with LoRA (rank 32 on q, v) | the copies ship in the head and are swapped in only while it is used, so the shared VLM stays unchanged; four 128-wide layers are small (head file 3.2 MB fp16) | not measured against LoRA |
| Vision tower and projector frozen; the official also tunes its image backbone | the shared VLM stays unchanged outside the head | not measured |
| One joint run, 30 % captions (per-word boxes, cross-entropy) and 70 % referring; the official fine-tunes a trace-pretrained model on referring data alone | one recipe keeps the captions' cross-entropy, so captions do not degrade | captions: 0.886 of attributes with the head vs 0.781 without (zoo v2's head: 0.952 vs 0.892); 300-step runs: referring share 0.4 → 0.7 lifts refer_p50 0.19 → 0.33 |
| Caption words' targets are ShapesWorld's boxes; the paper aligns Localized Narratives mouse traces to words (`--mode trace` simulates it) | exact boxes exist for ShapesWorld | not measured for the shipped head |
| Plain cross-entropy and greedy decoding; the official smooths labels (0.1) and decodes with beam 3 | the micro VLM was trained and is evaluated that way | not measured |
| **Not the paper's rule** (option): the answer position (the prompt's last token) also targets the box in training, and `refer(..., readout="answer_position")` reads it there | the micro VLM's features at the answer position ground the expression | refer_p50_answer_position 0.860 / 0.853 / 0.883 vs refer_p50 (paper's rule) 0.860 / 0.870 / 0.877 on seeds 0 / 5 / 6 (zoo v2's head: 0.903 / 0.920 / 0.940 vs 0.907 / 0.920 / 0.930): no better, so the paper's rule is the default; 300-step runs: the extra target lifts the paper's rule too, refer_p50 0.25 → 0.33 (80 expressions) |

300-step runs: `training.train_pixel(PixelRecipe(steps=300, refer_share=0.7, ...), out, run_dir)` with the
named setting changed, then `evaluate(model, head, seed=11, n=40)` (the referring-share row compares
`refer_share=0.4` with 0.7); seeds 5 and 6 were held out from every choice of the recipe.

Public names of the method; its internals live in the modules beside this file."""

from egokit.methods.pixel.evaluation import (
    DEFAULT_MODEL,
    PixelEvaluation,
    evaluate,
    inside,
    iou,
    quick_evaluate,
)
from egokit.methods.pixel.head import PointHead, box_from_points, decoder_layers, feature_hooks, hidden_size
from egokit.methods.pixel.locate import (
    DEFAULT_HEAD,
    answer_words,
    load_head,
    localize,
    refer,
    token_points,
)
from egokit.methods.pixel.render import trace_picture
from egokit.methods.pixel.result import PixelResult
from egokit.methods.pixel.targets import (
    CAPTION_PROMPT,
    canonical_objects,
    caption_words,
    refer_prompt,
    referring_expressions,
    trace_targets,
)

__all__ = [
    "CAPTION_PROMPT",
    "DEFAULT_HEAD",
    "DEFAULT_MODEL",
    "PixelEvaluation",
    "PixelResult",
    "PointHead",
    "answer_words",
    "box_from_points",
    "canonical_objects",
    "caption_words",
    "decoder_layers",
    "evaluate",
    "feature_hooks",
    "hidden_size",
    "inside",
    "iou",
    "load_head",
    "localize",
    "quick_evaluate",
    "refer",
    "refer_prompt",
    "referring_expressions",
    "token_points",
    "trace_picture",
    "trace_targets",
]
