"""E.T. Bench metrics, as its ``evaluation/compute_metrics.py`` defines them.

Every sample of the submission (``task``, ``source``, ground-truth fields and the model's
answer ``a``) is scored on its own; ``ETBench.compute`` groups them by task and source
and returns the official nested ``{task: {source: {Total, Failed, <metrics>}}}`` with
values rounded to 5 decimals as there. ``etbench_summary`` adds the "Overall" and
"Merged" rows of the official log (percent, one decimal).

The answer extraction below mirrors E.T. Bench's own (``tvg_format``, ``dvc_format``,
the option-letter rules); it is deliberately not the project's ``parse_window``, whose
semantics differ. IoUs come from the project's ``temporal_iou`` on float32-rounded
windows, rounded to float32, because E.T. Bench computes them on ``torch.Tensor``
(float32): an IoU of exactly 0.7 is then 0.69999999 and misses ``>= 0.7`` for
TVG/EPM/TEM/GVQ (compared as Python floats) but hits for TAL (compared in float32).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from groundlight.metrics.captioning import (
    bleu,
    cider,
    densevid_iou,
    detection_precision_recall,
    matched_pairs,
    ptb_tokenize,
    remove_nonascii,
    resolve_meteor,
    rouge_l,
    shared_meteor,
)
from groundlight.metrics.temporal import temporal_iou

THRESHOLDS: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7)
CAPTION_KEYS: tuple[str, ...] = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "SentSim")
MAX_PROPOSALS = 1000
_NUM = r"\d+\.*\d*"

Window = list[float]
Similarity = Callable[[str, str], float]

# ---------------------------------------------------------------------------------------
# Answer extraction, mirroring E.T. Bench
# ---------------------------------------------------------------------------------------


def etbench_windows(answer: str) -> list[Window] | None:
    """Windows in an answer, as E.T. Bench's ``tvg_format`` reads them.

    In order of preference: every ``a - b`` in the answer; else every ``a to b``; else
    the first number of each sentence (split at ``!``, ``?`` and newlines) that contains
    a keyword such as "start", "end" or "happen", paired up in order. Each pair is
    sorted. ``None`` when nothing is found. (Its clock-time branch can never add a
    window, so it is left out.) A number such as ``1..5`` makes E.T. Bench crash; here
    it makes the answer unparseable.
    """
    text = answer.lower()
    pairs = re.findall(rf"({_NUM})\s*-\s*({_NUM})", text) or re.findall(rf"({_NUM})\s* to \s*({_NUM})", text)
    if not pairs:
        keywords = ("starts", "ends", "happens in", "start time", "end time", "start", "end", "happen")
        sentences = [s for s in re.split(r"[!?\n]", text) if any(k in s for k in keywords)]
        firsts = [m[0] for m in (re.findall(r"\b(\d+\.\d+\b|\b\d+)\b", s) for s in sentences) if m]
        pairs = list(zip(firsts[0::2], firsts[1::2]))
    try:
        windows = [sorted((float(a), float(b))) for a, b in pairs]
    except ValueError:
        return None
    return windows or None


def _radius_window(center: float, radius: float = 20) -> str:
    """E.T. Bench's window around a single time: ``±radius``, or ``[t, t + 2 radius]`` near 0."""
    return f"{center - radius} - {center + radius}" if center > radius else f"{center} - {center + 2 * radius}"


def _fallback_time(time_part: str) -> list[str]:
    """E.T. Bench's ``extract_time_part``: a ``"a - b"`` string from a caption's time part."""
    found = re.findall(rf"{_NUM}\s*-\s*{_NUM}", time_part)
    clocks = re.findall(rf"{_NUM}:{_NUM}", time_part)
    if not found and time_part.count(":") == 1:
        minutes, seconds = clocks[0].split(":")
        found = [_radius_window(int(minutes) * 60 + int(seconds))]
    elif not found and time_part.count(":") == 2:
        (m1, s1), (m2, s2) = (c.split(":") for c in clocks)
        found = [f"{int(m1) * 60 + int(s1)} - {int(m2) * 60 + int(s2)}"]
    if not found:
        found = re.findall(rf"{_NUM}(?!\.)", time_part)
        if len(found) == 1:
            found = [_radius_window(float(found[0]))]
        elif len(found) == 2:
            found = [f"{found[0]} - {found[1]}"]
    return found


