"""Caption scores as the COCO caption toolkit computes them, and dense-captioning metrics.

Tokenisation mirrors what the toolkit's ``PTBTokenizer`` (Stanford CoreNLP 3.4.1 run with
``-preserveLines -lowerCase``, then punctuation tokens dropped) produces, in pure Python
so no Java runtime is needed. It was checked token for token against the Java tokenizer
on ordinary caption text; known differences are listed in ``docs/EVALUATION.md``.

BLEU-1..4 (corpus level, ``closest`` reference length), ROUGE-L (beta 1.2) and CIDEr
(the toolkit's ``Cider``: tf-idf over the scored set, clipping, Gaussian length penalty
with sigma 6, times 10) are pure Python. METEOR 1.5 has no Python port; ``MeteorScorer``
drives the original jar when ``java`` and the jar are present, and callers skip METEOR
(and SODA_c, which is built on it) otherwise.

``DenseCaptioning`` is the ActivityNet/YouCook2 evaluation as TimeChat's
``metrics/dvc/eval_dvc.py`` (a port of densevid_eval via Vid2Seq) computes it.
"""

from __future__ import annotations

import math
import random
import re
import shutil
import string
import subprocess
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torchmetrics import Metric

from groundlight.metrics.temporal import temporal_intersection

# Tokens the toolkit drops after tokenising. Brackets come out of the tokenizer as
# ``-LRB-`` but are lower-cased to ``-lrb-`` first, so they survive the filter there too.
PTB_PUNCTUATION = frozenset(["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-",
                             ".", "?", "!", ",", ":", "-", "--", "...", ";"])

# Words CoreNLP 3.4.1 keeps a trailing period on (probed against the jar).
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st jr sr vs etc inc ltd co corp ft ave mt gen sen rep gov cf al "
    "jan feb mar apr jun jul aug sep sept oct nov dec mon tue wed thu fri capt col lt sgt "
    "rev hon adm cmdr cpl det insp maj pvt supt bros est dept univ assn messrs mme mlle "
    "esq calif conn fla mich minn tenn va wis ariz colo ga ind kan ky md mo mont neb nev "
    "okla wyo vt bldg blvd rd mfg pty sq ph pres".split()
)
_SPLIT_WORDS = {"cannot": ("can", "not"), "gonna": ("gon", "na"), "gotta": ("got", "ta"),
                "wanna": ("wan", "na"), "lemme": ("lem", "me"), "gimme": ("gim", "me"),
                "y'all": ("y'", "all")}
_BRACKETS = {"(": "-lrb-", ")": "-rrb-", "[": "-lsb-", "]": "-rsb-", "{": "-lcb-", "}": "-rcb-"}
_UNICODE = {"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2018": "'", "\u2019": "'",
            "\u2014": " -- ", "\u2013": " -- ", "\u2026": " ... ", "\u00bc": "1/4",
            "\u00bd": "1/2", "\u00be": "3/4", "\u2153": "1/3", "\u2154": "2/3", "\u215b": "1/8"}
# Split points: stand-alone symbols, and a comma/colon unless a digit follows (",5" and
# ":30" stay tokens of their own, "10:30" and "1,000" stay whole).
_ALWAYS_ALONE = re.compile(r"""([!?]+|\*+|["()\[\]{};=~^|\\%$#]|--+|[,:](?!\d))|(?<=\D)(?=[,:]\d)""")
_CLITIC = re.compile(r"^(.+?)(n't|'s|'m|'re|'ve|'ll|'d)$", re.IGNORECASE)
_NUMBER_UNIT = re.compile(r"(\d+(?:[.:,]\d+)+)([A-Za-z]+)")
_ACRONYM = re.compile(r"[A-Za-z](?:\.[A-Za-z])+")


def _symbol_token(piece: str) -> str:
    """The tokenizer's spelling of a stand-alone symbol (quotes and dashes normalised)."""
    if piece == '"':
        return "''"
    if piece.startswith("--"):
        return "--"
    return _BRACKETS.get(piece, piece)


