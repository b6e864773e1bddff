"""ActivityNet Captions (``train.json`` / ``val_1.json`` as released): one object keyed by video id.

Fields, as released::

    {"v_QOlSCBRmfWY": {"duration": 82.73, "timestamps": [[0.83, 19.86], [17.37, 60.81]],
                       "sentences": ["A young woman is seen ...", " She then ..."]}}

Every (timestamp, sentence) pair is one moment-retrieval sample. Released windows
sometimes run a little past ``duration``; they are clipped to it, never dropped.
"""

from __future__ import annotations

import json
from pathlib import Path

from data_modules.formats._records import (
    check_window,
    parse_each,
    read_text,
    sample_id,
    to_float,
    video_path,
)
from data_modules.samples import AnnotationError, VideoSample


def read_activitynet_captions(path: str | Path, video_dir: str | Path, video_ext: str = ".mp4") -> list[VideoSample]:
    """Moment-retrieval samples of an ActivityNet Captions annotation file.

    Raises:
        AnnotationError: bad JSON, a missing field, mismatched timestamps/sentences or a reversed window.
    """
    text = read_text(path)
    try:
        videos = json.loads(text)
    except json.JSONDecodeError as error:
        raise AnnotationError(str(path), error.lineno, f"invalid JSON ({error.msg})") from error
    if not isinstance(videos, dict):
        raise AnnotationError(str(path), 1, "expected a JSON object keyed by video id")
    per_video = parse_each(videos.items(), lambda vid, record: _video_samples(vid, record, path, video_dir, video_ext,
                                                                               _line_of(text, vid)))
    return [sample for samples in per_video for sample in samples]


def _line_of(text: str, key: str) -> int:
    return text.count("\n", 0, max(text.find(json.dumps(key)), 0)) + 1


def _video_samples(vid: str, record: dict, path: str | Path, video_dir: str | Path, ext: str, line: int) -> list[VideoSample]:
    where = (str(path), line)
    if not isinstance(record, dict) or not all(k in record for k in ("duration", "timestamps", "sentences")):
        raise AnnotationError(str(path), line, f"{vid}: needs 'duration', 'timestamps' and 'sentences'")
    duration = to_float(record["duration"], f"{vid} duration", where)
    if len(record["timestamps"]) != len(record["sentences"]):
        raise AnnotationError(str(path), line, f"{vid}: {len(record['timestamps'])} timestamps but {len(record['sentences'])} sentences")
    samples = []
    for index, (pair, sentence) in enumerate(zip(record["timestamps"], record["sentences"])):
        if not isinstance(pair, list) or len(pair) != 2 or not str(sentence).strip():
            raise AnnotationError(str(path), line, f"{vid}[{index}]: expected a [start, end] pair and a sentence")
        start, end = (min(to_float(v, f"{vid} window bound", where), duration) for v in pair)
        samples.append(VideoSample(
            sample_id=sample_id(path, f"{vid}:{index}"), video_path=video_path(video_dir, vid, ext, where),
            task="moment_retrieval", query=str(sentence).strip(), duration=duration,
            windows=[check_window(start, end, duration, where)], source=f"{path}:{line}", meta={"vid": vid},
        ))
    return samples