def _paragraph_events(paragraph: str) -> tuple[list[Window], list[str]]:
    """E.T. Bench's ``extract_time_from_paragraph``: ``a - b`` spans split the captions."""
    paragraph = paragraph.lower()
    times = re.findall(rf"({_NUM})\s*-\s*({_NUM})", paragraph)
    windows = [[float(a), float(b)] for a, b in times]
    captions: list[str] = []
    if windows:
        rest = paragraph
        for span in re.findall(rf"({_NUM}\s*-\s*{_NUM})", paragraph):
            rest = rest.replace(span, "\n")
        captions = rest.replace("seconds", "").split("\n")
    else:
        starts = re.findall(rf"(?:start(?:ing)? time: ({_NUM})(?:s| seconds)?)", paragraph, re.DOTALL | re.I)
        ends = re.findall(rf"(?:end(?:ing)? time: ({_NUM})(?:s| seconds)?)", paragraph, re.DOTALL | re.I)
        if starts and ends:
            windows = [[float(a), float(b)] for a, b in zip(starts, ends)]
            captions = re.findall(r"description: (.*)", paragraph) or re.findall(r"\*\s*(.*)", paragraph)
        elif re.search(rf"start time ({_NUM}), end time ({_NUM})", paragraph):
            raise ValueError("E.T. Bench rejects 'start time a, end time b' answers")
    captions = [c.strip().strip(", ").rstrip() for c in captions if len(c) > 5]
    size = min(len(windows), len(captions))
    return windows[:size], captions[:size]


def _first_line_event(answer: str) -> tuple[list[Window], list[str]]:
    """E.T. Bench's fallback: one event from the first line (or sentence) whose time part reads."""
    if "\n" in answer:
        lines = [c for c in answer.split("\n") if len(c) > 7]
    else:
        lines = [c + "." for c in answer.split(".") if len(c) > 7]
    for line in lines:
        parts = [p.strip(",") for p in line.split("seconds")]
        try:
            found = _fallback_time(parts[0])
            if not found:
                continue
            bounds = found[0].split("-")
            window = [round(float(bounds[0].strip()), 2), round(float(bounds[1].strip()), 2)]
        except (ValueError, IndexError):
            continue
        return [window], [parts[-1].strip()]
    return [], []


def etbench_dense_captions(answer: str) -> tuple[list[Window], list[str]] | None:
    """Timed captions in an answer, as E.T. Bench's ``dvc_format`` reads them; ``None`` if none."""
    try:
        windows, captions = _paragraph_events(answer)
    except ValueError:
        return None
    if not windows:
        windows, captions = _first_line_event(answer)
    if not windows:
        return None
    return [sorted(w) for w in windows], captions


def etbench_point(answer: str) -> float | None:
    """The first (signed) number in an answer, E.T. Bench's VHD reading."""
    match = re.search(r"[-+]?\d*\.\d+|[-+]?\d+", answer)
    return float(match.group(0)) if match else None


def _option_text(index: int, option: Any) -> str:
    """E.T. Bench's option string for similarity: ``"(B) text"`` or ``"(B) s - e"``."""
    text = f"{option[0]} - {option[1]}" if isinstance(option, (list, tuple)) else option
    return f"({'ABCDE'[index]}) {text}"


def _most_similar_option(answer: str, options: Sequence[Any], similarity: Similarity) -> int:
    """Index of the option most similar to the answer (the first on ties)."""
    scores = [similarity(answer, _option_text(i, option)) for i, option in enumerate(options)]
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


def _is_letter_answer(text: str) -> bool:
    """A lone letter, or a letter followed by ``.``, ``,``, a space or ``)``."""
    return len(text) == 1 or text[1] in (".", ",", " ", ")")


