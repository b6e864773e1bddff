"""SF2T: self-supervised fragment fine-tuning (``module.py``) and its science report (``report.py``)."""

from groundlight.methods.sf2t.module import SF2TModule, per_task_answer_loss, task_name

__all__ = ["SF2TModule", "per_task_answer_loss", "task_name"]
