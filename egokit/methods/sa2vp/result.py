"""Results of SA²VP: per-patch prompt-change maps and the evaluation against the baselines.

Both build on `egokit.results.Result`: they show themselves in a notebook (`_repr_png_`), turn into JSON
(`to_dict`) and are saved as one ``.safetensors`` file: tensors (images, maps) plus, in the metadata, a
JSON document with everything else (`save` / `load`: atomic, versioned, no pickle; a damaged or foreign
file raises `MemoryFileError`). The evaluation is an `egokit.results.Evaluation`: `metrics()` is the flat
dict `egokit sa2vp eval --json` prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image

from egokit.results import Evaluation, Result

MAPS_KIND = "sa2vp_maps"
EVAL_KIND = "sa2vp_eval"
FILE_VERSION = 1


# ---------------------------------------------------------------------------------------------- maps


@dataclass(repr=False)
class PromptChangeMaps(Result):
    """How much SA²VP's prompt pathway changes each patch's features, per image.

    images:      (K, H, W, 3) uint8.
    change:      (K, depth, rows, cols): norm of the fusion term α·adapter(…) added to each base grid token
                 at each block (zero at base → prompt blocks, where the base pathway is not changed).
    labels, predictions: true and predicted class per image; `classes` their names; `task` the task name.
    """

    FILE_KIND: ClassVar[str] = MAPS_KIND
    FILE_VERSION: ClassVar[int] = FILE_VERSION

    images: np.ndarray
    change: torch.Tensor
    labels: list[int]
    predictions: list[int]
    classes: list[str]
    task: str = ""

    @property
    def grid(self) -> tuple[int, int]:
        return int(self.change.shape[-2]), int(self.change.shape[-1])

    def total(self, layer: int | None = None) -> torch.Tensor:
        """(K, rows, cols): the change summed over blocks, or at one block."""
        return self.change.sum(1) if layer is None else self.change[:, layer]

    def to_image(self, layer: int | None = None) -> Image.Image:
        """Each image with its change map over it (summed over blocks unless `layer` is given)."""
        from egokit.viz.heatmap import grid_boxes, overlay_heatmap
        from egokit.viz.scene import gallery, upscale

        rows, cols = self.grid
        tiles, titles = [], []
        maps = self.total(layer)
        for k in range(len(self.images)):
            big, _ = upscale(self.images[k], 256)
            boxes = grid_boxes(rows, cols, big.size)
            tiles.append(overlay_heatmap(big, maps[k].reshape(-1), boxes, alpha=0.6))
            verdict = "right" if self.labels[k] == self.predictions[k] else "wrong"
            titles.append(f"true: {self.classes[self.labels[k]]}, SA²VP: {self.classes[self.predictions[k]]} ({verdict})")
        return gallery(tiles, titles, cols=min(4, len(tiles)), tile=256)

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "classes": list(self.classes), "labels": list(self.labels),
                "predictions": list(self.predictions), "grid": list(self.grid),
                "change_total": self.total().tolist()}

    # -- file ----------------------------------------------------------------------------------------
    def _file_meta(self) -> dict[str, Any]:
        return {"task": self.task, "classes": list(self.classes), "labels": [int(v) for v in self.labels],
                "predictions": [int(v) for v in self.predictions]}

    def _file_tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        return {f"{prefix}images": torch.from_numpy(np.array(self.images, dtype=np.uint8, copy=True)),
                f"{prefix}change": self.change.float()}

    @classmethod
    def _from_file(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any], prefix: str = "") -> PromptChangeMaps:
        images, change = tensors[f"{prefix}images"].numpy(), tensors[f"{prefix}change"]
        if change.dim() != 4 or change.shape[0] != images.shape[0] or len(meta["labels"]) != images.shape[0]:
            raise ValueError("images, maps and labels disagree in number")
        return cls(images=images, change=change, labels=[int(v) for v in meta["labels"]],
                   predictions=[int(v) for v in meta["predictions"]], classes=[str(c) for c in meta["classes"]],
                   task=str(meta.get("task", "")))

    def __repr__(self) -> str:
        return f"PromptChangeMaps(task={self.task!r}, images={len(self.images)}, grid={self.grid})"


# ---------------------------------------------------------------------------------------------- evaluation


@dataclass
class MethodScore:
    """One method's test accuracy per task, their mean over the spatial tasks, its trainable parameter
    count (for the task with the most classes; `params_by_task` for each), and the wall-clock seconds
    spent training and testing it on every task."""

    acc: dict[str, float]
    acc_spatial_mean: float
    trainable_params: int
    seconds: float
    params_by_task: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"acc": dict(self.acc), "acc_spatial_mean": self.acc_spatial_mean,
                "trainable_params": int(self.trainable_params), "seconds": self.seconds,
                "params_by_task": {k: int(v) for k, v in self.params_by_task.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MethodScore:
        return cls(acc={k: float(v) for k, v in d["acc"].items()}, acc_spatial_mean=float(d["acc_spatial_mean"]),
                   trainable_params=int(d["trainable_params"]), seconds=float(d["seconds"]),
                   params_by_task={k: int(v) for k, v in d.get("params_by_task", {}).items()})


def _flat_value(value: Any) -> Any:
    """A settings value as a metric: scalars as they are, sequences as comma-separated text."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return value