def choice_outcome(answer: str, options: Sequence[Any], target: int,
                   similarity: Similarity | None) -> tuple[bool, bool, bool]:
    """(hit, failed, unscored) of a RAR/ECA/RVQ answer, as E.T. Bench's ``rvq_eval`` decides.

    A bracketed letter ``(b)`` anywhere, then a leading letter (after an optional
    "best option:" and "("), is a hit when it names the answer; a wrong letter falls
    through to sentence similarity with the options, which can still hit. ``failed``
    means no letter was found at all (or the answer is empty); ``unscored`` means the
    similarity fallback was needed but no model was given (then it is not a hit).
    """
    letters, matched = "abcde"[: len(options)], False
    bracketed = re.search(r"\(([A-Za-z])\)", answer)
    if bracketed:
        matched = True
        if bracketed.group(1).lower() in letters and letters.index(bracketed.group(1).lower()) == target:
            return True, False, False
    text = answer.lower()
    text = (text[12:] if text.startswith("best option:") else text).lstrip().lstrip("(").lstrip()
    if not text:
        return False, True, False
    if _is_letter_answer(text):
        matched = True
        if text[0] in letters and letters.index(text[0]) == target:
            return True, False, False
    if similarity is None:
        return False, not matched, True
    return _most_similar_option(text, options, similarity) == target, not matched, False


def grounded_choice_outcome(answer: str, options: Sequence[Any], target: int,
                            similarity: Similarity | None) -> tuple[bool, bool, bool]:
    """(hit, failed, unscored) of a GVQ answer's option, as E.T. Bench's ``gvq_eval`` decides.

    Unlike ``choice_outcome`` only a leading letter counts, a wrong letter is final, and
    the similarity fallback sees the answer in its original case.
    """
    text = answer[12:] if answer.lower().startswith("best option:") else answer
    text = text.lstrip().lstrip("(").lstrip()
    letters = "abcde"[: len(options)]
    if not text:
        return False, True, False
    if _is_letter_answer(text) and text[0].lower() in letters:
        return letters.index(text[0].lower()) == target, False, False
    if similarity is None:
        return False, False, True
    return _most_similar_option(text, options, similarity) == target, False, False


# ---------------------------------------------------------------------------------------
# Per-sample scores
# ---------------------------------------------------------------------------------------

COLUMNS: tuple[str, ...] = (
    ("failed", "parsed", "iou", "score", "unscored")
    + tuple(f"{kind}@{t}" for kind in ("hit", "precision", "recall") for t in THRESHOLDS)
    + tuple(f"{key}@{t}" for key in CAPTION_KEYS for t in THRESHOLDS)
)
_COLUMN = {name: i for i, name in enumerate(COLUMNS)}


def etbench_iou(pred: Sequence[Window], gt: Sequence[Window]) -> torch.Tensor:
    """``(G, P)`` float32 IoUs, as E.T. Bench gets them from float32 tensors."""
    as_float32 = lambda w: torch.tensor(w, dtype=torch.float32).double()  # noqa: E731
    return temporal_iou(as_float32(gt), as_float32(pred)).float()


def score_window_answer(answer: str, gt: Sequence[Window]) -> dict[str, float]:
    """TVG/EPM/TEM (and GVQ's window): IoU of the first window with the best ground truth."""
    windows = etbench_windows(answer)
    if windows is None:
        return {"failed": 1.0}
    iou = float(etbench_iou(windows[:1], gt).max())
    return {"iou": iou, **{f"hit@{t}": float(iou >= t) for t in THRESHOLDS}}


def score_highlight(answer: str, gt: Sequence) -> dict[str, float]:
    """VHD: a hit when the first number lies in some annotator's window (ends included)."""
    point = etbench_point(answer)
    if point is None:
        return {"failed": 1.0}
    annotators = gt if isinstance(gt[0][0], (list, tuple)) else [gt]
    return {"score": float(any(w[0] <= point <= w[1] for ann in annotators for w in ann))}


