"""A DataLoader worker's batch in one shared-memory block, so the training process receives it in one handoff.

Each tensor a worker returns travels as its own shared-memory storage: with the default ``file_descriptor``
strategy, one file descriptor sent over a socket per tensor, about a millisecond of the training process's time
each on a small CPU. A collated video batch holds 20-30 tensors (ids, masks, labels, frame indices, pixels, and
each row's visual input), so that handoff alone can cost more than preparing the batch. :func:`one_storage` copies
every tensor of a batch into one block allocated in shared memory and returns the same structure holding views of
it: one storage crosses, however many tensors the batch has.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import torch

ALIGN = 64
"""Byte alignment of each tensor in the block (any dtype's element size divides it)."""


def _tensors(value: Any, found: dict[int, torch.Tensor]) -> None:
    """Every tensor reachable through dicts, lists, tuples and dataclass fields, keyed by ``id``."""
    if isinstance(value, torch.Tensor):
        found.setdefault(id(value), value)
    elif isinstance(value, dict):
        for item in value.values():
            _tensors(item, found)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _tensors(item, found)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            _tensors(getattr(value, field.name), found)


def _swapped(value: Any, views: dict[int, torch.Tensor]) -> Any:
    """``value`` with each tensor replaced by its view; containers and dataclasses holding none are returned as they
    are, the others as copies (a dataclass by ``copy.copy``, so an object a dataset caches is never changed)."""
    if isinstance(value, torch.Tensor):
        return views[id(value)]
    if isinstance(value, dict):
        items = {key: _swapped(item, views) for key, item in value.items()}
        return items if any(items[k] is not value[k] for k in value) else value
    if isinstance(value, (list, tuple)):
        items = [_swapped(item, views) for item in value]
        if all(new is old for new, old in zip(items, value)):
            return value
        if isinstance(value, list):
            return items
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)  # a named tuple keeps its type
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changed = {}
        for field in dataclasses.fields(value):
            old = getattr(value, field.name)
            new = _swapped(old, views)
            if new is not old:
                changed[field.name] = new
        if not changed:
            return value
        clone = copy.copy(value)
        for name, new in changed.items():
            object.__setattr__(clone, name, new)  # frozen dataclasses too
        return clone
    return value


def one_storage(batch: Any) -> Any:
    """``batch`` with every CPU tensor (through dicts, lists, tuples and dataclasses) a view of one block allocated in
    shared memory; values and dtypes unchanged, views contiguous. A tensor held twice is copied once. A batch with
    fewer than two tensors, or any tensor off the CPU, is returned as it is."""
    found: dict[int, torch.Tensor] = {}
    _tensors(batch, found)
    tensors = list(found.values())
    if len(tensors) < 2 or any(t.device.type != "cpu" for t in tensors):
        return batch
    offsets, total = [], 0
    for tensor in tensors:
        offsets.append(total)
        total += -(-tensor.numel() * tensor.element_size() // ALIGN) * ALIGN
    block = torch.empty(0, dtype=torch.uint8).set_(torch.UntypedStorage._new_shared(max(total, 1)))
    views = {}
    for tensor, offset in zip(tensors, offsets):
        nbytes = tensor.numel() * tensor.element_size()
        view = block[offset:offset + nbytes].view(tensor.dtype).view(tensor.shape)
        view.copy_(tensor)
        views[id(tensor)] = view
    return _swapped(batch, views)