@dataclass(repr=False)
class SA2VPEvalResult(Evaluation):
    """SA²VP against VPT-deep, VPT-shallow and a linear probe on ShapesWorld tasks (held-out test seed).

    methods:      name → `MethodScore` ("sa2vp", "vpt_deep", "vpt_shallow", "linear"; those that ran).
    ablations:    name → mean test accuracy over the spatial tasks ("global_attention", "no_interaction",
                  "one_direction", "no_aux_loss"); `ablation_acc` per task.
    chance:       task → accuracy of always answering the most frequent training class (on the test set).
    spatial_tasks, control_task: which tasks are which.
    settings:     what was run (epochs, sizes, learning rate, prompt rank, α, VPT length, ...).
    maps:         prompt-change maps of the trained SA²VP on a few test images of the first spatial task.
    """

    FILE_KIND: ClassVar[str] = EVAL_KIND
    FILE_VERSION: ClassVar[int] = FILE_VERSION
    FILE_WHAT: ClassVar[str | None] = "SA²VP evaluation"

    methods: dict[str, MethodScore]
    ablations: dict[str, float]
    ablation_acc: dict[str, dict[str, float]]
    chance: dict[str, float]
    spatial_tasks: list[str]
    control_task: str
    settings: dict[str, Any]
    model_name: str = ""
    seconds: float = 0.0
    maps: PromptChangeMaps | None = None

    # -- checks --------------------------------------------------------------------------------------
    def targets(self) -> dict[str, Any]:
        """The acceptance checks: margin over VPT-deep on the spatial mean, parameter ratio, control gap,
        and whether the local interaction beats the global one and none."""
        out: dict[str, Any] = {}
        sa, deep = self.methods.get("sa2vp"), self.methods.get("vpt_deep")
        if sa is not None and deep is not None:
            out["spatial_margin_over_vpt_deep"] = sa.acc_spatial_mean - deep.acc_spatial_mean
            out["param_ratio_to_vpt_deep"] = sa.trainable_params / max(1, deep.trainable_params)
            if self.control_task in sa.acc and self.control_task in deep.acc:
                out["control_gap_to_vpt_deep"] = sa.acc[self.control_task] - deep.acc[self.control_task]
        if sa is not None:
            for name in ("global_attention", "no_interaction"):
                if name in self.ablations:
                    out[f"local_beats_{name}"] = sa.acc_spatial_mean > self.ablations[name]
        return out

    def metrics(self) -> dict[str, Any]:
        """The flat summary `egokit sa2vp eval --json` prints:

        - `<method>.acc.<task>`, `<method>.acc_spatial_mean`, `<method>.trainable_params`, `<method>.seconds`
          for every method that ran;
        - `ablation.<name>.acc.<task>` and `ablation.<name>.acc_spatial_mean` for every ablation;
        - `chance.<task>`; the acceptance checks of `targets()` under their own names;
        - `model`, `seconds` (the whole run), `spatial_tasks`, `control_task` and `settings.<name>` (lists as
          comma-separated text).
        """
        out: dict[str, Any] = {"model": self.model_name, "seconds": self.seconds,
                               "spatial_tasks": ",".join(self.spatial_tasks), "control_task": self.control_task}
        for name, score in self.methods.items():
            out.update({f"{name}.acc.{task}": acc for task, acc in score.acc.items()})
            out[f"{name}.acc_spatial_mean"] = score.acc_spatial_mean
            out[f"{name}.trainable_params"] = int(score.trainable_params)
            out[f"{name}.seconds"] = score.seconds
        for name, mean in self.ablations.items():
            out.update({f"ablation.{name}.acc.{task}": acc for task, acc in self.ablation_acc.get(name, {}).items()})
            out[f"ablation.{name}.acc_spatial_mean"] = mean
        out.update({f"chance.{task}": value for task, value in self.chance.items()})
        out.update(self.targets())
        out.update({f"settings.{key}": _flat_value(value) for key, value in self.settings.items()})
        return out

    # -- serialisation -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "methods": {k: v.to_dict() for k, v in self.methods.items()},
            "ablations": dict(self.ablations),
            "ablation_acc": {k: dict(v) for k, v in self.ablation_acc.items()},
            "chance": dict(self.chance),
            "spatial_tasks": list(self.spatial_tasks),
            "control_task": self.control_task,
            "targets": self.targets(),
            "settings": dict(self.settings),
            "model": self.model_name,
            "seconds": self.seconds,
        }

    def _file_meta(self) -> dict[str, Any]:
        doc = self.to_dict()
        if self.maps is not None:
            doc["maps"] = self.maps._file_meta()
        return {"result": doc}

    def _file_tensors(self) -> dict[str, torch.Tensor]:
        return self.maps._file_tensors("maps.") if self.maps is not None else {}

    @classmethod
    def _from_file(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> SA2VPEvalResult:
        d = meta["result"]
        try:
            maps = PromptChangeMaps._from_file(tensors, d["maps"], "maps.") if "maps" in d else None
            return cls(methods={k: MethodScore.from_dict(v) for k, v in d["methods"].items()},
                       ablations={k: float(v) for k, v in d["ablations"].items()},
                       ablation_acc={k: {t: float(a) for t, a in v.items()} for k, v in d["ablation_acc"].items()},
                       chance={k: float(v) for k, v in d["chance"].items()}, spatial_tasks=list(d["spatial_tasks"]),
                       control_task=str(d["control_task"]), settings=dict(d["settings"]),
                       model_name=str(d.get("model", "")), seconds=float(d.get("seconds", 0.0)), maps=maps)
        except AttributeError as e:  # a part of the document has the wrong type (e.g. a list for a mapping)
            raise TypeError(str(e)) from None

    # -- display -------------------------------------------------------------------------------------
    def table(self) -> str:
        """A plain-text table: accuracy per task and method, spatial mean, parameters, seconds."""
        tasks = list(next(iter(self.methods.values())).acc) if self.methods else []
        head = f"{'method':<14}" + "".join(f"{t:>9}" for t in tasks) + f"{'spatial':>9}{'params':>9}{'sec':>7}"
        lines = [head]
        for name, m in self.methods.items():
            lines.append(f"{name:<14}" + "".join(f"{m.acc[t]:>9.3f}" for t in tasks)
                         + f"{m.acc_spatial_mean:>9.3f}{m.trainable_params:>9d}{m.seconds:>7.0f}")
        lines.append(f"{'chance':<14}" + "".join(f"{self.chance.get(t, float('nan')):>9.3f}" for t in tasks))
        if self.ablations:
            lines.append("ablations (spatial mean): " + ", ".join(f"{k} {v:.3f}" for k, v in self.ablations.items()))
        return "\n".join(lines)

    def to_image(self) -> Image.Image:
        from egokit.methods.sa2vp.render import eval_picture

        return eval_picture(self)

    def __repr__(self) -> str:
        return f"SA2VPEvalResult(model={self.model_name!r})\n{self.table()}"


__all__ = ["EVAL_KIND", "FILE_VERSION", "MAPS_KIND", "MethodScore", "PromptChangeMaps", "SA2VPEvalResult"]