def score_localization(answer: str, gt: Sequence[Window]) -> dict[str, float]:
    """TAL: per threshold, F1 of "some partner with IoU >= t" precision and recall (float32)."""
    windows = etbench_windows(answer)
    if windows is None:
        return {"failed": 1.0}
    iou, out = etbench_iou(windows, gt), {}
    for t in THRESHOLDS:
        if iou.max() < t:
            continue
        recall = (iou.amax(dim=1) >= t).float().mean().item()
        precision = (iou.amax(dim=0) >= t).float().mean().item()
        out[f"hit@{t}"] = 2 * precision * recall / (precision + recall)
    return out


def _second_mask(windows: Sequence[Window], length: int = 1000) -> np.ndarray:
    """E.T. Bench's 1 s bins: ``[max(0, round(s)), round(e))`` set, as Python slicing does."""
    mask = np.zeros(length, dtype=bool)
    for start, end in windows:
        mask[max(0, round(start)) : round(end)] = True
    return mask


def score_summarization(answer: str, gt: Sequence[Window]) -> dict[str, float]:
    """EVS: F1 of the seconds covered by the predicted windows against the ground truth."""
    windows = etbench_windows(answer)
    if windows is None:
        return {"failed": 1.0}
    truth, pred = _second_mask(gt), _second_mask(windows)
    tp, fp, fn = int((truth & pred).sum()), int((pred & ~truth).sum()), int((truth & ~pred).sum())
    if tp == 0:
        return {"parsed": 1.0, "score": 0.0}
    recall, precision = tp / (tp + fn), tp / (tp + fp)
    return {"parsed": 1.0, "score": 2 * precision * recall / (precision + recall)}


def caption_scores(refs: list[list[str]], hyps: list[str], meteor: Callable | None,
                   sentsim: Callable | None) -> dict[str, float]:
    """One video's caption metrics over its (reference, hypothesis) pairs, E.T. Bench's set."""
    out = dict(zip(CAPTION_KEYS[:4], bleu(refs, hyps)))
    out["ROUGE_L"], out["CIDEr"] = rouge_l(refs, hyps), cider(refs, hyps)
    if meteor is not None:
        out["METEOR"] = meteor(refs, hyps)
    if sentsim is not None:
        out["SentSim"] = sentsim(refs, hyps)
    return out


def score_dense_captions(answer: str, gt: Sequence[Window], gt_captions: Sequence[str],
                         meteor: Callable | None, sentsim: Callable | None) -> dict[str, float]:
    """DVC/SLC for one video: detection precision/recall (IoU ``>`` t) and caption scores
    over predictions paired with ground truths of IoU ``>=`` t, per threshold."""
    parsed = etbench_dense_captions(answer)
    if parsed is None:
        return {"failed": 1.0}
    windows, captions = parsed[0][:MAX_PROPOSALS], parsed[1][:MAX_PROPOSALS]
    iou = densevid_iou(windows, gt, sort=False)
    pred_tok = [ptb_tokenize(remove_nonascii(c)) for c in captions]
    gt_tok = [ptb_tokenize(remove_nonascii(c)) for c in gt_captions]
    out = {"parsed": 1.0}
    for t in THRESHOLDS:
        out[f"precision@{t}"], out[f"recall@{t}"] = detection_precision_recall(iou, t)
        scores = caption_scores(*matched_pairs(iou, pred_tok, gt_tok, t), meteor, sentsim)
        out.update({f"{key}@{t}": value for key, value in scores.items()})
    return out


def _windows(value: Any, where: str, single: bool = False) -> list[Window]:
    """Ground-truth windows of a sample, validated: one ``[s, e]`` or a non-empty list of them."""
    items = [value] if single else value
    ok = isinstance(items, (list, tuple)) and len(items) > 0
    ok = ok and all(isinstance(w, (list, tuple)) and len(w) == 2 and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) for x in w) for w in items)
    if not ok:
        shape = "[start, end]" if single else "a non-empty list of [start, end]"
        raise ValueError(f"{where} must be {shape}, got {value!r}")
    return [[float(a), float(b)] for a, b in items]


def _field(sample: Mapping[str, Any], key: str) -> Any:
    if key not in sample:
        raise ValueError(f"missing field {key!r} (task {sample.get('task')!r})")
    return sample[key]


