"""Every module hook the kit places outside the attention function, in one class with explicit release.

    with Hooks() as hooks:
        hooks.record_input(model.get_output_embeddings(), "features")     # what the vocabulary projection reads
        hooks.leaf_input(blocks[2], "h")                                   # gradients stop at block 2's input
        model(**inputs)
    hooks["features"], hooks["h"]

- `record_input(module, key, keep=...)`: store the first positional input (or `hidden_states`) of each
  call of `module` under `key`; `keep` decides whether a later call replaces it (e.g. keep the prompt's
  pass, not a one-token decoding step).
- `leaf_input(module, key=None)`: replace that input by a detached copy that requires grad — a fresh leaf
  of the autograd graph — so a backward pass stops there even when every parameter is frozen; with a
  key, the leaf is stored so its gradient can be read after `backward()`.

Handles are removed on exit, also when the block raises; `release()` does the same by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

Keep = Callable[[torch.Tensor | None, torch.Tensor], bool]


def _first_input(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


def _with_first_input(args: tuple[Any, ...], kwargs: dict[str, Any], value: torch.Tensor) -> Any:
    if args:
        return (value, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": value}


class Hooks:
    """A set of forward pre-hooks that records or replaces module inputs; see the module docstring."""

    def __init__(self) -> None:
        self.values: dict[str, torch.Tensor] = {}
        self._handles: list[Any] = []

    def record_input(self, module: nn.Module, key: str, keep: Keep | None = None) -> Hooks:
        """Store `module`'s first input under `key` on each call (`keep(old, new)` False: keep the old one)."""

        def pre(mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            value = _first_input(args, kwargs)
            if keep is None or keep(self.values.get(key), value):
                self.values[key] = value

        self._handles.append(module.register_forward_pre_hook(pre, with_kwargs=True))
        return self

    def leaf_input(self, module: nn.Module, key: str | None = None) -> Hooks:
        """Make `module`'s first input a fresh leaf that requires grad (stored under `key` when given)."""

        def pre(mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            leaf = _first_input(args, kwargs).detach().requires_grad_(True)
            if key is not None:
                self.values[key] = leaf
            return _with_first_input(args, kwargs, leaf)

        self._handles.append(module.register_forward_pre_hook(pre, with_kwargs=True))
        return self

    def __getitem__(self, key: str) -> torch.Tensor:
        return self.values[key]

    def get(self, key: str) -> torch.Tensor | None:
        return self.values.get(key)

    def release(self) -> None:
        """Remove every hook (idempotent)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> Hooks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


__all__ = ["Hooks"]
