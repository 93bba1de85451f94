"""The closed vocabulary of ShapesWorld: attribute values, name tokens, and every word it can write.

Everything ShapesWorld produces as text (captions, questions, answers, foils, personal captions and the
prompts the micro VLM is trained on) uses only the words in `WORDS`. The micro VLM's word-level
tokenizer is built from that list, so its order is part of the contract: saved models depend on it.
Nothing is ever removed or reordered; a later version may only append new words at the end of `WORDS`.

Words are lower-case; punctuation marks (`.`, `,`, `?`) are separate tokens. Multi-word phrases
("left of", "top left", "red and blue") are written as separate words.
"""

from __future__ import annotations

# ---------------------------------------------------------------------------------------------- attributes

#: Object shapes, chosen to stay distinct at 64×64 with extents of 12–28 px.
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "hexagon", "cross")

#: Plural of each shape, used by counting questions ("how many circles are there ?").
SHAPE_PLURALS: dict[str, str] = {
    "circle": "circles",
    "square": "squares",
    "triangle": "triangles",
    "diamond": "diamonds",
    "hexagon": "hexagons",
    "cross": "crosses",
}

#: Object colours and their RGB values: saturated and far apart, never grey (the background is grey).
COLOR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (40, 170, 60),
    "blue": (40, 90, 230),
    "yellow": (240, 220, 40),
    "purple": (130, 50, 180),
    "orange": (245, 140, 20),
    "pink": (250, 125, 205),
}
COLORS: tuple[str, ...] = tuple(COLOR_RGB)

#: Surface patterns. Stripes and dots are drawn in a dark shade of the object's colour.
PATTERNS: tuple[str, ...] = ("solid", "striped", "dotted")

#: Size classes (the pixel ranges are in `egokit.data.shapesworld`; they scale with the image size).
SIZES: tuple[str, ...] = ("small", "large")

#: Spatial relations between two objects, compared by their centres. "left"/"right" are followed by
#: "of" in captions ("left of"); a foil swaps left↔right or above↔below.
RELATIONS: tuple[str, ...] = ("left", "right", "above", "below")
RELATION_OPPOSITE: dict[str, str] = {"left": "right", "right": "left", "above": "below", "below": "above"}

#: Distinctive marks of personal concepts: small symbols drawn at the object's centre.
MARKS: tuple[str, ...] = ("dot", "ring", "x", "dash", "bar", "corner")

#: Colours of marks (never used for objects, so a mark always contrasts with both halves).
MARK_COLOR_RGB: dict[str, tuple[int, int, int]] = {"black": (15, 15, 15), "white": (245, 245, 245)}
MARK_COLORS: tuple[str, ...] = tuple(MARK_COLOR_RGB)

#: How a two-tone concept is split: main colour on the left (top) half, second colour on the other.
HALVES: tuple[str, ...] = ("left-right", "top-bottom")

#: Coarse positions in a 3×3 grid, the answers of "where is ..." questions.
POSITIONS: tuple[str, ...] = (
    "top left", "top", "top right", "left", "center", "right", "bottom left", "bottom", "bottom right",
)

#: Percent values used to answer coverage questions ("what percentage of the image does it cover ?").
NUMBERS: tuple[str, ...] = tuple(str(i) for i in range(101))

# ---------------------------------------------------------------------------------------------- names

#: Reserved name tokens of personal concepts: pseudo-words, none of them an ordinary vocabulary word.
NAME_POOL: tuple[str, ...] = tuple(
    """
    bix dax wug fep tov zib mip kern blick gazzer toma fendle lorp zup nev quib rask tazz vop yeb
    jix gorp hib klep lunt mab nof pim quor riv sek tep vix wob yad zof bram clid drup fiv
    glon hesk jub krin lemp mork plav quen roz snib trel ubb vorn wisk yop zant bloff crev dwim fusk
    gromp hox jeb kib loz mun nupp pex quiv rell sorn tib vab wux yib zel brin chup dorv fimp
    gax heb jor kov lish mep nold prav
    """.split()
)

# ---------------------------------------------------------------------------------------------- words

#: Punctuation tokens used in captions, questions and prompts.
PUNCTUATION: tuple[str, ...] = (".", ",", "?")

#: Function and prompt words: captions, questions, answers and the prompts of the VLM tasks.
FUNCTION_WORDS: tuple[str, ...] = tuple(
    """
    a an the of and with is are there in this it does what how many where which describe image photo
    depicts subject object objects percentage cover color shape pattern size yes no left right above below
    top bottom center empty video frame frames name named called my
    """.split()
)

_ATTRIBUTE_WORDS: tuple[str, ...] = (
    *SHAPES, *SHAPE_PLURALS.values(), *COLORS, *PATTERNS, *SIZES, *RELATIONS, *MARKS, *MARK_COLORS,
)


def _unique(words: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(words))


#: Every word ShapesWorld can write, name tokens last. Order is stable (tokenizer ids depend on it).
BASE_WORDS: tuple[str, ...] = _unique((*PUNCTUATION, *FUNCTION_WORDS, *_ATTRIBUTE_WORDS, *NUMBERS))
WORDS: tuple[str, ...] = _unique((*BASE_WORDS, *NAME_POOL))

#: Which attribute a value belongs to ("pink" → "color"), for holdout specs and `require=` arguments.
ATTRIBUTE_OF_VALUE: dict[str, str] = {
    **{v: "shape" for v in SHAPES},
    **{v: "color" for v in COLORS},
    **{v: "pattern" for v in PATTERNS},
    **{v: "size" for v in SIZES},
}

__all__ = [
    "ATTRIBUTE_OF_VALUE",
    "BASE_WORDS",
    "COLORS",
    "COLOR_RGB",
    "FUNCTION_WORDS",
    "HALVES",
    "MARKS",
    "MARK_COLORS",
    "MARK_COLOR_RGB",
    "NAME_POOL",
    "NUMBERS",
    "PATTERNS",
    "POSITIONS",
    "PUNCTUATION",
    "RELATIONS",
    "RELATION_OPPOSITE",
    "SHAPES",
    "SHAPE_PLURALS",
    "SIZES",
    "WORDS",
]