def _keeps_period(word: str, next_piece: str) -> bool:
    """Whether CoreNLP leaves the trailing period on ``word``: abbreviations, initials, and
    any word whose period is directly followed by ``;``, ``,`` or ``:`` (``"waits.;"``)."""
    if word.lower() in _ABBREVIATIONS or _ACRONYM.fullmatch(word) or next_piece in (";", ",", ":"):
        return True
    return len(word) == 1 and word.isalpha() and not next_piece.lstrip()[:1].isupper()


def _split_word(word: str) -> list[str]:
    """Clitics (``do n't``, ``it 's``) and fused words (``can not``) split off a bare word."""
    if word.lower() in _SPLIT_WORDS:
        return list(_SPLIT_WORDS[word.lower()])
    unit = _NUMBER_UNIT.fullmatch(word)
    if unit:
        return [unit.group(1), unit.group(2)]
    tail: list[str] = []
    while match := _CLITIC.match(word):
        word, clitic = match.group(1), match.group(2)
        tail.insert(0, clitic)
    return [word, *tail]


_KEEPS_LEAD = re.compile(r"[-+]\d|'\d|'(s|m|d|re|ve|ll)$", re.IGNORECASE)  # "-5", "'90s", "'s"


def _peel_head(piece: str) -> tuple[list[str], str]:
    """A leading ellipsis, quotes, hyphens and plus signs split off the front of ``piece``."""
    head: list[str] = []
    if piece.startswith("...") and piece.lstrip("."):
        head.append("...")
        piece = piece.lstrip(".")
    while len(piece) > 1 and piece[0] in "`'-+" and not _KEEPS_LEAD.match(piece):
        head.append(piece[0])
        piece = piece[1:]
    return head, piece


def _peel_tail(piece: str, next_piece: str) -> tuple[str, list[str]]:
    """Trailing ellipses, quotes, hyphens, plus signs and sentence periods split off the end."""
    tail: list[str] = []
    while len(piece) > 1:
        if piece.endswith("..."):
            tail.insert(0, "...")
            piece = piece.rstrip(".") or "."
            if len(piece) == 1 and piece.isalpha():  # CoreNLP reads "a..." as "a." + "..."
                return piece + ".", tail
        elif piece[-1] in "`'-+" or (piece[-1] == "." and not _keeps_period(piece[:-1], next_piece)):
            tail.insert(0, piece[-1])
            piece = piece[:-1]
        else:
            break
    return piece, tail


def _strip_piece(piece: str, next_piece: str) -> list[str]:
    """The tokens of one piece: peeled front, the split word, peeled end."""
    head, piece = _peel_head(piece)
    piece, tail = _peel_tail(piece, next_piece)
    return head + _split_word(piece) + tail


def ptb_tokenize(text: str) -> str:
    """Lower-cased PTB tokens of ``text`` without punctuation, joined by single spaces.

    >>> ptb_tokenize("He didn't add 1,000 (large) eggs... to the U.S. bowl.")
    "he did n't add 1,000 -lrb- large -rrb- eggs to the u.s. bowl"
    """
    for char, replacement in _UNICODE.items():
        text = text.replace(char, replacement)
    chunks = text.split()
    tokens: list[str] = []
    for index, chunk in enumerate(chunks):
        next_chunk = chunks[index + 1] if index + 1 < len(chunks) else ""
        pieces = [p for p in _ALWAYS_ALONE.split(chunk) if p]
        for i, piece in enumerate(pieces):
            if _ALWAYS_ALONE.fullmatch(piece):
                tokens.append(_symbol_token(piece))
            else:
                # the next piece of the same chunk is adjacent; a next chunk follows a space
                following = pieces[i + 1] if i + 1 < len(pieces) else " " + next_chunk
                tokens.extend(_strip_piece(piece, following))
    return " ".join(t.lower() for t in tokens if t and t.lower() not in PTB_PUNCTUATION)


def remove_nonascii(text: str) -> str:
    """Each non-ASCII character replaced by a space, as E.T. Bench does before tokenising."""
    return "".join(c if ord(c) < 128 else " " for c in text)


def _ngrams(words: Sequence[str], max_n: int = 4) -> Counter:
    """Counts of every 1..max_n-gram of ``words``."""
    return Counter(tuple(words[i : i + k]) for k in range(1, max_n + 1) for i in range(len(words) - k + 1))