def _options_and_target(sample: Mapping[str, Any]) -> tuple[list, int]:
    """``o`` and ``p`` of a choice sample; E.T. Bench only knows 4 or 5 options."""
    options, target = _field(sample, "o"), _field(sample, "p")
    if not isinstance(options, list) or len(options) not in (4, 5):
        raise ValueError(f"'o' must list 4 or 5 options, got {options!r}")
    if not isinstance(target, int) or isinstance(target, bool):
        raise ValueError(f"'p' must be an option index, got {target!r}")
    return options, target


# ---------------------------------------------------------------------------------------
# Group summaries, E.T. Bench's ``*_eval`` functions over per-sample columns
# ---------------------------------------------------------------------------------------


def _column(table: np.ndarray, name: str) -> np.ndarray:
    return table[:, _COLUMN[name]]


def _head(table: np.ndarray) -> dict[str, float]:
    return {"Total": len(table), "Failed": int(_column(table, "failed").sum())}


def _share(table: np.ndarray, name: str) -> float:
    """Column sum over all samples of the group, rounded to 5 decimals."""
    return round(float(_column(table, name).sum()) / len(table), 5)


def _recall_block(table: np.ndarray, prefix: str, mean_key: str) -> dict[str, float]:
    """``mIoU``, ``<prefix>@t`` (hits over all samples) and their mean (of unrounded values)."""
    recall = [float(_column(table, f"hit@{t}").sum()) / len(table) for t in THRESHOLDS]
    out = {"mIoU": _share(table, "iou")}
    out.update({f"{prefix}@{t}": round(r, 5) for r, t in zip(recall, THRESHOLDS)})
    return {**out, mean_key: round(sum(recall) / len(recall), 5)}


def _summarize_grounding(metric: ETBench, table: np.ndarray, videos: list[int]) -> dict[str, float]:
    """TVG/EPM (``tvg_eval``): recalls reported under E.T. Bench's ``F1`` keys."""
    return {**_head(table), **_recall_block(table, "F1", "F1")}


def _summarize_tem(metric: ETBench, table: np.ndarray, videos: list[int]) -> dict[str, float]:
    return {**_head(table), **_recall_block(table, "R", "mRec")}


def _summarize_highlight(metric: ETBench, table: np.ndarray, videos: list[int]) -> dict[str, float]:
    return {**_head(table), "F1": _share(table, "score")}


def _summarize_localization(metric: ETBench, table: np.ndarray, videos: list[int]) -> dict[str, float]:
    f1 = [float(_column(table, f"hit@{t}").sum()) / len(table) for t in THRESHOLDS]
    out = {**_head(table), **{f"F1@{t}": round(f, 5) for f, t in zip(f1, THRESHOLDS)}}
    return {**out, "F1": round(sum(f1) / len(f1), 5)}


def _summarize_summarization(metric: ETBench, table: np.ndarray, videos: list[int]) -> dict[str, float]:
    """EVS: the mean F1 over answers that parsed (not over all samples), 0 if none did."""
    parsed = _column(table, "parsed") > 0
    f1 = float(_column(table, "score")[parsed].sum()) / int(parsed.sum()) if parsed.any() else 0
    return {**_head(table), "F1": round(f1, 5)}


def _summarize_choice(metric: ETBench, table: np.ndarray, videos: list[int]) -> dict[str, float]:
    return {**_head(table), "Acc": _share(table, "score")}


def _summarize_grounded_choice(metric: ETBench, table: np.ndarray, videos: list[int]) -> dict[str, float]:
    return {**_head(table), **_recall_block(table, "R", "mRec"), "Acc": _share(table, "score")}


