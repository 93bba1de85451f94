"""The continual few-shot protocol: every method runs the same sessions on its own copy of the model, and
zero-shot accuracy is measured before the first session and after each one.

- target accuracy: on the test images of every session's target classes (held-out values or
  combinations), each classified among its session's class captions; the mean over sessions.
- control accuracy: colour, shape and pattern of single-object test scenes that show nothing held out,
  among the values the encoder was trained on; the mean over the three tasks.
- TI (target improvement) = target accuracy after the last session − before the first;
  CC (control change)      = control accuracy after the last session − before (negative: forgetting).

    result = evaluate(egokit.load("micro-clip"), shots=5, seed=1)
    result.method_metrics("lorsu")      # {"ti": ..., "cc": ..., "trainable_params": ..., ...}
    result.metrics()["methods.lorsu.ti"]  # the same numbers, flat (what `egokit lorsu eval --json` prints)

`quick_evaluate(model)` runs the protocol's quick settings (`Settings.quick`: 2 epochs, few test images).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from egokit.errors import InputError
from egokit.methods.lorsu.data import (
    SessionSpec,
    TestSet,
    control_set,
    default_sessions,
    session_data,
    target_set,
)
from egokit.methods.lorsu.result import LorsuEvaluation
from egokit.methods.lorsu.session import DEFAULTS
from egokit.methods.lorsu.training import accuracy, class_embeddings, dual_encoder, image_embeddings

#: the micro zoo model the protocol runs on by default
DEFAULT_MODEL = "micro-clip"
MAIN_METHODS: tuple[str, ...] = ("lorsu", "full", "lora", "spu", "layernorm")
ABLATIONS: tuple[str, ...] = ("random_heads", "unmasked_fc1", "lora_v1")


@dataclass
class Settings:
    """Hyper-parameters of the protocol. Every method gets the same data, loss, optimizer (Adam), epochs
    and batch size; the learning rate is each method's own (`lr`), chosen on the development seeds 0 and 4
    (never on the evaluation seeds 1-3): for each method the rate of its grid with the best mean TI + CC over
    the two seeds. LoRSU (official LoRA shape, `python benchmarks/lorsu_lr.py --methods lorsu --lrs 1e-4 3e-4
    1e-3 3e-3`), TI + CC seed 0 / seed 4: 0.080/0.089, 0.173/0.293, 0.163/0.094, -0.195/-0.120 -> 3e-4. The
    other methods' code did not change since their grid was run (TI + CC, seed 0 / seed 4, rates in order):
    lorsu_v1, the `lora_v1` ablation, {1e-4, 3e-4, 1e-3}: 0.052/0.059, 0.230/0.349, 0.139/0.184; lora {1e-4,
    3e-4, 1e-3, 3e-3}: 0.050/0.074, 0.079/0.125, 0.132/0.182, -0.236/-0.277; spu {1e-4, 3e-4, 1e-3}:
    0.063/0.056, 0.188/0.270, -0.038/0.138; layernorm {1e-4, 3e-4, 1e-3}: 0.013/0.060, 0.020/0.076,
    0.033/0.061; full {1e-5, 3e-5, 1e-4, 3e-4}: 0.054/0.068, 0.117/0.133, 0.129/-0.065, -0.142/-0.266. The
    other ablations use LoRSU's rate. `method_options` passes extra settings to one method (e.g. the official
    pairwise loss: {"lorsu": {"loss": "pairs"}})."""

    shots: int = 5
    seed: int = 1
    epochs: int = 20
    batch_size: int = 32
    lr: dict[str, float] = field(default_factory=lambda: {
        "lorsu": DEFAULTS["lr"], "random_heads": DEFAULTS["lr"], "unmasked_fc1": DEFAULTS["lr"], "lora_v1": 3e-4, "spu": 3e-4,
        "lora": 1e-3, "full": 3e-5, "layernorm": 3e-4,
    })
    sparsity: float = 0.1
    top_heads: int = 2
    rank: int = 8
    alpha: float = 8.0
    target_per_class: int = 30
    control_images: int = 240
    #: extra keyword arguments for one method's update function, e.g. {"lorsu": {"loss": "pairs"}}
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def quick(cls, shots: int = 5, seed: int = 1) -> Settings:
        """A seconds-long run (fewer epochs and test images), for tests and demos."""
        return cls(shots=shots, seed=seed, epochs=2, target_per_class=3, control_images=18)

    def method_kwargs(self, method: str) -> dict[str, Any]:
        kw: dict[str, Any] = {"epochs": self.epochs, "lr": self.lr.get(method, 1e-3), "batch_size": self.batch_size,
                              "seed": self.seed}
        if method in ("lorsu", "random_heads", "unmasked_fc1", "lora_v1"):
            kw.update(sparsity=self.sparsity, top_heads=self.top_heads, rank=self.rank, alpha=self.alpha)
        elif method == "spu":
            kw.update(sparsity=self.sparsity)
        elif method == "lora":
            kw.update(rank=self.rank, alpha=self.alpha)
        kw.update(self.method_options.get(method, {}))
        return kw


class ZeroShot:
    """Zero-shot accuracy of a CLIP on fixed test sets; the (frozen) text side is embedded once."""

    def __init__(self, clip: Any, processor: Any, sets: dict[str, TestSet], batch: int = 128) -> None:
        self.sets = sets
        self.batch = batch
        self.pixels = {k: processor(images=s.images, return_tensors="pt")["pixel_values"].float()
                       for k, s in sets.items()}
        tok = processor.tokenizer
        self.text: dict[tuple[str, str], torch.Tensor] = {}
        dev = next(clip.parameters()).device
        with torch.no_grad():
            for k, s in sets.items():
                for task, texts in s.tasks.items():
                    enc = tok(list(texts), padding=True, return_tensors="pt")
                    out = clip.get_text_features(input_ids=enc["input_ids"].to(dev),
                                                 attention_mask=enc["attention_mask"].to(dev))
                    emb = out.pooler_output if hasattr(out, "pooler_output") else out
                    self.text[(k, task)] = F.normalize(emb.float(), dim=-1)

    @torch.no_grad()
    def __call__(self, clip: Any) -> dict[str, dict[str, float]]:
        """{set: {task: accuracy}} for the model (a dual encoder or a `LoadedModel` of one) as it is now."""
        out: dict[str, dict[str, float]] = {}
        for k, s in self.sets.items():
            img = self._image_embeddings(clip, k)
            out[k] = {}
            for task, labels in s.labels.items():
                lab = torch.as_tensor(labels)
                keep = lab >= 0
                logits = img[keep.to(img.device)] @ self.text[(k, task)].t()
                out[k][task] = accuracy(logits, lab[keep])
        return out

    @torch.no_grad()
    def predictions(self, clip: Any, set_name: str, task: str) -> list[int]:
        """The class (index into the task's captions) the model gives each labelled image of `task` in the
        test set `set_name`, in the set's order."""
        img = self._image_embeddings(clip, set_name)
        keep = torch.as_tensor(self.sets[set_name].labels[task]) >= 0
        return (img[keep.to(img.device)] @ self.text[(set_name, task)].t()).argmax(-1).tolist()

    def _image_embeddings(self, clip: Any, set_name: str) -> torch.Tensor:
        loaded = dual_encoder(clip)
        model = loaded.model
        was = model.training
        model.eval()
        pixels = self.pixels[set_name]
        try:
            return torch.cat([image_embeddings(loaded, pixels[i:i + self.batch])
                              for i in range(0, len(pixels), self.batch)])
        finally:
            model.train(was)


def evaluate(model: Any, *, shots: int = 5, seed: int = 1, quick: bool = False,
             methods: Sequence[str] = MAIN_METHODS + ABLATIONS, settings: Settings | None = None,
             sessions: Sequence[SessionSpec] | None = None, progress: bool = True) -> LorsuEvaluation:
    """Run the continual protocol for each method on a copy of `model` (a `LoadedModel`, or a
    `(CLIPModel, processor)` pair); `model` itself is not changed."""
    from tqdm.auto import tqdm

    from egokit.methods.lorsu.baselines import METHODS

    clip, processor, name = _unpack(model)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise InputError(f"unknown method(s) {unknown}: choose from {', '.join(METHODS)}")
    cfg = settings or (Settings.quick(shots, seed) if quick else Settings(shots=shots, seed=seed))
    specs = list(sessions) if sessions is not None else default_sessions()
    t0 = time.perf_counter()
    data = [session_data(processor, s, cfg.shots, cfg.seed) for s in specs]
    for d in data:  # every method keeps the text side frozen: embed the class captions once
        class_embeddings(clip, d, cache=True)
    scorer = ZeroShot(clip, processor, {"target": target_set(specs, cfg.target_per_class, cfg.seed),
                                        "control": control_set(cfg.control_images, cfg.seed)})
    before = scorer(clip)
    curves: dict[str, list[dict[str, dict[str, float]]]] = {}
    reports: dict[str, list[Any]] = {}
    bar = tqdm(total=len(methods) * len(specs), desc="lorsu eval", disable=not progress)
    for method in methods:
        work = copy.deepcopy(clip)
        curves[method], reports[method] = [], []
        for d in data:
            bar.set_postfix_str(f"{method}: {d.name}")
            reports[method].append(METHODS[method](work, d, **cfg.method_kwargs(method)))
            curves[method].append(scorer(work))
            bar.update(1)
        del work
    bar.close()
    return LorsuEvaluation(
        model_name=name, sessions=[s.name for s in specs], session_classes=[[c.name for c in s.classes] for s in specs],
        session_targets=[s.targets for s in specs], settings=_settings_dict(cfg, quick), before=before,
        curves=curves, reports=reports, seconds=time.perf_counter() - t0,
    )


def quick_evaluate(model: Any) -> LorsuEvaluation:
    """The protocol at its quick settings (`Settings.quick()`: 2 epochs, 3 test images per target class,
    18 control images; every method and ablation, the five sessions), without a progress bar."""
    return evaluate(model, quick=True, progress=False)


def _unpack(model: Any) -> tuple[Any, Any, str]:
    if isinstance(model, tuple) and len(model) == 2:
        return dual_encoder(model[0]).model, model[1], type(model[0]).__name__
    processor = getattr(model, "processor", None)
    if processor is None:
        raise InputError("pass a LoadedModel (egokit.load(...)) or a (CLIPModel, processor) pair")
    return dual_encoder(model).model, processor, str(getattr(model, "name", type(model).__name__))


def _settings_dict(cfg: Settings, quick: bool) -> dict[str, Any]:
    d = {k: v for k, v in vars(cfg).items()}
    d["lr"] = dict(cfg.lr)
    d["quick"] = bool(quick)
    return d


__all__ = ["ABLATIONS", "DEFAULT_MODEL", "MAIN_METHODS", "Settings", "ZeroShot", "evaluate", "quick_evaluate"]