def bleu(refs: Sequence[Sequence[str]], hyps: Sequence[str], max_n: int = 4) -> list[float]:
    """Corpus BLEU-1..``max_n`` of tokenised ``hyps`` against their ``refs``.

    The toolkit's definition: clipped n-gram matches and guesses pooled over the corpus,
    the reference length closest to each hypothesis (ties to the shorter), the smoothing
    constants 1e-15 (numerator) and 1e-9 (denominator), and a brevity penalty when the
    pooled length ratio is below 1.
    """
    correct, guess, test_len, ref_len = [0] * max_n, [0] * max_n, 0, 0
    for hyp, ref_group in zip(hyps, refs):
        words = hyp.split()
        ref_lengths = [len(r.split()) for r in ref_group]
        test_len += len(words)
        ref_len += min((abs(n - len(words)), n) for n in ref_lengths)[1]
        max_ref = Counter()
        for ref in ref_group:
            max_ref |= _ngrams(ref.split(), max_n)
        for gram, count in _ngrams(words, max_n).items():
            correct[len(gram) - 1] += min(max_ref[gram], count)
        for k in range(max_n):
            guess[k] += max(0, len(words) - k)
    scores, product = [], 1.0
    for k in range(max_n):
        product *= (correct[k] + 1e-15) / (guess[k] + 1e-9)
        scores.append(product ** (1.0 / (k + 1)))
    ratio = (test_len + 1e-15) / (ref_len + 1e-9)
    if ratio < 1:
        scores = [s * math.exp(1 - 1 / ratio) for s in scores]
    return scores


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token lists."""
    previous = [0] * (len(b) + 1)
    for token in a:
        current = [0]
        for j, other in enumerate(b):
            current.append(previous[j] + 1 if token == other else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(refs: Sequence[Sequence[str]], hyps: Sequence[str], beta: float = 1.2) -> float:
    """Mean ROUGE-L F (beta 1.2) over pairs; best precision and best recall over references.

    Tokens come from ``split(" ")`` as in the toolkit, so an empty caption is one empty
    token (and two empty captions share it).
    """
    scores = []
    for hyp, ref_group in zip(hyps, refs):
        cand = hyp.split(" ")
        lcs = [(_lcs_length(r.split(" "), cand), len(r.split(" "))) for r in ref_group]
        prec = max(n / len(cand) for n, _ in lcs)
        rec = max(n / length for n, length in lcs)
        scores.append((1 + beta**2) * prec * rec / (rec + beta**2 * prec) if prec and rec else 0.0)
    return float(np.mean(np.array(scores)))


def _tfidf(counts: Counter, doc_freq: Counter, log_docs: float, max_n: int) -> tuple[list[dict], list[float], int]:
    """Per-order tf-idf vectors, their norms and the bigram count CIDEr uses as length."""
    vec: list[dict] = [{} for _ in range(max_n)]
    norm = [0.0] * max_n
    for gram, tf in counts.items():
        n = len(gram) - 1
        vec[n][gram] = float(tf) * (log_docs - np.log(max(1.0, doc_freq[gram])))
        norm[n] += vec[n][gram] ** 2
    return vec, [np.sqrt(v) for v in norm], sum(tf for gram, tf in counts.items() if len(gram) == 2)


def _cider_similarity(hyp: tuple, ref: tuple, max_n: int, sigma: float) -> np.ndarray:
    """Clipped cosine per n-gram order with CIDEr-D's Gaussian length penalty."""
    (vec_h, norm_h, len_h), (vec_r, norm_r, len_r) = hyp, ref
    val = np.array([0.0] * max_n)
    for n in range(max_n):
        for gram, weight in vec_h[n].items():
            val[n] += min(weight, vec_r[n].get(gram, 0.0)) * vec_r[n].get(gram, 0.0)
        if norm_h[n] != 0 and norm_r[n] != 0:
            val[n] /= norm_h[n] * norm_r[n]
        val[n] *= np.e ** (-(float(len_h - len_r) ** 2) / (2 * sigma**2))
    return val


