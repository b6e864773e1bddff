"""D²VLM: evidence tokens and Factorized Preference Optimization (see :mod:`.losses`)."""
