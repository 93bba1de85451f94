"""Numeric options and `--keywords` are checked at parse time: a wrong value is one clear line and exit
code 2 before any model is loaded or any work is done (issue 19, items 3.5 and 3.9)."""

from __future__ import annotations

import argparse

import pytest

from egokit import argtypes
from egokit.cli import build_parser, main
from egokit.commands import options
from egokit.recipes import eval as recipe_eval
from egokit.recipes import train as recipe_train

# (command line without the bad option, the option, bad values)
BAD = [
    (["ego", "eval"], "--concepts", ["0", "-1", "2.5", "x"]),
    (["ego", "eval"], "--budget", ["0", "-1", "0.0", "1.5", "5.0", "nan", "inf", "-0.2", "x", ""]),
    (["ego", "eval"], "--threads", ["-1", "1.5"]),
    (["ego", "eval"], "--seed", ["-1", str(options.MAX_SEED + 1), "0.5"]),
    (["ego", "remember", "a.png", "name", "--bank", "b.bank"], "--budget", ["0", "-3", "2.0"]),
    (["ego", "remember", "a.png", "name", "--bank", "b.bank"], "--keywords", ["", "   ", "\t\n"]),
    (["ego", "ask", "a.png", "q", "--bank", "b.bank"], "--max-new-tokens", ["0", "-5"]),
    (["misalign", "score", "a.png", "a caption"], "--layers", ["0", "-2"]),
    (["misalign", "score", "a.png", "a caption"], "--eps", ["nan", "inf", "x"]),
    (["misalign", "eval"], "--n", ["0", "-1"]),
    (["misalign", "eval"], "--layers", ["0"]),
    (["misalign", "eval"], "--eps", ["-inf"]),
    (["misalign", "eval"], "--threads", ["-2"]),
    (["lorsu", "eval"], "--shots", ["0", "-1"]),
    (["lorsu", "eval"], "--seed", ["-1"]),
    (["pixel", "eval"], "--n", ["0", "-3"]),
    (["pixel", "eval"], "--n-refer", ["0"]),
    (["pixel", "eval"], "--threads", ["-1"]),
    (["sa2vp", "eval"], "--epochs", ["0", "-1"]),
    (["sa2vp", "eval"], "--seed", ["-7"]),
    (["explore", "a.png", "a prompt"], "--max-new-tokens", ["0", "-1"]),
    (["bench", "capture"], "--repeats", ["0"]),
    (["bench", "capture"], "--layers", ["0"]),
    (["bench", "capture"], "--visual-tokens", ["0", "-1"]),
    (["bench", "capture"], "--text-tokens", ["0", "9"]),
    (["bench", "capture"], "--seed", ["-1"]),
    (["data", "sample", "--out", "folder"], "--seed", ["-1"]),
    (["data", "sample", "--out", "folder"], "--n", ["0", "-1", "1.5", "x", "", "100001"]),
    (["data", "sample", "--out", "folder"], "--size", ["0", "-1", "63", "40", "1032", "64.0", "x"]),
    (["zoo", "train", "clip"], "--steps", ["0", "-1", "2.5", "x"]),
    (["zoo", "train", "clip"], "--batch", ["0", "-4", "x"]),
    (["zoo", "train", "clip"], "--seed", ["-1", str(options.MAX_SEED + 1), "x"]),
    (["zoo", "train", "clip"], "--threads", ["-1", "x"]),
    (["zoo", "train", "clip"], "--foil-steps", ["-1", "x"]),
    (["zoo", "train", "clip"], "--foil-lr", ["0", "-3e-4", "nan", "inf", "x"]),
    (["zoo", "train", "clip"], "--foil-vision-from", ["-1", "x"]),
    (["tour"], "--seed", ["-1"]),
    (["zoo", "eval"], "--n", ["0", "1", "3", "-1"]),
    (["zoo", "eval"], "--seed", ["-1"]),
]

CASES = [pytest.param(head, opt, v, id=f"{' '.join(head[:2])} {opt}={v!r}") for head, opt, values in BAD for v in values]


