"""groundlight: train and evaluate temporally grounded video-LLMs."""

__version__ = "0.1.0"
