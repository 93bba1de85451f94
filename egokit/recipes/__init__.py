"""Recipes of the micro zoo: how the shipped checkpoints in `egokit/zoo/` are trained and evaluated.

The top of the stack (they may use the methods); nothing below imports them.
`python -m egokit.recipes.train clip|vlm|pixel` trains, `egokit zoo eval --json` evaluates.
"""
