"""One evaluation with every kind of bad input injected: nothing crashes, and each fault is counted where it belongs.

The data directory holds moment-retrieval lines (Charades-STA) and multiple-choice records over a handful of tiny real
videos, repeated ``copies`` times: clean samples (mp4, mkv, webm, avi, MPEG-TS and a rotated phone clip, all of
which must decode), bad videos (a 200-byte stub, an empty file, a directory, a missing file, a file cut short, an
annotated duration the video does not have) and bad annotation records (NaN/inf times, paths leaving the data root,
bytes that are not UTF-8, more options than the prompt letters). The model's answers are scripted per sample, so
the parser faults (a malformed number, a negative time, a 30,000-digit run, an empty answer) are known exactly.

The run goes through the real CLI path (``lightning_main`` → ``trainer.test`` → ``RunSummary``) with
``on_bad_video: skip`` and ``on_bad_annotation: skip``; ``summary.json`` must count each injected fault by kind,
exactly, and ``groundlight eval`` on the run's records with repeated ids must count the same parse failures.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import av
import lightning as L
import numpy as np
import pytest

from groundlight.callbacks import RunSummary
from groundlight.cli import lightning_main
from groundlight.evaluate.cli import main as eval_main
from groundlight.methods.sft import SFTModule

ROOT = Path(__file__).resolve().parents[2]
COPIES = 30
"""Times the sample table below is repeated: 1,020 samples."""
QUERY = "the red circle appears."
DIGITS = "1" * 30000
OK, PARSE_FAILED = "ok", "parse_failed"
MR_REPLY = "from 0.5s to 2.0s"

# Videos: file name → how it is made. The clean ones last 4 s (40 frames at 10 fps); annotations name <stem>.mp4 and
# the reader finds the one file of that stem whatever its container.
CLEAN_VIDEOS = {"clip.mp4": ("libx264", None), "clip_mkv.mkv": ("libx264", None), "clip_webm.webm": ("libvpx", None),
                "clip_avi.avi": ("mpeg4", None), "clip_ts.ts": ("libx264", "mpegts"), "phone.mp4": ("libx264", None)}

# Moment-retrieval lines of one copy: (video id, start, end, the model's reply, what the run must count).
MOMENT_LINES = [
    *[(vid, "0.5", "2.0", MR_REPLY, OK) for vid in ("clip", "clip_mkv", "clip_webm", "clip_avi", "clip_ts", "phone")],
    ("clip", "1.0", "3.0", "from 3.5.6 seconds to 7 seconds", PARSE_FAILED),  # a malformed number
    ("clip_mkv", "1.0", "3.0", "-2 to 5", PARSE_FAILED),  # a negative time
    ("clip_webm", "1.0", "3.0", f"from {DIGITS} to 5 seconds", PARSE_FAILED),  # a 30k-digit run
    ("clip_ts", "1.0", "3.0", "between 1e400 and 2", PARSE_FAILED),  # infinite as a float
    ("phone", "1.0", "3.0", "", PARSE_FAILED),  # nothing generated
    ("stub", "0.5", "2.0", MR_REPLY, "corrupt"),  # the first 200 bytes of an mp4
    ("stub", "1.0", "2.0", MR_REPLY, "corrupt"),
    ("blank", "0.5", "2.0", MR_REPLY, "empty"),  # 0 bytes
    ("folder", "0.5", "2.0", MR_REPLY, "not_a_file"),  # a directory named like a video
    ("gone", "0.5", "2.0", MR_REPLY, "missing"),
    ("gone", "1.0", "2.0", MR_REPLY, "missing"),
    ("cut", "0.5", "2.0", MR_REPLY, "truncated"),  # says 10 s, holds about 4
    ("clip", "nan", "2.0", MR_REPLY, "non_finite"),
    ("clip", "0.5", "inf", MR_REPLY, "non_finite"),
    ("../clip", "0.5", "2.0", MR_REPLY, "path_escape"),
    ("/tmp/clip", "0.5", "2.0", MR_REPLY, "path_escape"),
    ("clip", "0.5", "2.0", MR_REPLY, "bad_encoding"),  # written with a byte that is not UTF-8
]

OPTIONS = ["red", "blue", "green", "white"]
# Multiple-choice records of one copy: (video id, duration, options, the model's reply, what the run must count).
MCQ_RECORDS = [
    ("clip", 4, OPTIONS, "B", OK),
    ("clip_avi", None, OPTIONS, "(B)", OK),
    ("phone", 4, OPTIONS, "Answer: B", OK),
    ("clip_ts", 4, OPTIONS, "3.5.6 seconds", PARSE_FAILED),
    ("clip_mkv", None, OPTIONS, DIGITS, PARSE_FAILED),
    ("clip", 30, OPTIONS, "B", "duration_mismatch"),  # the clip lasts 4 s
    ("clip_webm", 30, OPTIONS, "B", "duration_mismatch"),
    ("clip", None, [f"option {i}" for i in range(11)], "B", "too_many_options"),  # the prompt letters A-J
    ("clip", float("nan"), OPTIONS, "B", "non_finite"),
    ("../clip", None, OPTIONS, "B", "path_escape"),
    ("clip", None, OPTIONS, "B", "bad_encoding"),
]


def _clip(path: Path, codec: str, container: str | None = None, frames: int = 40, rotation: int = 0,
          faststart: bool = False, preset: str | None = None) -> Path:
    """A 48x32 clip at 10 fps of flat grey frames, one level brighter each. At x264's default preset its frames
    take a few bytes each: a 4 s MPEG-TS clip of them is small enough that a seek (TS seeks by bytes) lands past
    every frame, which the reader must survive; ``ultrafast`` makes frames large enough for a cut at half the bytes
    to fall among them, after the index."""
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", format=container, options=options) as output:
        stream = output.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        stream.options = {"threads": "1"} | ({"preset": preset} if preset else {})
        if rotation:
            stream.set_display_rotation(rotation)
        for index in range(frames):  # the encoder numbers the frames (an MPEG-TS stream then starts at 0.2 s)
            grey = np.full((32, 48, 3), 6 * index % 256, np.uint8)
            output.mux(stream.encode(av.VideoFrame.from_ndarray(grey, format="rgb24")))
        output.mux(stream.encode())
    return path


def write_videos(videos: Path, scratch: Path) -> None:
    videos.mkdir(parents=True)
    for name, (codec, container) in CLEAN_VIDEOS.items():
        _clip(videos / name, codec, container, rotation=90 if name == "phone.mp4" else 0)
    (videos / "stub.mp4").write_bytes((videos / "clip.mp4").read_bytes()[:200])
    (videos / "blank.mp4").write_bytes(b"")
    (videos / "folder.mp4").mkdir()
    whole = _clip(scratch / "whole.mp4", "libx264", frames=100, faststart=True, preset="ultrafast")  # 10 s, index first
    (videos / "cut.mp4").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])


def _moment_lines(copies: int) -> tuple[bytes, dict[str, str], Counter]:
    """The Charades-STA file, the reply to each sample id, and the expected counts."""
    lines, replies, expected = [], {}, Counter()
    for number, (vid, start, end, reply, outcome) in enumerate(MOMENT_LINES * copies, start=1):
        line = f"{vid} {start} {end}##{QUERY}".encode()
        lines.append(line.replace(b"circle", b"cercl\xe9") if outcome == "bad_encoding" else line)
        replies[f"charades_sta/test.txt:{number}"] = reply
        expected[outcome] += 1
    return b"\n".join(lines) + b"\n", replies, expected


def _mcq_lines(copies: int) -> tuple[bytes, dict[str, str], Counter]:
    """The multiple-choice JSON list (one record per line), the reply to each sample id, and the expected counts."""
    rows, replies, expected = [], {}, Counter()
    for number, (vid, duration, options, reply, outcome) in enumerate(MCQ_RECORDS * copies):
        key = f"q{number}"
        record = {"id": key, "video_id": vid, "question": "Which colour appears first?", "options": options,
                  "answer_index": 1}
        if duration is not None:
            record["duration"] = duration
        row = json.dumps(record).encode()  # NaN is written as the NaN literal, as Python's json reads it
        if outcome == "bad_encoding":
            row = row.replace(b"Which colour", b"Which col\xf6ur")
        rows.append(row)
        replies[f"mcq/test.json:{key}"] = reply
        expected[outcome] += 1
    return b"[\n" + b",\n".join(rows) + b"\n]\n", replies, expected


def write_data(root: Path, copies: int) -> tuple[Path, dict[str, str], Counter, Counter]:
    """The data directory, the scripted replies, and the expected counts of each task."""
    data = root / "data"
    write_videos(data / "videos", root)
    moments, moment_replies, moment_counts = _moment_lines(copies)
    mcq, mcq_replies, mcq_counts = _mcq_lines(copies)
    (data / "charades_sta").mkdir()
    (data / "charades_sta" / "test.txt").write_bytes(moments)
    (data / "mcq").mkdir()
    (data / "mcq" / "test.json").write_bytes(mcq)
    return data, moment_replies | mcq_replies, moment_counts, mcq_counts


class ScriptedReplies(SFTModule):
    """The SFT module with its generation replaced by a reply per sample id: the parse failures are then known."""

    replies: dict[str, str]

    def generate_texts(self, batch):
        texts = [self.replies[sample.sample_id] for sample in batch["samples"]]
        return texts, [{} for _ in texts]


def run_test(data: Path, runs: Path, replies: dict[str, str], devices: int = 1) -> tuple[dict, list[dict]]:
    """``groundlight test`` of the SFT synth config on ``data`` with both skips on: the summary and the records.
    With ``devices`` > 1, the CLI's model and data under a ``ddp_spawn`` trainer of that many CPU processes."""
    cli = lightning_main([
        "--config", str(ROOT / "experiments/sft/synth.yaml"), "--data.init_args.data_dir", str(data),
        "--data.init_args.tasks", "[charades_sta, mcq]", "--data.init_args.on_bad_video", "skip",
        "--data.init_args.on_bad_annotation", "skip", "--runs_dir", str(runs), "--experiment", "bad_input",
        "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
    ], run=False)
    cli.model.__class__ = ScriptedReplies
    cli.model.replies = replies
    run_dir = runs / "bad_input"
    trainer = cli.trainer if devices == 1 else L.Trainer(
        accelerator="cpu", devices=devices, strategy="ddp_spawn", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, callbacks=[RunSummary(run_dir, None)])
    trainer.test(cli.model, cli.datamodule)
    records = [json.loads(line) for line in (run_dir / "test_records.jsonl").read_text().splitlines()]
    return json.loads((run_dir / "summary.json").read_text()), records


