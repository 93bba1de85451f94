"""Every picture draws its text with one font that has every glyph the kit writes (no tofu boxes)."""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import pytest
from fontTools.ttLib import TTFont

from egokit.viz import fonts

ROOT = Path(__file__).resolve().parents[2]
METHOD_NAMES = ["Ego", "CLIP4DM", "LoRSU", "PixelLLM", "SA²VP", "VPT-deep", "LoRA", "SPU"]
SYMBOLS = "²×→←≥≤±·…–—✓✗°"


def _cmap() -> dict[int, str]:
    return TTFont(str(fonts.font_path())).getBestCmap()


def test_the_font_is_dejavu_sans_from_matplotlib():
    assert fonts.font_path().is_file()
    face = fonts.font(14)
    assert face.getname()[0] == "DejaVu Sans"


@pytest.mark.parametrize("text", [*METHOD_NAMES, SYMBOLS])
def test_the_font_has_every_glyph_of_the_method_names(text):
    cmap = _cmap()
    assert [c for c in text if c != " " and ord(c) not in cmap] == []


def test_every_non_ascii_letter_in_the_kit_strings_has_a_glyph():
    """String constants in the kit's code are what pictures draw (titles, labels, legends)."""
    cmap = _cmap()
    missing = {}
    for path in [*(ROOT / "egokit").rglob("*.py"), *(ROOT / "widgets").rglob("*.py")]:
        tree = ast.parse(path.read_text())
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef)) and n.body
                      and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                for c in node.value:
                    if ord(c) > 127 and c.isprintable() and ord(c) not in cmap:
                        missing.setdefault(c, path.relative_to(ROOT).as_posix())
    # Box-drawing and block characters are terminal output (progress bars), never drawn in a picture.
    missing = {c: p for c, p in missing.items() if not 0x2500 <= ord(c) <= 0x259F}
    assert missing == {}


def test_pil_pictures_draw_superscript_two_as_a_glyph():
    face = fonts.font(20)
    # A missing glyph draws the same box for every character; "²" must differ from a character the
    # font lacks (a private-use code point) and from "2".
    masks = {c: bytes(face.getmask(c)) for c in ["²", "2", "\ue000"]}
    assert masks["²"] != masks["\ue000"] and masks["²"] != masks["2"]


def test_matplotlib_draws_the_method_names_without_missing_glyphs():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3, 1))
    fig.text(0, 0.5, " ".join(METHOD_NAMES) + " " + SYMBOLS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns "Glyph ... missing from font(s)"
        fig.canvas.draw()
