import pytest
import torch

from groundlight.ops import mask_columns


def _sorted_columns(mask: torch.Tensor, align: str, min_width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference: a stable sort puts each row's masked positions first (left) or last (right), in order."""
    counts = mask.sum(1)
    width = max(int(counts.max()), min_width)
    key = (~mask if align == "left" else mask).to(torch.int8)
    order = torch.sort(key, dim=1, stable=True).indices
    columns = torch.arange(width).unsqueeze(0)
    if align == "left":
        return order[:, :width], columns < counts.unsqueeze(1)
    return order[:, mask.shape[1] - width :], columns >= width - counts.unsqueeze(1)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("align", ["left", "right"])
def test_mask_columns_equal_a_stable_sort(seed, align):
    generator = torch.Generator().manual_seed(seed)
    for batch, length in ((1, 9), (3, 17), (4, 5)):
        mask = torch.rand(batch, length, generator=generator) < 0.5
        for case in (mask, mask[:1].expand(batch, length), torch.zeros_like(mask)):  # ragged, equal counts, none
            for min_width in (0, 1):
                index, valid = mask_columns(case, align, min_width)
                expected_index, expected_valid = _sorted_columns(case, align, min_width)
                assert torch.equal(valid, expected_valid)
                assert torch.equal(index, expected_index)


def test_right_alignment_keeps_the_last_column_real():
    """Row 0 keeps positions 1 and 3 of 4, row 1 keeps 0, 1, 2; width 3. Right-aligned, row 0's order is
    its others then its kept ones, [0, 2, 1, 3], of which the last 3 are [2, 1, 3]: one pad (2) on the left,
    so generation always continues from a real last column."""
    keep = torch.tensor([[False, True, False, True], [True, True, True, False]])
    index, valid = mask_columns(keep, "right")
    assert index.tolist() == [[2, 1, 3], [0, 1, 2]]
    assert valid.tolist() == [[False, True, True], [True, True, True]]
