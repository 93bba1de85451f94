"""`LorsuEvaluation`: what `egokit.methods.lorsu.evaluate` returns — accuracies before and after every
session for every method, each session's report (cost, chosen heads and fc1 weights) — its metrics, and how
it is saved and shown.

`metrics()` is flat (what `egokit lorsu eval --json` prints): "model", "methods.<name>.<number>" and
"ablations.<name>.<number>" (ti, cc, target, control, trainable_params, optimizer_bytes, seconds),
"before.target", "before.control", "before.per_session.<session>", "before.per_task.<task>", "sessions"
(how many), "settings.<name>" (the learning rates as "settings.lr.<method>") and "seconds";
`summary()` holds the same numbers nested.

Files (an `egokit.results.Result`): one ``.safetensors`` file; the chosen-fc1 masks are its tensors (uint8)
and everything else is a JSON document in its metadata. Written atomically (temp file + rename), read back
without pickle; a damaged or foreign file raises `MemoryFileError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from PIL import Image

from egokit.methods.lorsu.accuracies import Accuracies, control_accuracy, target_accuracy
from egokit.methods.lorsu.session import SessionReport
from egokit.results import Evaluation, flat_metrics

FILE_KIND = "egokit.lorsu_evaluation"
FILE_VERSION = 1
MAIN = ("lorsu", "full", "lora", "spu", "layernorm")


@dataclass(repr=False)
class LorsuEvaluation(Evaluation):
    """Accuracies before and after each session for each method, and each session's report.

    before:   zero-shot accuracies of the untouched model ({"target": {session: acc}, "control": {task: acc}}).
    curves:   per method, the accuracies after each session (same layout as `before`).
    reports:  per method, one `SessionReport` per session.
    """

    model_name: str
    sessions: list[str]
    session_classes: list[list[str]]
    session_targets: list[list[int]]
    settings: dict[str, Any]
    before: Accuracies
    curves: dict[str, list[Accuracies]]
    reports: dict[str, list[SessionReport]] = field(default_factory=dict)
    seconds: float = 0.0

    FILE_KIND: ClassVar[str] = FILE_KIND
    FILE_VERSION: ClassVar[int] = FILE_VERSION
    FILE_WHAT: ClassVar[str | None] = "LoRSU evaluation"

    # -- metrics -------------------------------------------------------------------------------------
    @property
    def methods(self) -> list[str]:
        return list(self.curves)

    def ti(self, method: str) -> float:
        """Target improvement: target accuracy after the last session minus before the first."""
        return target_accuracy(self.curves[method][-1]) - target_accuracy(self.before)

    def cc(self, method: str) -> float:
        """Control change: control accuracy after the last session minus before (negative = forgetting)."""
        return control_accuracy(self.curves[method][-1]) - control_accuracy(self.before)

    def method_metrics(self, method: str) -> dict[str, Any]:
        reps = self.reports.get(method, [])
        return {
            "ti": self.ti(method),
            "cc": self.cc(method),
            "target": target_accuracy(self.curves[method][-1]),
            "control": control_accuracy(self.curves[method][-1]),
            "trainable_params": max((r.trainable_params for r in reps), default=0),
            "optimizer_bytes": max((r.optimizer_bytes for r in reps), default=0),
            "seconds": float(sum(r.seconds for r in reps)),
        }

    def summary(self) -> dict[str, Any]:
        """The numbers, nested: `methods.<name>` and `ablations.<name>` with TI, CC, target and control
        accuracy after the last session, trainable parameters (largest session), optimizer bytes (largest
        session) and seconds (all sessions); the accuracies before; sessions; settings; seconds."""
        per = {m: self.method_metrics(m) for m in self.methods}
        return {
            "model": self.model_name,
            "methods": {m: v for m, v in per.items() if m in MAIN},
            "ablations": {m: v for m, v in per.items() if m not in MAIN},
            "before": {"target": target_accuracy(self.before), "control": control_accuracy(self.before),
                       "per_session": dict(self.before["target"]), "per_task": dict(self.before["control"])},
            "sessions": list(self.sessions),
            "settings": dict(self.settings),
            "seconds": self.seconds,
        }

    def before_metrics(self) -> dict[str, float]:
        """Target and control accuracy of the untouched model: {"target": ..., "control": ...}."""
        return {"target": target_accuracy(self.before), "control": control_accuracy(self.before)}

    def metrics(self) -> dict[str, Any]:
        """What `egokit lorsu eval --json` prints: `summary()` flattened to dotted keys
        ("methods.lorsu.ti", "before.target", "settings.lr.lorsu", ...), with "sessions" their number."""
        tree = self.summary()
        tree["sessions"] = len(self.sessions)
        return flat_metrics(tree)

    # -- display -------------------------------------------------------------------------------------
    def to_image(self) -> Image.Image:
        """TI-vs-CC scatter of every method, LoRSU's chosen heads and its chosen fc1 weights per session."""
        from egokit.methods.lorsu.render import summary_picture

        return summary_picture(self)

    def scatter_image(self) -> Image.Image:
        from egokit.methods.lorsu.render import scatter_picture

        return scatter_picture(self)

    def heads_image(self, method: str = "lorsu") -> Image.Image:
        from egokit.methods.lorsu.render import heads_picture

        return heads_picture(self, method)

    def fc1_image(self, method: str = "lorsu") -> Image.Image:
        from egokit.methods.lorsu.render import fc1_picture

        return fc1_picture(self, method)

    def curves_image(self) -> Image.Image:
        from egokit.methods.lorsu.render import curves_picture

        return curves_picture(self)

    def table(self) -> str:
        """A plain-text table of the main numbers."""
        rows = [f"{'method':<14}{'TI':>8}{'CC':>8}{'trainable':>11}{'opt bytes':>11}{'seconds':>9}"]
        for m in self.methods:
            v = self.method_metrics(m)
            rows.append(f"{m:<14}{v['ti']:>+8.3f}{v['cc']:>+8.3f}{v['trainable_params']:>11d}"
                        f"{v['optimizer_bytes']:>11d}{v['seconds']:>9.1f}")
        return "\n".join(rows)

    def __repr__(self) -> str:
        return (f"LorsuEvaluation(model={self.model_name!r}, sessions={len(self.sessions)}, "
                f"shots={self.settings.get('shots')}, seed={self.settings.get('seed')}, methods={self.methods})")

    # -- serialisation -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """`summary()` plus the per-session classes, accuracies and reports (no masks)."""
        d = self.summary()
        d["session_classes"] = [list(c) for c in self.session_classes]
        d["session_targets"] = [list(t) for t in self.session_targets]
        d["accuracies"] = {"before": self.before, "after": self.curves}
        d["reports"] = {m: [r.to_dict() for r in reps] for m, reps in self.reports.items()}
        return d

    def _file_tensors(self) -> dict[str, torch.Tensor]:
        """The chosen-fc1 masks, as uint8, one tensor per method and session ("<method>.<i>.fc1_masks")."""
        tensors = {}
        for m, reps in self.reports.items():
            for i, r in enumerate(reps):
                if r.fc1_masks is not None:
                    tensors[f"{m}.{i}.fc1_masks"] = r.fc1_masks.to(torch.uint8)
        return tensors

    def _file_meta(self) -> dict[str, Any]:
        return {"model_name": self.model_name,
                "sessions": self.sessions, "session_classes": self.session_classes,
                "session_targets": self.session_targets, "settings": self.settings, "before": self.before,
                "curves": self.curves, "seconds": self.seconds,
                "reports": {m: [r.to_dict() for r in reps] for m, reps in self.reports.items()}}

    @classmethod
    def _from_file(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> LorsuEvaluation:
        reports = {m: [SessionReport.from_dict(r, tensors.get(f"{m}.{i}.fc1_masks")) for i, r in enumerate(reps)]
                   for m, reps in meta["reports"].items()}
        curves = {m: list(v) for m, v in meta["curves"].items()}
        if any(len(v) != len(meta["sessions"]) for v in curves.values()):
            raise ValueError("one accuracy record per session expected")
        return cls(model_name=str(meta["model_name"]), sessions=[str(s) for s in meta["sessions"]],
                   session_classes=[list(c) for c in meta["session_classes"]],
                   session_targets=[[int(t) for t in ts] for ts in meta["session_targets"]],
                   settings=dict(meta["settings"]), before=meta["before"], curves=curves, reports=reports,
                   seconds=float(meta["seconds"]))


__all__ = ["FILE_KIND", "FILE_VERSION", "LorsuEvaluation", "control_accuracy", "target_accuracy"]
