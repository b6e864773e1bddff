"""One shared-memory block per worker batch: values kept, one storage crosses, cached objects untouched."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset

from data_modules.handoff import one_storage


@dataclass(frozen=True)
class Visual:
    pixel_values: torch.Tensor
    timestamps: torch.Tensor
    name: str


def _batch() -> dict:
    shared = torch.arange(6, dtype=torch.int64).view(2, 3)
    return {
        "input_ids": shared,
        "again": shared,  # the same tensor held twice
        "mask": torch.tensor([[True, False, True]]),
        "pixels": torch.randn(5, 7),
        "transposed": torch.randn(3, 4).t(),  # not contiguous
        "seconds": [torch.tensor([0.5, 1.5], dtype=torch.float64), torch.tensor(2.0, dtype=torch.float16)],
        "visuals": (Visual(torch.randn(2, 2), torch.zeros(0), "a"),),
        "empty": torch.zeros(0, 3, dtype=torch.int32),
        "answers": ["x", "y"],
        "count": 3,
    }


def _storages(value) -> set[int]:
    if isinstance(value, torch.Tensor):
        return {value.untyped_storage().data_ptr()} if value.numel() else set()
    if isinstance(value, dict):
        return set().union(*map(_storages, value.values()))
    if isinstance(value, (list, tuple)):
        return set().union(set(), *map(_storages, value))
    if isinstance(value, Visual):
        return _storages(value.pixel_values) | _storages(value.timestamps)
    return set()


def test_values_dtypes_and_structure_are_kept_in_one_shared_block():
    batch = _batch()
    packed = one_storage(batch)
    assert packed.keys() == batch.keys()
    for key in ("input_ids", "mask", "pixels", "transposed", "empty"):
        assert packed[key].dtype == batch[key].dtype and torch.equal(packed[key], batch[key]), key
    assert [t.dtype for t in packed["seconds"]] == [torch.float64, torch.float16]
    assert all(torch.equal(a, b) for a, b in zip(packed["seconds"], batch["seconds"]))
    assert isinstance(packed["visuals"], tuple) and packed["visuals"][0].name == "a"
    assert torch.equal(packed["visuals"][0].pixel_values, batch["visuals"][0].pixel_values)
    assert packed["answers"] is batch["answers"] and packed["count"] == 3
    assert packed["again"] is packed["input_ids"]
    assert len(_storages(packed)) == 1 and packed["pixels"].is_shared()
    assert len(_storages(batch)) > 5


def test_the_input_and_its_cached_objects_are_not_changed():
    batch = _batch()
    visual = batch["visuals"][0]
    before = visual.pixel_values
    packed = one_storage(batch)
    packed["pixels"].zero_()
    packed["visuals"][0].pixel_values.zero_()
    assert visual.pixel_values is before and before.abs().sum() > 0
    assert batch["pixels"].abs().sum() > 0
    assert packed["visuals"][0] is not visual


def test_batches_with_fewer_than_two_tensors_pass_through():
    lone = {"ids": torch.ones(2), "names": ["a"]}
    assert one_storage(lone) is lone
    assert one_storage({"samples": []})["samples"] == []


class _Rows(Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> dict:
        return {"ids": torch.full((3,), index), "pixels": torch.full((2, 2), float(index))}


def _collate(items: list[dict]) -> dict:
    from torch.utils.data import get_worker_info

    batch = {"ids": torch.stack([i["ids"] for i in items]), "pixels": torch.stack([i["pixels"] for i in items])}
    return one_storage(batch) if get_worker_info() is not None else batch


def test_a_worker_batch_arrives_as_one_storage_with_its_values():
    loader = DataLoader(_Rows(), batch_size=2, num_workers=1, collate_fn=_collate)
    batches = list(loader)
    assert [b["ids"][:, 0].tolist() for b in batches] == [[0, 1], [2, 3]]
    assert torch.equal(batches[1]["pixels"], torch.stack([torch.full((2, 2), 2.0), torch.full((2, 2), 3.0)]))
    assert all(len(_storages(b)) == 1 for b in batches)


def test_a_named_tuple_keeps_its_type_and_joins_the_block():
    from collections import namedtuple

    Pair = namedtuple("Pair", "left right")
    batch = {"pair": Pair(torch.ones(2), torch.zeros(3)), "ids": torch.arange(4)}
    packed = one_storage(batch)
    assert type(packed["pair"]) is Pair and torch.equal(packed["pair"].right, batch["pair"].right)
    assert len({t.untyped_storage().data_ptr() for t in (*packed["pair"], packed["ids"])}) == 1