def _summarize_captioning(metric: ETBench, table: np.ndarray, videos: list[int]) -> dict[str, float]:
    """DVC/SLC: results keyed by video (a later parsed answer replaces an earlier one);
    precision and recall are scaled by the share of samples with a parsed answer."""
    latest = {v: row for v, row in zip(videos, table) if row[_COLUMN["parsed"]] > 0}
    rows = np.array(list(latest.values())).reshape(-1, len(COLUMNS))
    scale = len(latest) / len(table)

    def mean(name: str) -> float:
        return float(np.mean(_column(rows, name))) if len(rows) else 0.0

    out, f1 = _head(table), []
    for t in THRESHOLDS:
        recall, precision = mean(f"recall@{t}") * scale, mean(f"precision@{t}") * scale
        f1.append(0 if precision + recall == 0 else 2 * precision * recall / (precision + recall))
        out[f"F1@{t}"] = round(f1[-1], 5)
    out["F1"] = round(sum(f1) / len(f1), 5)
    for key in metric.caption_keys:
        per_t = [mean(f"{key}@{t}") for t in THRESHOLDS]
        out[key] = round(sum(per_t) / len(per_t), 5)
    return out


# ---------------------------------------------------------------------------------------
# The metric
# ---------------------------------------------------------------------------------------

_GROUP_BYTES = 256
_EMBEDDERS: dict[tuple[str, str], Any] = {}


def _encode_group(task: str, source: str) -> torch.Tensor:
    """``task``/``source`` as fixed-width bytes, so groups survive a DDP ``cat`` sync."""
    raw = f"{task}\x00{source}".encode()
    if len(raw) > _GROUP_BYTES:
        raise ValueError(f"task/source name longer than {_GROUP_BYTES} bytes: {task!r}/{source!r}")
    return torch.tensor(list(raw.ljust(_GROUP_BYTES, b"\x00")), dtype=torch.uint8)


def _decode_group(code: torch.Tensor) -> tuple[str, str]:
    task, source = bytes(code.tolist()).rstrip(b"\x00").decode().split("\x00", 1)
    return task, source


def _video_id(name: Any) -> int:
    """A stable 63-bit id of a video name (E.T. Bench keys DVC results by video)."""
    return int.from_bytes(hashlib.blake2b(str(name).encode(), digest_size=8).digest(), "big") >> 1


