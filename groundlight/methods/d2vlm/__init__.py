"""D²VLM (ICCV'25): evidence tokens and Factorized Preference Optimization."""

from groundlight.methods.d2vlm.module import D2VLMModule, EvidenceOptions, FPOOptions

__all__ = ["D2VLMModule", "EvidenceOptions", "FPOOptions"]