def _no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any model load or training fail loudly: a refused option must stop before it."""
    import egokit

    def refuse(*_a: object, **_k: object) -> None:
        raise AssertionError("work was started although an option was out of range")

    monkeypatch.setattr(egokit, "load", refuse)
    monkeypatch.setattr(recipe_train, "run", refuse)


@pytest.mark.parametrize(("head", "opt", "value"), CASES)
def test_bad_number_is_one_line_and_exit_2(head: list[str], opt: str, value: str, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    _no_work(monkeypatch)
    with pytest.raises(SystemExit) as exc:
        main([*head, f"{opt}={value}"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("egokit")]
    message = lines[-1]
    assert message.startswith("egokit ") and ": error: argument " + opt in message, err
    assert repr(value) in message, err  # says what was given ...
    assert "must be" in message or "needs" in message or "expected" in message, err  # ... and what is wanted
    assert "Traceback" not in err


GOOD = [
    (["ego", "eval", "--concepts", "1", "--budget", "13", "--threads", "0", "--seed", "0"],
     {"concepts": 1, "budget": 13, "threads": 0, "seed": 0}),
    (["ego", "eval", "--budget", "0.2"], {"budget": 0.2}),
    (["ego", "eval", "--budget", "1"], {"budget": 1}),  # a count of one token
    (["ego", "eval", "--budget", "1.0"], {"budget": 1.0}),  # every token
    (["ego", "eval", "--seed", str(options.MAX_SEED)], {"seed": options.MAX_SEED}),
    (["ego", "remember", "a.png", "n", "--bank", "b", "--keywords", " red  circle "], {"keywords": ["red", "circle"]}),
    (["ego", "remember", "a.png", "n", "--bank", "b"], {"keywords": None, "budget": 0.2}),
    (["ego", "ask", "a.png", "q", "--bank", "b", "--max-new-tokens", "1"], {"max_new_tokens": 1}),
    (["misalign", "score", "a.png", "c", "--eps=-7.35e-4", "--layers", "2"], {"eps": -7.35e-4, "layers": 2}),
    (["misalign", "eval", "--eps", "-0.0007"], {"eps": -0.0007}),
    (["misalign", "score", "a.png", "c", "--eps", "0"], {"eps": 0.0}),
    (["misalign", "eval"], {"n": 200, "eps": None, "layers": None, "threads": None}),
    (["pixel", "eval", "--n", "1", "--n-refer", "1"], {"n": 1, "n_refer": 1, "threads": 2}),
    (["sa2vp", "eval", "--epochs", "1"], {"epochs": 1}),
    (["lorsu", "eval", "--shots", "1"], {"shots": 1, "seed": 1, "threads": 1}),
    (["explore", "a.png", "p", "--max-new-tokens", "1"], {"max_new_tokens": 1}),
    (["bench", "capture", "--text-tokens", "10", "--visual-tokens", "1"], {"text_tokens": 10, "visual_tokens": 1}),
    (["data", "sample", "--out", "f", "--size", "48", "--n", "1"], {"size": 48, "n": 1}),
    (["zoo", "eval", "--n", "4"], {"n": 4}),
    (["zoo", "train", "clip", "--steps", "1", "--batch", "2", "--seed", "7", "--threads", "0"],
     {"steps": 1, "batch": 2, "seed": 7, "threads": 0}),
    (["zoo", "train", "clip", "--foil-steps", "0", "--foil-lr", "3e-4", "--foil-vision-from", "0"],
     {"foil_steps": 0, "foil_lr": 3e-4, "foil_vision_from": 0}),
    (["zoo", "train", "clip"], {"steps": None, "batch": None, "seed": 0, "threads": 2, "foil_lr": None}),
    (["zoo", "eval"], {"n": None, "seed": 0}),
    (["tour", "--seed", "3"], {"seed": 3}),
]


@pytest.mark.parametrize(("argv", "expected"), GOOD, ids=[" ".join(a) for a, _ in GOOD])
def test_good_numbers_parse_to_their_values(argv: list[str], expected: dict[str, object]) -> None:
    args = build_parser().parse_args(argv)
    for name, value in expected.items():
        got = getattr(args, name)
        assert got == value and type(got) is type(value), (name, got)


def test_defaults_unchanged() -> None:
    """The option types change no default (the numbers every command reproduces)."""
    p = build_parser()
    assert p.parse_args(["ego", "eval"]).budget == 0.2
    assert p.parse_args(["ego", "eval"]).concepts == 16
    assert p.parse_args(["bench", "capture"]).text_tokens == 60
    assert p.parse_args(["data", "sample", "--out", "f"]).size == 64


def test_empty_and_blank_keywords_behave_the_same(capsys: pytest.CaptureFixture[str]) -> None:
    """`--keywords ""` and `--keywords "   "` are both refused with the same hint (before, the first was
    silently ignored and the second failed after the model was loaded)."""
    messages = []
    for value in ("", "   "):
        with pytest.raises(SystemExit) as exc:
            main(["ego", "remember", "a.png", "n", "--bank", "b", "--keywords", value])
        assert exc.value.code == 2
        messages.append(capsys.readouterr().err.splitlines()[-1].replace(repr(value), "VALUE"))
    assert messages[0] == messages[1]
    assert "leave the option out" in messages[0]


@pytest.mark.parametrize("argv", [["--n", "0"], ["--n", "-1"], ["--size", "0"], ["--size", "63"], ["--n", "x"]])
def test_data_sample_numbers_refused_at_parse_time(argv: list[str], tmp_path, capsys, monkeypatch) -> None:
    """`data sample` checks `--n` and `--size` when it parses them, before it imports ShapesWorld or writes
    anything: one line, exit code 2."""
    import egokit.data.export

    monkeypatch.setattr(egokit.data.export, "write_samples", lambda *a, **k: pytest.fail("work was started"))
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        main(["data", "sample", "--out", str(out), *argv])
    assert exc.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"egokit data sample: error: argument {argv[0]}: ") and repr(argv[1]) in last
    assert not out.exists()


def test_data_sample_ranges_are_the_data_layers() -> None:
    """The parse-time ranges of `data sample` are the ones `write_samples` and ShapesWorld enforce."""
    from egokit.commands import data
    from egokit.data import export, shapesworld

    assert data.MAX_SAMPLES == export.MAX_SAMPLES
    assert (data.MIN_SIZE, data.MAX_SIZE) == (shapesworld.MIN_SIZE, shapesworld.MAX_SIZE)
    assert build_parser().parse_args(["data", "sample", "--out", "f", "--n", str(export.MAX_SAMPLES),
                                      "--size", str(shapesworld.MAX_SIZE)]).size == shapesworld.MAX_SIZE


def test_recipe_eval_parser_checks_too(capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m egokit.recipes.eval` shares its options with `egokit zoo eval`, checks included."""
    for argv in (["--n", "0"], ["--n", "2"], ["--seed", "-1"]):
        with pytest.raises(SystemExit) as exc:
            recipe_eval.build_parser().parse_args(argv)
        assert exc.value.code == 2
        assert "must be" in capsys.readouterr().err
    assert recipe_eval.build_parser().parse_args(["--n", "4", "--seed", "2"]).n == 4


