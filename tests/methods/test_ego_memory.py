"""Concept memories and the memory bank file: round trip, atomic writes, damage and foreign models."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from egokit.errors import EgokitError, InputError, MemoryFileError
from egokit.methods.ego.memory import ConceptMemory, MemoryBank, MemoryView


def _memory(name: str, k: int = 3, fp: str = "f" * 16, seed: int = 0, image: bool = True) -> ConceptMemory:
    g = torch.Generator().manual_seed(seed)
    n = 16
    selected = torch.arange(k) * 2
    boxes = torch.tensor([[c * 8, r * 8, c * 8 + 8, r * 8 + 8] for r in range(4) for c in range(4)], dtype=torch.float32)
    view = MemoryView(scores=torch.rand(n, generator=g), selected=selected, boxes=boxes, grid=(4, 4),
                      image=np.full((32, 32, 3), 7, dtype=np.uint8) if image else None)
    return ConceptMemory(name=name, embeddings=torch.randn(k, 8, generator=g), description="a red circle",
                         keywords=["red", "circle"], views=[view], layers=[1], budget=[k], fingerprint=fp,
                         model_name="m", seconds=0.1)


class _Model:
    def __init__(self, fp: str, name: str = "other-model") -> None:
        self._fp, self.name = fp, name

    def fingerprint(self) -> str:
        return self._fp


def test_round_trip(tmp_path: Path) -> None:
    bank = MemoryBank([_memory("bix"), _memory("dax", k=5, seed=1, image=False)])
    path = bank.save(tmp_path / "b.bank")
    back = MemoryBank.load(path, model=_Model("f" * 16))
    assert back.names == ["bix", "dax"]
    assert back.fingerprint == "f" * 16 and back.model_name == "m"
    for name in bank.names:
        a, b = bank[name], back[name]
        assert torch.equal(a.embeddings, b.embeddings)
        assert a.keywords == b.keywords and a.description == b.description
        assert torch.equal(a.views[0].selected, b.views[0].selected)
        assert torch.equal(a.views[0].scores, b.views[0].scores)
        assert a.views[0].grid == b.views[0].grid
    assert np.array_equal(back["bix"].views[0].image, bank["bix"].views[0].image)
    assert back["dax"].views[0].image is None
    assert back.stats() == {"bix": {"tokens": 3, "bytes": 96}, "dax": {"tokens": 5, "bytes": 160}}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_other_model_is_named(tmp_path: Path) -> None:
    path = MemoryBank([_memory("bix")]).save(tmp_path / "b.bank")
    with pytest.raises(MemoryFileError, match="made with model 'm'.*other-model") as info:
        MemoryBank.load(path, model=_Model("0" * 16))
    assert isinstance(info.value, EgokitError)


def test_mixing_models_in_one_bank_is_refused() -> None:
    bank = MemoryBank([_memory("bix")])
    with pytest.raises(InputError, match="belongs to"):
        bank.add(_memory("dax", fp="1" * 16))


@pytest.mark.parametrize("damage", ["truncate", "flip_tensor_byte", "edit_json", "garbage", "empty", "not_a_bank"])
def test_damaged_files_are_errors(tmp_path: Path, damage: str) -> None:
    path = MemoryBank([_memory("bix"), _memory("dax", seed=2)]).save(tmp_path / "b.bank")
    data = bytearray(path.read_bytes())
    header = int.from_bytes(data[:8], "little")
    if damage == "truncate":
        data = data[: len(data) - 100]
    elif damage == "flip_tensor_byte":
        data[8 + header + 17] ^= 0xFF
    elif damage == "edit_json":
        text = data[8: 8 + header].decode()
        data[8: 8 + header] = text.replace("a red circle", "a red square").encode()
    elif damage == "garbage":
        data = bytearray(os.urandom(len(data)))
    elif damage == "empty":
        data = bytearray()
    else:
        from safetensors.torch import save_file

        save_file({"x": torch.zeros(2)}, str(path), metadata={"kind": "something else"})
        data = bytearray(path.read_bytes())
    path.write_bytes(bytes(data))
    with pytest.raises(MemoryFileError):
        MemoryBank.load(path)


def test_missing_file_and_newer_schema(tmp_path: Path) -> None:
    with pytest.raises(MemoryFileError, match="no memory bank"):
        MemoryBank.load(tmp_path / "none.bank")
    from safetensors.torch import save_file

    from egokit.methods.ego.memory import FILE_KIND

    save_file({"x": torch.zeros(1)}, str(tmp_path / "new.bank"), metadata={"kind": FILE_KIND, "schema": "99"})
    with pytest.raises(MemoryFileError, match="newer"):
        MemoryBank.load(tmp_path / "new.bank")


def test_failed_write_leaves_the_old_bank(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = MemoryBank([_memory("bix")]).save(tmp_path / "b.bank")
    before = path.read_bytes()
    import safetensors.torch

    def broken(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", broken)
    with pytest.raises(OSError):
        MemoryBank([_memory("dax")]).save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["b.bank"]


def test_no_pickle_in_the_file(tmp_path: Path) -> None:
    path = MemoryBank([_memory("bix")]).save(tmp_path / "b.bank")
    header = int.from_bytes(path.read_bytes()[:8], "little")
    meta = json.loads(path.read_bytes()[8: 8 + header])["__metadata__"]
    assert meta["kind"] == "egokit.ego.memory_bank" and meta["schema"] == "1"
    assert json.loads(meta["json"])["concepts"][0]["name"] == "bix"


def test_file_layout_is_unchanged(tmp_path: Path) -> None:
    """The bank file's content (its JSON document and every tensor's name, dtype, shape and bytes, which its
    checksum covers) is exactly what schema 1 has always written, so banks saved before still load."""
    path = MemoryBank([_memory("bix"), _memory("dax", k=5, seed=1, image=False)]).save(tmp_path / "b.bank")
    header = int.from_bytes(path.read_bytes()[:8], "little")
    meta = json.loads(path.read_bytes()[8: 8 + header])["__metadata__"]
    assert meta["sha256"] == "80f26b5adad3b1f078ddf8356451e41cf6b3deba06f6142da6bb1e217b3bb481"


def test_a_bank_is_a_result(tmp_path: Path) -> None:
    from egokit.results import Result

    bank = MemoryBank([_memory("bix"), _memory("dax", k=5, seed=1, image=False)])
    assert isinstance(bank, Result) and isinstance(bank["bix"], Result)
    assert bank._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [c["name"] for c in bank.to_dict()["concepts"]] == ["bix", "dax"]
    one = ConceptMemory.load(bank["dax"].save(tmp_path / "dax.bank"))
    assert one.name == "dax" and torch.equal(one.embeddings, bank["dax"].embeddings)


def test_memory_sizes_and_picture() -> None:
    m = _memory("bix", k=4)
    assert m.n_tokens == 4 and m.nbytes == 4 * 8 * 4 and m.view_of_token().tolist() == [0, 0, 0, 0]
    img = m.to_image()
    assert img.size[0] >= 128
    assert m._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"
    assert m.to_dict()["tokens"] == 4


@pytest.mark.parametrize("schema", ["0", "-1"])
def test_schemas_below_one_are_refused(tmp_path: Path, schema: str) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = MemoryBank([_memory("bix")]).save(tmp_path / "b.bank")
    with safe_open(str(path), framework="pt") as fh:
        metadata = dict(fh.metadata())
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    save_file(tensors, str(path), metadata={**metadata, "schema": schema})  # schema lies outside the checksum
    with pytest.raises(MemoryFileError, match=f"schema {schema}, which no egokit writes"):
        MemoryBank.load(path)


def test_a_concept_copied_with_replace_saves(tmp_path: Path) -> None:
    import dataclasses

    bix = _memory("bix")
    bank = MemoryBank([bix, dataclasses.replace(bix, name="bax")])  # same tensors under two names
    back = MemoryBank.load(bank.save(tmp_path / "b.bank"))
    assert back.names == ["bix", "bax"] and torch.equal(back["bax"].embeddings, bix.embeddings)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_saving_keeps_the_bank_permissions(tmp_path: Path) -> None:
    import stat

    path = MemoryBank([_memory("bix")]).save(tmp_path / "b.bank")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # a new bank: the usual permissions
    os.chmod(path, 0o644)
    MemoryBank([_memory("dax")]).save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    os.chmod(path, 0o640)
    MemoryBank.update(path, None, lambda bank: bank.add(_memory("zog")))
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_update_creates_checks_and_saves(tmp_path: Path) -> None:
    path = tmp_path / "b.bank"
    bank = MemoryBank.update(path, _Model("f" * 16, "m"), lambda b: b.add(_memory("bix")))
    assert bank.names == ["bix"] and MemoryBank.load(path).names == ["bix"]
    with pytest.raises(MemoryFileError, match="other-model"):
        MemoryBank.update(path, _Model("0" * 16), lambda b: b.add(_memory("dax")))
    with pytest.raises(InputError, match="does not exist"):
        MemoryBank.update(tmp_path / "missing" / "b.bank", None, lambda b: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.bank"]  # no lock file left


@pytest.mark.parametrize("fallback", [False, True])
def test_concurrent_updates_keep_every_concept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               fallback: bool) -> None:
    """Three runs adding concepts to one bank at once (as three `egokit ego remember`): none is lost."""
    import threading
    import time

    import egokit.files

    if fallback:
        monkeypatch.setattr(egokit.files, "fcntl", None)
    path = tmp_path / "b.bank"
    MemoryBank([_memory("bix")]).save(path)
    errors: list[BaseException] = []

    def add(name: str, seed: int) -> None:
        def change(bank: MemoryBank) -> None:
            time.sleep(0.1)  # the others load the bank meanwhile, unless they wait for the lock
            bank.add(_memory(name, seed=seed))

        try:
            MemoryBank.update(path, _Model("f" * 16), change)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=add, args=(n, i)) for i, n in enumerate(["alpha", "beta", "gamma"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(MemoryBank.load(path).names) == ["alpha", "beta", "bix", "gamma"]