def cider(refs: Sequence[Sequence[str]], hyps: Sequence[str], max_n: int = 4, sigma: float = 6.0) -> float:
    """The toolkit's CIDEr over the given set: document frequencies come from this set.

    With a single pair the idf is ``log(1) - log(1) = 0`` and the score is 0, as there.
    """
    ref_counts = [[_ngrams(r.split(), max_n) for r in group] for group in refs]
    doc_freq: Counter = Counter()
    for group in ref_counts:
        doc_freq.update(set().union(*[set(c) for c in group]))
    log_docs = np.log(float(len(ref_counts)))
    scores = []
    for hyp, group in zip(hyps, ref_counts):
        vec_h = _tfidf(_ngrams(hyp.split(), max_n), doc_freq, log_docs, max_n)
        total = np.array([0.0] * max_n)
        for counts in group:
            total += _cider_similarity(vec_h, _tfidf(counts, doc_freq, log_docs, max_n), max_n, sigma)
        scores.append(np.mean(total) / len(group) * 10.0)
    return float(np.mean(np.array(scores)))


def java_available() -> bool:
    """Whether a ``java`` executable is on ``PATH``."""
    return shutil.which("java") is not None


def find_meteor_jar(path: str | None = None) -> Path | None:
    """``path`` if given, else the ``meteor-1.5.jar`` an installed ``pycocoevalcap`` ships."""
    if path:
        return Path(path) if Path(path).is_file() else None
    from importlib.util import find_spec

    spec = find_spec("pycocoevalcap")
    if spec is None or not spec.submodule_search_locations:
        return None
    jar = Path(next(iter(spec.submodule_search_locations))) / "meteor" / "meteor-1.5.jar"
    return jar if jar.is_file() else None


class MeteorScorer:
    """METEOR 1.5 (``-l en -norm``) through the original jar's stdio protocol.

    Each pair is sent as a ``SCORE`` line and answered with its statistics; one ``EVAL``
    line with all statistics returns the per-pair scores and the pooled score.
    """

    def __init__(self, jar: str | Path, java: str = "java") -> None:
        command = [java, "-jar", "-Xmx2G", str(jar), "-", "-", "-stdio", "-l", "en", "-norm"]
        self._process = subprocess.Popen(command, cwd=Path(jar).parent, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self._lock = threading.Lock()

    def _ask(self, line: str, answers: int = 1) -> list[str]:
        self._process.stdin.write(f"{line}\n".encode())
        self._process.stdin.flush()
        return [self._process.stdout.readline().decode().strip() for _ in range(answers)]

    def score(self, refs: Sequence[Sequence[str]], hyps: Sequence[str]) -> tuple[float, list[float]]:
        """Pooled METEOR over all pairs, and the score of each pair."""
        with self._lock:
            stats = []
            for hyp, group in zip(hyps, refs):
                hyp = hyp.replace("|||", "").replace("  ", " ")
                stats.extend(self._ask(" ||| ".join(("SCORE", " ||| ".join(group), hyp))))
            answers = self._ask("EVAL ||| " + " ||| ".join(stats), len(hyps) + 1)
        return float(answers[-1]), [float(a) for a in answers[:-1]]

    def close(self) -> None:
        """Stop the Java process."""
        if self._process.poll() is None:
            self._process.stdin.close()
            self._process.kill()
            self._process.wait()


DVC_THRESHOLDS: tuple[float, ...] = (0.3, 0.5, 0.7, 0.9)


@dataclass
class TimedCaptions:
    """One video's captions, each with its ``[start, end]`` window in seconds."""

    windows: Sequence[Sequence[float]]
    captions: Sequence[str]


def densevid_iou(pred: Sequence[Sequence[float]], gt: Sequence[Sequence[float]], sort: bool = True) -> np.ndarray:
    """IoU ``(P, G)`` as densevid_eval computes it, with ``1e-8`` added to the union.

    The epsilon makes an exact 0.5 overlap fall just short of 0.5, so a ``>= 0.5`` test
    misses it there; zero-length pairs give 0. ``sort`` orders each window's two ends first.
    """
    p = torch.as_tensor(np.asarray(pred, dtype=np.float64).reshape(-1, 2))
    g = torch.as_tensor(np.asarray(gt, dtype=np.float64).reshape(-1, 2))
    if sort:
        p, g = p.sort(dim=1).values, g.sort(dim=1).values
    inter = temporal_intersection(p, g).numpy()
    hull = torch.maximum(p[:, None, 1], g[None, :, 1]) - torch.minimum(p[:, None, 0], g[None, :, 0])
    lengths = (p[:, 1] - p[:, 0])[:, None] + (g[:, 1] - g[:, 0])[None, :]
    return inter / (torch.minimum(hull, lengths).numpy() + 1e-8)


def detection_precision_recall(iou: np.ndarray, threshold: float) -> tuple[float, float]:
    """Share of predictions, and of ground truths, with some partner of IoU ``> threshold``."""
    hit = iou > threshold
    precision = hit.any(axis=1).sum() / max(iou.shape[0], 1)
    recall = hit.any(axis=0).sum() / iou.shape[1] if iou.shape[1] else 0.0
    return float(precision), float(recall)


def placeholder_reference(seed: str) -> str:
    """A random lower-case word (10-20 letters) standing in for "no matching caption".

    The official scripts draw it unseeded; seeding it with the prediction text keeps the
    result reproducible and independent of evaluation order. It never matches a token of
    the prediction, so only embedding similarity sees its letters.
    """
    rng = random.Random(seed)
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(10, 20)))


