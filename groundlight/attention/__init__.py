"""Attention probe, sink tokens, head selection and matching, quality scores, steering."""
