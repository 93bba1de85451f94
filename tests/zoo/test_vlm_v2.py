"""The micro VLM's second recipe (`VlmRecipe.v2`, `--recipe v2`): the second mixture (lagging tasks weighted
up, the name of a personalized caption stressed in the loss, more clutter), bf16, a run started from an
earlier VLM (`--init`), the time limit and the loss curve; and `--init` of the micro CLIP."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import egokit.recipes.train as train
import egokit.training as runtime
from egokit.data.shapesworld import ShapesWorld
from egokit.errors import InputError
from egokit.models.loading import from_model
from egokit.recipes.clip import ClipRecipe, build_clip
from egokit.recipes.vlm import (
    IGNORE,
    MatchHead,
    VlmRecipe,
    batch_losses,
    build_vlm,
    collate,
    load_clip,
    load_init,
)
from egokit.recipes.vlm_tasks import Mixture, MixtureConfig


def _mixture(config):
    return Mixture(ShapesWorld(seed=0, split="train"), 0, config=config)


def _tiny_vlm():
    """The tiny VLM a `--quick` run builds (on the CLIP tower such a run takes)."""
    recipe = VlmRecipe.quick()
    model, processor = build_vlm(recipe, load_clip(None, quick=True, seed=0))
    return model, processor, recipe


def test_v2_mixture_draws_the_lagging_question_kinds_more_often():
    counts = {}
    for name, config in (("v1", MixtureConfig()), ("v2", MixtureConfig.v2())):
        mix, rng, images = _mixture(config), np.random.default_rng(0), []
        config.single = {"vqa": 1.0}
        counts[name] = Counter(mix.single(rng, images).task for _ in range(400))
    share = {k: c["vqa_position"] / sum(c.values()) for k, c in counts.items()}
    assert share["v2"] > 1.5 * share["v1"], (share, counts)


def test_personalized_captions_stress_the_name_only_when_the_concept_is_there():
    config = MixtureConfig.v2()
    config.incontext = {"personal": 1.0}
    mix, rng, images = _mixture(config), np.random.default_rng(1), []
    examples = [mix.incontext(rng, images, 0.5) for _ in range(40)]
    named = [ex for ex in examples if ex.stress]
    assert named and len(named) < len(examples)             # positives name the concept, the others do not
    for ex in examples:
        assert ex.task == "personal"
        assert all(name in ex.answer.split() for name in ex.stress)
    v1 = MixtureConfig()
    v1.incontext = {"personal": 1.0}
    assert not any(_mixture(v1).incontext(np.random.default_rng(1), [], 0.5).stress for _ in range(10))


def test_collate_weights_the_stressed_answer_tokens_and_the_loss_is_their_weighted_mean():
    model, processor, recipe = _tiny_vlm()
    loaded = from_model(model, processor, name="tiny")
    config = MixtureConfig.v2()
    config.incontext = {"personal": 1.0}
    mix, rng, images = _mixture(config), np.random.default_rng(2), []
    examples = [ex for ex in (mix.incontext(rng, images, 0.5) for _ in range(30)) if ex.stress][:3]
    batch = collate(examples, loaded, 64, images, stress_weight=5.0)
    tok = processor.tokenizer
    for row, ex in enumerate(examples):
        name_id = tok.convert_tokens_to_ids(ex.stress[0])
        labels, weights = batch["labels"][row], batch["token_weights"][row]
        stressed = (weights == 5.0).nonzero().flatten().tolist()
        assert stressed and all(labels[k] == name_id for k in stressed)        # the name, in the answer
        assert (weights[labels == IGNORE] == 1.0).all()                        # nothing of the prompt
        assert (labels == name_id).sum() == len(stressed)
    head = MatchHead(recipe.width)
    torch.manual_seed(0)
    losses = batch_losses(model, head, batch, torch.device("cpu"))
    plain = batch_losses(model, head, {**batch, "token_weights": torch.ones_like(batch["token_weights"])},
                         torch.device("cpu"))
    # the same loss written out: per example the weighted mean of its answer tokens' cross-entropy
    from egokit.models.context import assemble
    from egokit.recipes.clip import to_pixels
    from egokit.recipes.vlm import vision_hidden

    feats = model.model.multi_modal_projector(vision_hidden(model, to_pixels(batch["images"], torch.device("cpu"))))
    memories = [feats[i] if keep is None else feats[i, torch.as_tensor(keep)] for i, keep in batch["plan"]]
    embeds = assemble(model, batch["input_ids"], memories, model.config.image_token_id)
    logits = model(inputs_embeds=embeds, attention_mask=batch["attention_mask"]).logits[:, :-1]
    expected = []
    for row in range(len(examples)):
        labels, w = batch["labels"][row, 1:], batch["token_weights"][row, 1:]
        on = labels != IGNORE
        ce = F.cross_entropy(logits[row][on], labels[on], reduction="none")
        expected.append((ce * w[on]).sum() / w[on].sum())
    ew = batch["weights"]
    assert losses["answer"].item() == pytest.approx(float((torch.stack(expected).detach() * ew).sum() / ew.sum()),
                                                    rel=1e-4)
    assert losses["answer"].item() != pytest.approx(plain["answer"].item(), rel=1e-4)


def test_v2_quick_run_writes_its_mixture_precision_and_loss_curve(tmp_path):
    out, run = tmp_path / "vlm", tmp_path / "run"
    assert train.main(["vlm", "--recipe", "v2", "--quick", "--out", str(out), "--run-dir", str(run),
                       "--device", "cpu"]) == 0
    info = json.loads((out / "training.json").read_text())
    assert info["recipe"]["precision"] == "bf16" and info["recipe"]["mixture"]["name_weight"] == 5.0
    assert info["recipe"]["mixture"]["vqa_kinds"]["position"] == 3.0
    assert "--recipe v2" in info["command"]
    card = (out / "README.md").read_text()
    assert "Recipe v2" in card and "name's token weighted ×5.0" in card and "position questions drawn ×3.0" in card
    curve = runtime.read_losses(out)
    assert curve and {"single", "incontext", "match", "lr"} <= set(curve[0])
    assert all(np.isfinite(v) for v in curve[0].values())


def test_a_vlm_run_stopped_by_its_time_limit_goes_on_with_the_same_command(tmp_path, capsys):
    out, run = tmp_path / "vlm", tmp_path / "run"
    argv = ["vlm", "--quick", "--steps", "3", "--out", str(out), "--run-dir", str(run), "--device", "cpu"]
    assert train.main([*argv, "--max-minutes", "1e-9"]) == 3
    assert "stopped at the time limit after step 1 of 3" in capsys.readouterr().out and not out.exists()
    assert train.main(argv) == 0
    assert "resuming micro-vlm training at step 1" in capsys.readouterr().out


def test_init_copies_the_projector_and_language_model_but_not_the_tower(tmp_path):
    first = tmp_path / "first"
    assert train.main(["vlm", "--quick", "--out", str(first), "--run-dir", str(tmp_path / "r1"),
                       "--device", "cpu"]) == 0
    model, _, _ = _tiny_vlm()
    tower = {k: v.clone() for k, v in model.model.vision_tower.state_dict().items()}
    load_init(model, str(first))
    from transformers import LlavaForConditionalGeneration

    source = LlavaForConditionalGeneration.from_pretrained(first, dtype=torch.float32)
    for name in ("multi_modal_projector", "language_model"):
        mine, theirs = getattr(model.model, name).state_dict(), getattr(source.model, name).state_dict()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    assert torch.equal(model.lm_head.weight, source.lm_head.weight)
    assert all(torch.equal(v, model.model.vision_tower.state_dict()[k]) for k, v in tower.items())
    # the command line records it, so the card's command repeats the stage
    out = tmp_path / "second"
    assert train.main(["vlm", "--quick", "--init", str(first), "--out", str(out), "--run-dir", str(tmp_path / "r2"),
                       "--device", "cpu"]) == 0
    info = json.loads((out / "training.json").read_text())
    assert info["recipe"]["init"] == str(first) and f"--init {first}" in info["command"]


def test_init_from_a_folder_of_another_model_says_so(tmp_path, capsys):
    clip = tmp_path / "clip"
    assert train.main(["clip", "--quick", "--out", str(clip), "--run-dir", str(tmp_path / "rc"),
                       "--device", "cpu"]) == 0
    model, _, _ = _tiny_vlm()
    with pytest.raises(InputError, match="is a clip checkpoint, not a micro VLM"):
        load_init(model, str(clip))
    assert train.main(["vlm", "--quick", "--init", str(tmp_path / "nothing"), "--out", str(tmp_path / "v"),
                       "--run-dir", str(tmp_path / "rv"), "--device", "cpu"]) == 2
    assert "no checkpoint there" in capsys.readouterr().err


def test_clip_init_starts_from_the_folders_weights_and_refuses_another_shape(tmp_path, capsys):
    from egokit.recipes.clip import load_init as clip_init

    first = tmp_path / "clip"
    assert train.main(["clip", "--quick", "--out", str(first), "--run-dir", str(tmp_path / "r"),
                       "--device", "cpu"]) == 0
    model, _ = build_clip(ClipRecipe.quick(seed=5))
    clip_init(model, str(first))
    from transformers import CLIPModel

    saved = CLIPModel.from_pretrained(first, dtype=torch.float32).state_dict()
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items() if k in saved)
    wide, _ = build_clip(ClipRecipe())
    with pytest.raises(InputError, match="not a micro CLIP of this recipe's shape"):
        clip_init(wide, str(first))


def test_prompt_weights_weigh_each_attributes_part_of_the_prompt_loss():
    from egokit.recipes.clip import ClipData, DenseHeads, clip_losses

    recipe = ClipRecipe.quick()
    model, processor = build_clip(recipe)
    heads = DenseHeads(recipe.width, recipe.dense_layers)
    batch = ClipData(recipe).batch(0, processor.tokenizer, torch.device("cpu"))
    torch.manual_seed(0)
    parts = {}
    for attr in ("color", "shape", "pattern"):
        only = {a: (1.0 if a == attr else 0.0) for a in ("color", "shape", "pattern")}
        parts[attr] = clip_losses(model, heads, batch, only)["prompt"].item()
    mixed = clip_losses(model, heads, batch, {"color": 1.0, "shape": 3.0, "pattern": 1.0})["prompt"].item()
    assert mixed == pytest.approx((parts["color"] + 3 * parts["shape"] + parts["pattern"]) / 5, rel=1e-5)
    even = clip_losses(model, heads, batch)["prompt"].item()
    assert even == pytest.approx(sum(parts.values()) / 3, rel=1e-5)


def test_settings_of_the_clip_and_the_vlm_are_refused_for_the_point_head(tmp_path, capsys):
    assert train.main(["pixel", "--quick", "--recipe", "v2", "--out", str(tmp_path / "p")]) == 2
    assert "settings of the micro CLIP and the micro VLM" in capsys.readouterr().err


def test_a_clip_stage_from_init_with_vision_from_2_keeps_what_the_vlm_reads(tmp_path):
    from transformers import CLIPModel

    first, second = tmp_path / "clip", tmp_path / "clip-b"
    assert train.main(["clip", "--quick", "--out", str(first), "--run-dir", str(tmp_path / "r1"),
                       "--device", "cpu"]) == 0
    assert train.main(["clip", "--recipe", "v2", "--quick", "--init", str(first), "--vision-from", "2",
                       "--prompt-weights", "1,3,1", "--out", str(second), "--run-dir", str(tmp_path / "r2"),
                       "--device", "cpu"]) == 0
    a = CLIPModel.from_pretrained(first).state_dict()
    b = CLIPModel.from_pretrained(second).state_dict()
    kept = [k for k in a if k.startswith(("vision_model.embeddings", "vision_model.pre_layrnorm",
                                          "vision_model.encoder.layers.0.", "vision_model.encoder.layers.1."))]
    assert kept and all(torch.equal(a[k], b[k]) for k in kept)
    assert not torch.equal(a["text_projection.weight"], b["text_projection.weight"])     # the rest trained
    info = json.loads((second / "training.json").read_text())
    assert info["recipe"]["vision_from"] == 2 and info["recipe"]["prompt_weights"]["shape"] == 3.0
    assert "--vision-from 2" in info["command"] and "--prompt-weights 1,3,1" in info["command"]
    card = (second / "README.md").read_text()
    assert f"starts from the weights of `{first}`" in card and "vision layers below 2 kept" in card
    assert "loss weights changed: shape ×3" in card


@pytest.mark.parametrize("bad", ["1,3", "a,b,c", "1,-1,1", "0,0,0"])
def test_bad_prompt_weights_are_refused_with_a_hint(bad, capsys):
    with pytest.raises(SystemExit):
        train.build_parser().parse_args(["clip", "--prompt-weights", bad])
    assert "colour,shape,pattern" in capsys.readouterr().err


def test_dense_target_weights_weigh_each_targets_part_of_the_dense_losses():
    from egokit.recipes.clip import ClipData, DenseHeads

    recipe = ClipRecipe.quick()
    model, processor = build_clip(recipe)
    batch = ClipData(recipe).batch(0, processor.tokenizer, torch.device("cpu"))
    hidden = model.vision_model(pixel_values=batch["pixel_values"], output_hidden_states=True).hidden_states
    heads = DenseHeads(recipe.width, recipe.dense_layers, weights={"shape": 3.0})
    assert heads.weights == {"shape": 3.0, "color": 1.0, "pattern": 1.0, "mark": 1.0}

    def both(weights):
        heads.weights = weights
        return (heads.loss(hidden, batch["dense"]) + heads.object_loss(hidden, batch["objects"])).item()

    names = list(heads.weights)
    part = {n: both({m: float(m == n) for m in names}) for n in names}
    assert both({"shape": 3.0, "color": 1.0, "pattern": 1.0, "mark": 1.0}) == pytest.approx(
        (3 * part["shape"] + part["color"] + part["pattern"] + part["mark"]) / 6, rel=1e-5)


def test_object_memories_keep_the_concepts_own_patches_and_are_off_by_default():
    from egokit.recipes.vlm_tasks import Visual, oracle_keep, subject_index

    def memories(config, seed=3, n=60):
        config.incontext = {"recognise": 1.0}
        mix, rng, images = _mixture(config), np.random.default_rng(seed), []
        out = []
        for _ in range(n):
            ex = mix.incontext(rng, images, 0.5)
            out.append(next(p for p in ex.pieces if isinstance(p, Visual)).keep)
        return out, images

    class WithoutReference(Mixture):       # the mixture as it was before object memories existed
        def _keep(self, rng, n_concepts=1, ref=None):
            return super()._keep(rng, n_concepts)

    plain, _ = memories(MixtureConfig.v2())
    config = MixtureConfig.v2()
    config.incontext = {"recognise": 1.0}
    mix, rng, images = WithoutReference(ShapesWorld(seed=0, split="train"), 0, config=config), \
        np.random.default_rng(3), []
    before = [next(p for p in mix.incontext(rng, images, 0.5).pieces if isinstance(p, Visual)).keep for _ in range(60)]
    assert [None if k is None else k.tolist() for k in plain] == [None if k is None else k.tolist() for k in before]
    config = MixtureConfig.v2()
    config.object_memory = 1.0
    kept, _ = memories(config)
    assert all(k is not None and 6 <= len(k) <= 20 for k in kept)     # 10–30 % of 64 tokens
    # each memory is the tokens that cover its reference's subject most: the same set `oracle_keep` picks
    mix, rng = _mixture(config), np.random.default_rng(3)
    concept = mix._concept(rng, "bix")
    ref = mix._reference(rng, concept)
    keep = mix._keep(np.random.default_rng(0), 1, ref)
    assert keep.tolist() == oracle_keep(ref, subject_index(ref), len(keep) / 64).tolist()
    _, cover = ref.patch_labels()
    assert cover[subject_index(ref)].ravel()[keep].mean() > cover[subject_index(ref)].mean()


def test_mixture_option_changes_the_recipes_fields_and_the_card_says_so(tmp_path):
    out = tmp_path / "vlm"
    assert train.main(["vlm", "--recipe", "v2", "--quick", "--mixture",
                       "hard_weight=2,object_memory=0.25,incontext.personal=0.4", "--out", str(out),
                       "--run-dir", str(tmp_path / "run"), "--device", "cpu"]) == 0
    info = json.loads((out / "training.json").read_text())
    mix = info["recipe"]["mixture"]
    assert mix["hard_weight"] == 2.0 and mix["object_memory"] == 0.25 and mix["incontext"]["personal"] == 0.4
    assert mix["name_weight"] == 5.0                                    # the rest of v2 stays
    assert "--mixture hard_weight=2,object_memory=0.25,incontext.personal=0.4" in info["command"]
    card = (out / "README.md").read_text()
    assert "hard negatives weighted ×2.0" in card and "25 % of the memories keep only" in card


@pytest.mark.parametrize("argv, message", [
    (["vlm", "--mixture", "hard_wieght=2"], "not a field of the mixture (known: clutter"),
    (["vlm", "--mixture", "incontext.persnal=0.4"], "incontext has the tasks multi, personal, recognise"),
    (["vlm", "--mixture", "incontext=0.4"], "not a field of the mixture"),
    (["vlm", "--mixture", "object_memory=1.5"], "object_memory=1.5: a share, between 0 and 1"),
    (["vlm", "--mixture", "single.caption=0,single.vqa=0,single.subject=0,single.coverage=0"],
     "the tasks of single all weigh 0"),
    (["clip", "--mixture", "hard_weight=2"], "--mixture is a setting of the micro VLM only"),
])
def test_a_wrong_mixture_field_is_refused_with_the_known_ones(tmp_path, capsys, argv, message):
    assert train.main([*argv, "--quick", "--out", str(tmp_path / "m"), "--run-dir", str(tmp_path / "r"),
                       "--device", "cpu"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("bad", ["hard_weight", "hard_weight=x", "hard_weight=-1", "=2", "hard_weight=inf",
                                 "hard_weight=nan"])
def test_a_malformed_mixture_is_refused_with_a_hint(bad, capsys):
    with pytest.raises(SystemExit):
        train.build_parser().parse_args(["vlm", "--mixture", bad])
    assert "KEY=NUMBER pairs" in capsys.readouterr().err


def test_the_card_names_the_clip_folder_as_given(tmp_path):
    """The VLM card says which CLIP its tower was copied from, as the `--clip` path a reader can load."""
    import json
    import shutil

    from egokit.recipes.cards import write_card
    from egokit.zoo import ZOO_DIR

    folder = tmp_path / "micro-vlm"
    shutil.copytree(ZOO_DIR / "micro-vlm", folder)
    training = json.loads((folder / "training.json").read_text())
    training["clip"] = "stages/micro-clip-v2b"
    (folder / "training.json").write_text(json.dumps(training))
    card = write_card(folder, "vlm", {}).read_text()
    assert "weights copied from `stages/micro-clip-v2b`" in card