def matched_pairs(iou: np.ndarray, pred_captions: Sequence[str], gt_captions: Sequence[str],
                  threshold: float) -> tuple[list[list[str]], list[str]]:
    """(references, hypotheses) to score: each prediction with every ground truth of IoU ``>=``
    ``threshold``, in ground-truth order, or with a placeholder when it matches none."""
    refs, hyps = [], []
    for p, caption in enumerate(pred_captions):
        partners = [gt_captions[g] for g in np.flatnonzero(iou[p] >= threshold)]
        for reference in partners or [placeholder_reference(caption)]:
            refs.append([reference])
            hyps.append(caption)
    return refs, hyps


def soda_f_measure(iou: np.ndarray, scores: np.ndarray) -> float:
    """SODA_c's F-measure: the best order-preserving matching of ground truths to predictions.

    ``iou`` and ``scores`` are ``(G, P)``; the matching maximises the summed
    ``iou * score`` (dynamic programming), then precision divides by ``P`` and recall by ``G``.
    """
    weights = iou * scores
    num_gt, num_pred = weights.shape
    best = np.zeros((num_gt + 1, num_pred + 1))
    for i in range(1, num_gt + 1):
        for j in range(1, num_pred + 1):
            best[i, j] = max(best[i - 1, j], best[i, j - 1], best[i - 1, j - 1] + weights[i - 1, j - 1])
    precision, recall = best[-1, -1] / max(num_pred, 1), best[-1, -1] / max(num_gt, 1)
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


_METEOR_PROCESSES: dict[Path, MeteorScorer] = {}


def resolve_meteor(meteor: bool | None, jar: str | None = None) -> Path | None:
    """The METEOR jar to use: ``None`` when skipped (``meteor=False``, or auto and absent).

    Raises:
        RuntimeError: ``meteor=True`` but Java or the jar is missing.
    """
    if meteor is False:
        return None
    found = find_meteor_jar(jar)
    if found is not None and java_available():
        return found
    if meteor:
        raise RuntimeError("METEOR needs a `java` executable on PATH and meteor-1.5.jar "
                           "(pass its path, or pip install pycocoevalcap, which ships it)")
    return None


def shared_meteor(jar: Path) -> MeteorScorer:
    """One long-lived METEOR process per jar; metric objects stay picklable without it."""
    if jar not in _METEOR_PROCESSES:
        _METEOR_PROCESSES[jar] = MeteorScorer(jar)
    return _METEOR_PROCESSES[jar]


