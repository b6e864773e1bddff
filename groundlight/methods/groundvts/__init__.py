"""GroundVTS: query-guided visual token sampling (see :mod:`.module` and :mod:`.vts`)."""

from groundlight.methods.groundvts.module import GroundVTSModule
from groundlight.methods.groundvts.vts import VisualTokenSampler, VTSConfig

__all__ = ["GroundVTSModule", "VTSConfig", "VisualTokenSampler"]