class ETBench(Metric):
    """All E.T. Bench tasks, scored per sample and grouped by task and source.

    ``update`` takes submission samples (dicts with ``task``, ``source``, the ground-truth
    fields ``tgt``/``p``/``o``/``g``/``video`` their task needs, and the answer ``a``).
    ``compute`` returns ``{task: {source: {"Total", "Failed", <metrics>}}}`` exactly as
    E.T. Bench's ``compute_metrics.py`` writes ``metrics.json`` (fractions, 5 decimals).

    Sentence similarity (DVC/SLC ``SentSim`` and the option fallback of RAR/ECA/RVQ/GVQ)
    needs ``sim_model``, a local all-MiniLM-L6-v2 folder. Without it ``SentSim`` is left
    out, and answers that would need the fallback count as wrong and are reported in an
    extra ``Unscored`` count. METEOR follows ``captioning.resolve_meteor``.

    Args:
        sim_model: sentence-transformers model folder, or ``None``.
        meteor: ``None`` auto-detects Java and the jar, ``True`` requires, ``False`` skips.
        meteor_jar: path of ``meteor-1.5.jar``.
        device: device for the sentence model.
    """

    full_state_update = False

    def __init__(self, sim_model: str | None = None, meteor: bool | None = None,
                 meteor_jar: str | None = None, device: str = "cpu", **kwargs) -> None:
        super().__init__(**kwargs)
        self.sim_model, self.sim_device = sim_model, device
        self.meteor_jar = resolve_meteor(meteor, meteor_jar)
        self.add_state("records", [], dist_reduce_fx="cat")
        self.add_state("groups", [], dist_reduce_fx="cat")
        self.add_state("videos", [], dist_reduce_fx="cat")

    @property
    def caption_keys(self) -> tuple[str, ...]:
        """The caption metrics this instance reports (METEOR/SentSim only when available)."""
        skip = {"METEOR"} if self.meteor_jar is None else set()
        skip |= {"SentSim"} if self.sim_model is None else set()
        return tuple(k for k in CAPTION_KEYS if k not in skip)

    def _embedder(self):
        from groundlight.metrics.sentence_sim import SentenceEmbedder

        key = (str(self.sim_model), self.sim_device)
        if key not in _EMBEDDERS:
            _EMBEDDERS[key] = SentenceEmbedder(self.sim_model, device=self.sim_device)
        return _EMBEDDERS[key]

    def _similarity(self) -> Similarity | None:
        return None if self.sim_model is None else self._embedder().similarity

    def _sentsim(self) -> Callable | None:
        if self.sim_model is None:
            return None
        return lambda refs, hyps: float(self._embedder().paired([r[0] for r in refs], hyps).mean())

    def _meteor(self) -> Callable | None:
        return None if self.meteor_jar is None else (lambda r, h: shared_meteor(self.meteor_jar).score(r, h)[0])

    def score_sample(self, sample: Mapping[str, Any]) -> dict[str, float]:
        """The per-sample columns ``compute`` aggregates for this sample's task."""
        task, answer = _field(sample, "task"), _field(sample, "a")
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; E.T. Bench has {sorted(TASKS)}")
        if not isinstance(answer, str):
            raise ValueError(f"answer 'a' must be a string, got {answer!r}")
        return getattr(self, TASKS[task][0])(sample, answer)

    def _score_grounding(self, sample: Mapping[str, Any], answer: str) -> dict[str, float]:
        return score_window_answer(answer, _windows(_field(sample, "tgt"), "'tgt'", single=True))

    def _score_tem(self, sample: Mapping[str, Any], answer: str) -> dict[str, float]:
        return score_window_answer(answer, _windows(_field(sample, "tgt"), "'tgt'"))

    def _score_highlight(self, sample: Mapping[str, Any], answer: str) -> dict[str, float]:
        gt = _field(sample, "tgt")
        nested = isinstance(gt, list) and gt and isinstance(gt[0], list) and gt[0] and isinstance(gt[0][0], list)
        return score_highlight(answer, [_windows(a, "'tgt'") for a in gt] if nested else _windows(gt, "'tgt'"))

    def _score_localization(self, sample: Mapping[str, Any], answer: str) -> dict[str, float]:
        return score_localization(answer, _windows(_field(sample, "tgt"), "'tgt'"))

    def _score_summarization(self, sample: Mapping[str, Any], answer: str) -> dict[str, float]:
        return score_summarization(answer, _windows(_field(sample, "tgt"), "'tgt'"))

    def _score_captioning(self, sample: Mapping[str, Any], answer: str) -> dict[str, float]:
        gt, captions = _windows(_field(sample, "tgt"), "'tgt'"), _field(sample, "g")
        _field(sample, "video")
        if not isinstance(captions, list) or len(captions) != len(gt) or not all(isinstance(c, str) for c in captions):
            raise ValueError(f"'g' must hold one caption string per 'tgt' window, got {captions!r}")
        return score_dense_captions(answer, gt, captions, self._meteor(), self._sentsim())

    def _score_choice(self, sample: Mapping[str, Any], answer: str) -> dict[str, float]:
        options, target = _options_and_target(sample)
        hit, failed, unscored = choice_outcome(answer, options, target, self._similarity())
        return {"score": float(hit), "failed": float(failed), "unscored": float(unscored)}

    def _score_grounded_choice(self, sample: Mapping[str, Any], answer: str) -> dict[str, float]:
        options, target = _options_and_target(sample)
        gt = _windows(_field(sample, "tgt"), "'tgt'", single=True)
        hit, failed, unscored = grounded_choice_outcome(answer, options, target, self._similarity())
        out = {"failed": float(failed), "unscored": float(unscored)}
        if hit:
            out.update(score_window_answer(answer, gt), score=1.0)
        return out

    def update(self, samples: Sequence[Mapping[str, Any]]) -> None:
        """Score and store samples; a malformed one raises ``ValueError`` naming its position."""
        for position, sample in enumerate(samples):
            try:
                scores = self.score_sample(sample)
                group = _encode_group(str(sample["task"]), str(_field(sample, "source")))
            except ValueError as err:
                raise ValueError(f"sample {position}: {err}") from None
            row = torch.zeros(1, len(COLUMNS), dtype=torch.float64)
            for name, value in scores.items():
                row[0, _COLUMN[name]] = value
            self.records.append(row)
            self.groups.append(group[None])
            self.videos.append(torch.tensor([_video_id(sample.get("video"))], dtype=torch.long))

    def compute(self) -> dict[str, dict[str, dict[str, float]]]:
        if not self.records:
            return {}
        records, groups, videos = (dim_zero_cat(s) for s in (self.records, self.groups, self.videos))
        order: dict[tuple[str, str], list[int]] = {}
        for i, code in enumerate(groups):
            order.setdefault(_decode_group(code), []).append(i)
        out: dict[str, dict[str, dict[str, float]]] = {}
        for (task, source), rows in order.items():
            table = records[rows].numpy()
            summary = TASKS[task][1](self, table, videos[rows].tolist())
            if table[:, _COLUMN["unscored"]].sum() > 0:
                summary["Unscored"] = int(table[:, _COLUMN["unscored"]].sum())
            out.setdefault(task, {})[source] = summary
        return out