def test_option_types_directly() -> None:
    at_least_two = options.count(2, maximum=10)
    assert at_least_two(" 7 ") == 7
    for bad in ("1", "11", "3.0", "", "seven"):
        with pytest.raises(argparse.ArgumentTypeError):
            at_least_two(bad)
    eights = options.count(8, multiple_of=8)
    assert eights("64") == 64
    with pytest.raises(argparse.ArgumentTypeError, match="multiple of 8"):
        eights("60")
    assert options.budget("13") == 13 and isinstance(options.budget("13"), int)
    assert options.budget("1e-1") == pytest.approx(0.1)
    with pytest.raises(argparse.ArgumentTypeError, match="count without a point"):
        options.budget("13.0")
    assert options.number("-1e9") == -1e9
    assert options.thread_count("0") == 0
    assert options.words("a  b") == ["a", "b"]


def test_mirrored_constants_agree() -> None:
    """A bound restated above the layer that owns it (to keep `egokit --help` light) must not drift."""
    from egokit.capture.bench import QUERY_ROWS
    from egokit.commands import bench

    assert bench.QUERY_ROWS == QUERY_ROWS


def test_the_recipes_and_the_commands_share_one_set_of_number_types() -> None:
    """The recipes sit a layer below the commands: both take their numeric types from egokit.argtypes."""
    for name in ("count", "seed_number", "thread_count", "MAX_SEED"):
        assert getattr(options, name) is getattr(argtypes, name)
    assert recipe_train.count is argtypes.count and recipe_train.positive_number is argtypes.positive_number
    assert recipe_eval.seed_number is argtypes.seed_number


@pytest.mark.parametrize(("opt", "value"), [("--steps", "0"), ("--batch", "-1"), ("--seed", "x"), ("--threads", "-1"),
                                            ("--foil-steps", "-1"), ("--foil-lr", "0"), ("--foil-vision-from", "-1")])
def test_recipe_train_refuses_bad_numbers_before_any_work(opt: str, value: str, capsys, monkeypatch) -> None:
    """`python -m egokit.recipes.train` (the parser `egokit zoo train` shares): one line, exit code 2,
    and the training never starts."""
    monkeypatch.setattr(recipe_train, "run", lambda args: pytest.fail("training was started"))
    with pytest.raises(SystemExit) as exc:
        recipe_train.main(["clip", f"{opt}={value}"])
    assert exc.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"python -m egokit.recipes.train: error: argument {opt}: ") and repr(value) in last
