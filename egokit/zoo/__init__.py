"""The micro zoo's shipped checkpoints: small models the kit trains on ShapesWorld and ships inside the package.

- `micro-clip/`:  a `CLIPModel` (recipe: `egokit.recipes.clip`), trained with a held-out set of attributes and, in
  zoo v2, hard negatives of every foil kind (NegCLIP-style);
- `micro-vlm/`:   a `LlavaForConditionalGeneration` on the micro CLIP's frozen vision tower (recipe:
  `egokit.recipes.vlm`, tasks: `egokit.recipes.vlm_tasks`);
- `micro-pixel/`: PixelLLM's point head on the micro VLM (recipe: `egokit.methods.pixel.training`).

These are zoo v2, trained in stages (`stages/README.md` in the repository gives each stage's command; the v1
models shipped before them are kept there).

They are ordinary checkpoint folders (fp16 safetensors, tokenizer, processor, chat template, model card),
loaded with `egokit.load("micro-clip")` like any local folder; this package holds only the files and
where they are (`ZOO_DIR`), so it sits with the models, below every method. Training and evaluating them
is the recipes' job (`egokit.recipes`, at the top of the stack): `python -m egokit.recipes.train clip|vlm|pixel`,
`egokit zoo eval --json`.
"""

from __future__ import annotations

from pathlib import Path

ZOO_DIR = Path(__file__).resolve().parent

__all__ = ["ZOO_DIR"]