# Per task: the ``ETBench`` method scoring one sample, and the function summarising a group.
TASKS: dict[str, tuple[str, Callable]] = {
    "tvg": ("_score_grounding", _summarize_grounding), "epm": ("_score_grounding", _summarize_grounding),
    "tem": ("_score_tem", _summarize_tem), "vhd": ("_score_highlight", _summarize_highlight),
    "tal": ("_score_localization", _summarize_localization),
    "evs": ("_score_summarization", _summarize_summarization),
    "dvc": ("_score_captioning", _summarize_captioning), "slc": ("_score_captioning", _summarize_captioning),
    "rar": ("_score_choice", _summarize_choice), "eca": ("_score_choice", _summarize_choice),
    "rvq": ("_score_choice", _summarize_choice), "gvq": ("_score_grounded_choice", _summarize_grounded_choice),
}


# The official log's "Overall" row: which task and metric each column averages.
OVERALL_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("RAR (Acc)", "rar", "Acc"), ("EVC (Acc)", "eca", "Acc"), ("RVQ (Acc)", "rvq", "Acc"),
    ("TVG (F1)", "tvg", "F1"), ("EPM (F1)", "epm", "F1"), ("TAL (F1)", "tal", "F1"),
    ("EVS (F1)", "evs", "F1"), ("VHD (F1)", "vhd", "F1"), ("DVC (F1)", "dvc", "F1"),
    ("DVC (Sim)", "dvc", "SentSim"), ("SLC (F1)", "slc", "F1"), ("SLC (Sim)", "slc", "SentSim"),
    ("TEM (Rec)", "tem", "mRec"), ("GVQ (Rec)", "gvq", "mRec"),
)
MERGED_COLUMNS: dict[str, tuple[str, ...]] = {
    "Acc (ref)": ("RAR (Acc)", "EVC (Acc)", "RVQ (Acc)"),
    "F1 (gnd)": ("TVG (F1)", "EPM (F1)", "TAL (F1)", "EVS (F1)", "VHD (F1)"),
    "F1 (cap)": ("DVC (F1)", "SLC (F1)"),
    "Sim (cap)": ("DVC (Sim)", "SLC (Sim)"),
    "Rec (com)": ("TEM (Rec)", "GVQ (Rec)"),
}


def etbench_summary(results: Mapping[str, Mapping[str, Mapping[str, float]]]) -> dict[str, dict[str, float]]:
    """The "Overall" and "Merged" rows of E.T. Bench's log, in percent with one decimal.

    A task's value is the mean over its sources, rounded to 5 decimals first, as there.
    Columns whose task is absent are left out, and a merged column needs all of its
    tasks (the official script misaligns or crashes on partial submissions).
    """
    task_means: dict[str, float] = {}
    for label, task, key in OVERALL_COLUMNS:
        values = [metrics[key] for metrics in results.get(task, {}).values() if key in metrics]
        if values:
            task_means[label] = round(sum(values) / len(values), 5)
    overall = {label: round(value * 100, 1) for label, value in task_means.items()}
    merged = {}
    for label, members in MERGED_COLUMNS.items():
        if all(m in task_means for m in members):
            merged[label] = round(sum(task_means[m] for m in members) * 100 / len(members), 1)
    return {"Overall": overall, "Merged": merged}