def eval_with_duplicates(benchmark: str, rows: list[dict], repeats: int, folder: Path, capsys) -> dict:
    """``groundlight eval BENCHMARK`` on ``rows`` plus their first ``repeats`` again: refused, naming the repeat;
    with ``--duplicates keep-first``, the result."""
    pred, out = folder / f"{benchmark}_predictions.jsonl", folder / f"{benchmark}_result.json"
    pred.write_text("".join(json.dumps(row) + "\n" for row in rows + rows[:repeats]))
    assert eval_main([benchmark, "--pred", str(pred)]) == 1
    assert "appears again" in capsys.readouterr().err
    assert eval_main([benchmark, "--pred", str(pred), "--duplicates", "keep-first", "--json", str(out)]) == 0
    return json.loads(out.read_text())


def test_every_bad_input_is_counted_by_kind(tmp_path, monkeypatch, capsys):
    """1,020 samples (30 copies of 34); about 5 s on one thread, so it stays in the fast suite."""
    monkeypatch.chdir(ROOT)
    data, replies, moments, mcq = write_data(tmp_path, COPIES)
    assert len(replies) == 34 * COPIES

    summary, records = run_test(data, tmp_path / "runs", replies)

    faults = {kind: n for kind, n in sorted((moments + mcq).items()) if kind not in (OK, PARSE_FAILED)}
    assert summary["skipped"] == faults
    videos = ("corrupt", "empty", "not_a_file", "missing", "truncated", "duration_mismatch")
    assert summary["skipped_videos"] == sum(faults[kind] for kind in videos)  # the logged count agrees
    assert summary["mr_parse_failed"] == moments[PARSE_FAILED] and summary["mcq_parse_failed"] == mcq[PARSE_FAILED]
    asked = Counter(record["task"] for record in records)
    assert asked == {"moment_retrieval": moments[OK] + moments[PARSE_FAILED], "mcq": mcq[OK] + mcq[PARSE_FAILED]}
    # every container and the rotated clip decoded and were scored: the clean answers hit their windows and letters
    clean = [r for r in records if r["prediction"] in (MR_REPLY, "B", "(B)", "Answer: B")]
    assert len(clean) == moments[OK] + mcq[OK] and all(r["scores"].get("mIoU", r["scores"].get("mcq_accuracy")) == 1.0
                                                       for r in clean)
    assert {Path(r["video"]).stem for r in clean} == {Path(name).stem for name in CLEAN_VIDEOS}

    moment_rows = [r for r in records if r["task"] == "moment_retrieval"]
    moment_eval = eval_with_duplicates("charades_sta", moment_rows, 3, tmp_path, capsys)
    assert (moment_eval["failed"], moment_eval["total"], moment_eval["duplicates_dropped"]) == \
        (moments[PARSE_FAILED], len(moment_rows), 3)
    choice_rows = [{"id": r["sample_id"], "prediction": r["prediction"], "options": r["options"], "answer": r["answer"]}
                   for r in records if r["task"] == "mcq"]
    choice_eval = eval_with_duplicates("mcq", choice_rows, 2, tmp_path, capsys)
    assert (choice_eval["parse_failed"], choice_eval["total"], choice_eval["duplicates_dropped"]) == \
        (mcq[PARSE_FAILED], len(choice_rows), 2)


@pytest.mark.slow
def test_two_processes_count_each_fault_once(tmp_path, monkeypatch):
    """One copy of the table on 2 CPU processes (gloo): each rank skips the bad videos of its shard and the counts
    are summed over the ranks; every rank reads the whole annotation file, and its bad records are counted once."""
    monkeypatch.chdir(ROOT)
    data, replies, moments, mcq = write_data(tmp_path, copies=1)
    summary, records = run_test(data, tmp_path / "runs", replies, devices=2)
    assert summary["skipped"] == {kind: n for kind, n in sorted((moments + mcq).items()) if kind not in (OK, PARSE_FAILED)}
    assert summary["mr_parse_failed"] == moments[PARSE_FAILED] and summary["mcq_parse_failed"] == mcq[PARSE_FAILED]
    assert len(records) == moments[OK] + moments[PARSE_FAILED] + mcq[OK] + mcq[PARSE_FAILED]
