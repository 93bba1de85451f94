"""A 2,000-word caption, expression or question, in Python and on the command line, and a decompression-bomb
image on the command line: one clear error (the length and the limit; the image refused), never a traceback.

Every path reaches one length check: CLIP's text encoder for `misalign.score`, the language model's context
length for `pixel.refer`, `explore` and `ego.ask` (the last through the one soft-token context builder).
"""

from __future__ import annotations

import re

import pytest
from PIL import Image

import egokit
from egokit import cli
from egokit.errors import ImageError, InputError
from tests.data.test_images import png_with_header  # the loader's own tests' bomb

LONG = " ".join(["red", "circle"] * 1000)  # 2,000 words the micro models know
WORDS = len(LONG.split())


@pytest.fixture(scope="module")
def scene():
    from egokit.data.shapesworld import ShapesWorld

    return ShapesWorld(seed=0, size=64, patch=8, split="test").scene(0)


@pytest.fixture(scope="module")
def image(tmp_path_factory, scene) -> str:
    path = tmp_path_factory.mktemp("img") / "scene.png"
    Image.fromarray(scene.image).save(path)
    return str(path)


@pytest.fixture(scope="module")
def vlm():
    return egokit.load("micro-vlm", device="cpu")


@pytest.fixture(scope="module")
def bank(tmp_path_factory, vlm, scene) -> str:
    memories = egokit.ego.remember(vlm, scene, "bix", budget=4, keywords=["red", "circle"])
    path = tmp_path_factory.mktemp("bank") / "bank.egomem"
    memories.save(path)
    return str(path)


def _length_and_limit(message: str, limit: int) -> None:
    """The message names the text's length (at least its words) and the limit."""
    numbers = [int(n) for n in re.findall(r"\d+", message)]
    assert limit in numbers, message
    assert any(n >= WORDS for n in numbers), message
    assert "\n" not in message.strip()


# ------------------------------------------------------------------------------------------- in Python


def test_long_caption_in_misalign_score(scene):
    clip = egokit.load("micro-clip", device="cpu")
    with pytest.raises(InputError, match="takes at most 64") as info:
        egokit.misalign.score(clip, scene.image, LONG)
    _length_and_limit(str(info.value), 64)


def test_long_expression_in_pixel_refer(vlm, scene):
    with pytest.raises(InputError, match="context length") as info:
        egokit.pixel.refer(vlm, image=scene.image, expression=LONG)
    _length_and_limit(str(info.value), 1024)


def test_long_question_in_explore(vlm, scene):
    with pytest.raises(InputError, match="context length") as info:
        egokit.explore.explore(vlm, scene.image, LONG, max_new_tokens=2)
    _length_and_limit(str(info.value), 1024)


def test_long_question_in_ego_ask(vlm, scene, bank):
    """Before, `ego.ask` ran a 2,000-word question through a model that reads 1,024 positions and answered."""
    with pytest.raises(InputError, match="context length") as info:
        egokit.ego.ask(vlm, egokit.ego.MemoryBank.load(bank), scene.image, LONG, max_new_tokens=2)
    _length_and_limit(str(info.value), 1024)


def test_a_question_that_fits_still_works(vlm, scene, bank):
    answer = egokit.ego.ask(vlm, egokit.ego.MemoryBank.load(bank), scene.image, "is bix in this image ?",
                            max_new_tokens=1)
    assert answer.context_tokens <= 1024


# ------------------------------------------------------------------------------------------- on the command line

LONG_COMMANDS = {
    "misalign score": (["misalign", "score", "{img}", LONG, "--device", "cpu"], 64),
    "pixel refer": (["pixel", "refer", "{img}", LONG, "--device", "cpu"], 1024),
    "explore": (["explore", "{img}", LONG, "--device", "cpu", "--max-new-tokens", "2"], 1024),
    "ego ask": (["ego", "ask", "{img}", LONG, "--bank", "{bank}", "--device", "cpu", "--max-new-tokens", "2"], 1024),
}


def _one_error_line(err: str) -> str:
    last = err.strip().splitlines()[-1]
    assert last.startswith("egokit: error: "), err
    assert "unexpected error" not in err and "Traceback" not in err
    return last


@pytest.mark.parametrize("name", list(LONG_COMMANDS))
def test_long_text_on_the_command_line_is_one_line(name, image, bank, capsys):
    argv, limit = LONG_COMMANDS[name]
    code = cli.main([a.format(img=image, bank=bank) if a != LONG else a for a in argv])
    assert code == 2
    _length_and_limit(_one_error_line(capsys.readouterr().err), limit)


# ------------------------------------------------------------------------------------------- decompression bombs


BOMB_COMMANDS = {
    "misalign score": ["misalign", "score", "{img}", "a red circle", "--device", "cpu"],
    "pixel refer": ["pixel", "refer", "{img}", "the red circle", "--device", "cpu"],
    "pixel localize": ["pixel", "localize", "{img}", "--device", "cpu"],
    "explore": ["explore", "{img}", "what is this ?", "--device", "cpu"],
    "ego remember": ["ego", "remember", "{img}", "bix", "--bank", "{tmp}/new.egomem", "--device", "cpu"],
    "ego ask": ["ego", "ask", "{img}", "is bix in this image ?", "--bank", "{bank}", "--device", "cpu"],
}


@pytest.mark.parametrize("side", [8000, 100_000], ids=["over-the-kit-limit", "over-pil-bomb-limit"])
@pytest.mark.parametrize("name", list(BOMB_COMMANDS))
def test_decompression_bomb_on_the_command_line_is_one_line(name, side, bank, tmp_path, capsys):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_with_header(side, side))
    with pytest.raises(ImageError):
        egokit.load_image(bomb)  # what the command meets
    argv = [a.format(img=bomb, bank=bank, tmp=tmp_path) for a in BOMB_COMMANDS[name]]
    assert cli.main(argv) == 2
    last = _one_error_line(capsys.readouterr().err)
    assert "bomb.png" in last or "pixels" in last, last
    assert not (tmp_path / "new.egomem").exists()

