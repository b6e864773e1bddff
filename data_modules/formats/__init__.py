"""Readers and writers of official annotation formats; every reader returns ``VideoSample``s.

Each reader raises ``AnnotationError`` naming the file and line of a malformed record.
"""

from data_modules.formats.charades_sta import read_charades_sta, write_charades_sta
from data_modules.formats.keyframes import read_keyframes, write_keyframes
from data_modules.formats.mcq import read_mcq, write_mcq
from data_modules.formats.qvhighlights import read_qvhighlights, write_qvhighlights
from data_modules.formats.verify import read_verify, write_verify

__all__ = [
    "read_charades_sta",
    "read_keyframes",
    "read_mcq",
    "read_qvhighlights",
    "read_verify",
    "write_charades_sta",
    "write_keyframes",
    "write_mcq",
    "write_qvhighlights",
    "write_verify",
]
