"""LoRSU: fix an imperfect CLIP vision encoder with sparse, structured updates (Panos et al., TMLR 2025).

`update(model, session_data)` runs one continual session in place; `evaluate(model)` runs the continual
few-shot protocol on ShapesWorld (LoRSU against full fine-tuning, LoRA, SPU, LayerNorm tuning and three
ablations) and returns a `LorsuEvaluation`; `quick_evaluate(model)` is its quick setting. The model is
any family with the capabilities DUAL_ENCODER and WRAPPABLE_VIT (the micro zoo's is `DEFAULT_MODEL`).

Deliberate differences from the official code (aresPanos/LoRSU: `build_lorsu_mask`,
`MaskedLoRAParametrization`, the trainer). The fc1 masks and the chosen heads are identical to
`build_lorsu_mask`'s; the masked LoRA has its shape and initialisation (one update of the stacked q/k/v
weight, A on the output side Kaiming-uniform, one zero B shared by q, k and v, ΔW = (α/r)·M ⊙ (A·B)); fc1's bias
and the q/k/v biases train densely, as there. What still differs, measured on micro zoo v1's CLIP (`--model stages/micro-clip-v1`, the shipped
model when these were measured; 2-core CPU; each row names its command):

| what | official | egokit | why | measured effect |
|---|---|---|---|---|
| q/k/v layout | one stacked `in_proj_weight` (3·D × D) | transformers' separate `q_proj`/`k_proj`/`v_proj`, each reading its slice of A's rows, one B | the layout of transformers' CLIP | none: ΔW equals (α/r)·M ⊙ (A·B) of the stacked weight (`tests/methods/test_lorsu_official.py`) |
| loss | `ClipLoss` over the batch's image–caption pairs | cross-entropy over the session's class captions, and per class over its images (`loss="pairs"` gives the official one) | a class caption is one target, not five copies | none here: a balanced session in one batch makes the two equal up to a constant (½·log 5, from the image → text side: 5 copies of each caption), so the gradients are equal; TI + CC 0.173 / 0.293 either way at lr 3e-4 on development seeds 0 / 4 (`python benchmarks/lorsu_lr.py --lrs 3e-4 --option loss=pairs`) |
| optimizer | AdamW, weight decay 0.01 | Adam, as every method of the protocol (`weight_decay=0.01` gives AdamW) | one optimizer for all methods | none measurable: 0.173 / 0.293 either way (`--option weight_decay=0.01`); 20 steps × lr 3e-4 × 0.01 shrink the weights by < 1e-4 |
| epochs, batch, rate | 5 epochs, batch 16, lr 1e-5 (ViT-L/14) | 20 epochs, batch 32, each method's rate chosen on development seeds 0 and 4 (`Settings`) | a micro model and 20 images per session | LoRSU's rate from the grid {1e-4, 3e-4, 1e-3, 3e-3}: mean TI + CC 0.084, 0.233, 0.129, −0.157 (`python benchmarks/lorsu_lr.py`) |
| rank, α | 64, 64 on width 1024 | 8, 8 on width 128 | the same rank / width and α / r | not varied |
| fc1 mask size | `int(sparsity · numel)` | `round(sparsity · numel)` | | one weight per matrix at most (6554 vs 6553 of micro-clip's 65 536) |
| trainable count | LoRA as min(mask entries, r·(in + out)), biases not counted | every entry the optimizer holds (kept rows of A, B, fc1 and q/k/v biases) | what the optimizer really updates | reporting only |

The earlier egokit LoRA (three independent LoRAs with the random factor on the input side, a ~4× smaller
initial update, fc1's bias frozen) is the `lora_v1` ablation (its own rate, 3e-4, chosen on the same seeds).
On the evaluation seeds 1 / 2 / 3 (`egokit lorsu eval --json --shots 5 --seed S`): LoRSU TI 0.078 / 0.118 /
0.138, CC −0.063 / −0.094 / −0.064; `lora_v1` TI 0.047 / 0.173 / 0.229, CC −0.068 / −0.110 / −0.071; full
fine-tuning TI 0.098 / 0.122 / 0.096, CC −0.057 / −0.094 / −0.063, with LoRSU training 5.0 % of its parameters.
The official shape moves the weights more from the first step (seed 1 TI 0.078 against 0.047); on seeds 2 and
3 the earlier variant gained more on the held-out classes at a similar or larger control change. On this micro
CLIP neither variant forgets less than a gently tuned full fine-tuning (at its own rate, 3e-5, chosen on the same
development seeds), so the paper's "less forgetting than full fine-tuning" is not reproduced here.
These figures are zoo v1's (`--model stages/micro-clip-v1`). On zoo v2's CLIP, at the same rates (not re-chosen),
LoRSU TI 0.113 / 0.149 / 0.138, CC −0.046 / −0.028 / −0.062; full fine-tuning TI 0.104 / 0.113 / 0.131, CC −0.028 /
−0.049 / −0.033; `lora_v1` TI 0.084 / 0.076 / 0.120, CC −0.021 / −0.018 / −0.035 (seeds 1 / 2 / 3): LoRSU forgets less
than full fine-tuning on seed 2 only.

Public names of the method; its internals live in the modules beside this file.
"""

from egokit.methods.lorsu.accuracies import Accuracies, control_accuracy, target_accuracy
from egokit.methods.lorsu.baselines import LORA_PIECES, METHODS, lora_targets
from egokit.methods.lorsu.data import (
    ClassSpec,
    SessionSpec,
    TestSet,
    control_set,
    default_sessions,
    session_data,
    target_examples,
    target_set,
)
from egokit.methods.lorsu.evaluation import (
    ABLATIONS,
    DEFAULT_MODEL,
    MAIN_METHODS,
    Settings,
    ZeroShot,
    evaluate,
    quick_evaluate,
)
from egokit.methods.lorsu.result import LorsuEvaluation
from egokit.methods.lorsu.session import (
    DEFAULTS,
    SessionReport,
    choose_heads,
    head_rows,
    head_scores,
    top_fraction_mask,
    update,
)
from egokit.methods.lorsu.training import SessionData, image_embeddings, vision_parameters

__all__ = [
    "ABLATIONS",
    "Accuracies",
    "ClassSpec",
    "DEFAULTS",
    "DEFAULT_MODEL",
    "LORA_PIECES",
    "LorsuEvaluation",
    "MAIN_METHODS",
    "METHODS",
    "SessionData",
    "SessionReport",
    "SessionSpec",
    "Settings",
    "TestSet",
    "ZeroShot",
    "choose_heads",
    "control_accuracy",
    "control_set",
    "default_sessions",
    "evaluate",
    "head_rows",
    "head_scores",
    "image_embeddings",
    "lora_targets",
    "quick_evaluate",
    "session_data",
    "target_accuracy",
    "target_examples",
    "target_set",
    "top_fraction_mask",
    "update",
    "vision_parameters",
]