class DenseCaptioning(Metric):
    """Dense video captioning as TimeChat's ``eval_dvc.py`` (densevid_eval) scores it.

    Per video: ``Precision@t``/``Recall@t`` count predictions / ground truths having a
    partner of IoU strictly above ``t``; ``F1_Score`` is the harmonic mean of the
    video's mean precision and mean recall. For captions each prediction is paired with
    every ground truth of IoU ``>= t`` (or a placeholder), and ``CIDER``/``METEOR`` are
    computed over that video's pairs and averaged over ``t``. ``SODA_c`` (tIoU 0) uses
    METEOR of each ground truth against each prediction. All are then averaged over
    videos; a video without predictions scores 0 everywhere. ``compute`` returns
    fractions and ``n_preds``, the mean number of predictions per video.

    Args:
        thresholds: tIoU thresholds.
        meteor: ``None`` scores METEOR and SODA_c when Java and the jar are found,
            ``True`` requires them, ``False`` skips them.
        meteor_jar: path of ``meteor-1.5.jar`` (default: the one ``pycocoevalcap`` ships).
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, thresholds: Sequence[float] = DVC_THRESHOLDS, meteor: bool | None = None,
                 meteor_jar: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.meteor_jar = resolve_meteor(meteor, meteor_jar)
        caption_keys = ["CIDER"] + (["METEOR"] if self.meteor_jar else [])
        detection_keys = [f"{kind}@{t}" for t in self.thresholds for kind in ("Precision", "Recall")]
        self.keys = caption_keys + detection_keys + ["Precision_Mean", "Recall_Mean", "F1_Score"]
        self.keys += (["SODA_c"] if self.meteor_jar else []) + ["n_preds"]
        self.add_state("sums", torch.zeros(len(self.keys), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("videos", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: Sequence[TimedCaptions | None], targets: Sequence[TimedCaptions]) -> None:
        """Add videos; ``None`` marks a video the prediction file does not mention."""
        if len(preds) != len(targets):
            raise ValueError(f"{len(preds)} predictions for {len(targets)} videos")
        for pred, target in zip(preds, targets):
            scores = self.score_video(pred, target)
            self.sums += torch.tensor([scores[k] for k in self.keys], dtype=torch.float64)
            self.videos += 1

    def score_video(self, pred: TimedCaptions | None, target: TimedCaptions) -> dict[str, float]:
        """Every per-video value that ``compute`` averages."""
        pred = pred or TimedCaptions([], [])
        pred_tok = [ptb_tokenize(c) for c in pred.captions]
        gt_tok = [ptb_tokenize(c) for c in target.captions]
        iou = densevid_iou(pred.windows, target.windows)
        out: dict[str, float] = {}
        for name, scorer in self._caption_scorers().items():
            per_t = []
            for t in self.thresholds:
                refs, hyps = matched_pairs(iou, pred_tok, gt_tok, t)
                per_t.append(float(np.nan_to_num(scorer(refs, hyps))) if hyps else 0.0)
            out[name] = float(np.mean(per_t))
        out.update(self._detection(iou))
        if self.meteor_jar:
            out["SODA_c"] = self._soda(iou, pred_tok, gt_tok)
        out["n_preds"] = float(len(pred_tok))
        return out

    def _detection(self, iou: np.ndarray) -> dict[str, float]:
        """Precision/recall per threshold, their means, and the F1 of the two means."""
        out: dict[str, float] = {}
        for t in self.thresholds:
            out[f"Precision@{t}"], out[f"Recall@{t}"] = detection_precision_recall(iou, t)
        precision = sum(out[f"Precision@{t}"] for t in self.thresholds) / len(self.thresholds)
        recall = sum(out[f"Recall@{t}"] for t in self.thresholds) / len(self.thresholds)
        out["Precision_Mean"], out["Recall_Mean"] = precision, recall
        out["F1_Score"] = 2 * recall * precision / (recall + precision) if recall + precision > 0 else 0
        return out

    def _caption_scorers(self) -> dict:
        scorers = {"CIDER": cider}
        if self.meteor_jar:
            scorers["METEOR"] = lambda refs, hyps: shared_meteor(self.meteor_jar).score(refs, hyps)[0]
        return scorers

    def _soda(self, iou: np.ndarray, pred_tok: Sequence[str], gt_tok: Sequence[str]) -> float:
        if not pred_tok or not gt_tok:
            return 0.0
        refs = [[p] for _ in gt_tok for p in pred_tok]
        hyps = [g for g in gt_tok for _ in pred_tok]
        _, pair_scores = shared_meteor(self.meteor_jar).score(refs, hyps)
        scores = np.nan_to_num(np.array(pair_scores).reshape(len(gt_tok), len(pred_tok)))
        return soda_f_measure(iou.T, scores)

    def compute(self) -> dict[str, torch.Tensor]:
        return dict(zip(self.keys, self.sums / self.videos.clamp(min=1).double()))
