"""The micro zoo: small models the kit trains on ShapesWorld and ships inside the package.

- `micro-clip/`: a `CLIPModel` (recipe: `egokit.zoo.clip_recipe`), trained without a held-out set;
- `micro-vlm/`:  a `LlavaForConditionalGeneration` on the micro CLIP's frozen vision tower (recipe:
  `egokit.zoo.vlm_recipe`, tasks: `egokit.zoo.vlm_tasks`).

They are ordinary transformers checkpoint folders (fp16 safetensors, tokenizer, processor, chat
template, model card), loaded with `egokit.load("micro-clip")` / `egokit.load("micro-vlm")` like any
folder. Train: `python -m egokit.zoo.train clip|vlm`; evaluate: `egokit zoo eval --json`.
Memories for the VLM (token subsets placed in the context): `egokit.zoo.prompting`.
"""
