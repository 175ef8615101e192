"""The microscope: what images the specimen, as parameters and the physics that reads them.

- ``imaging.py``: :class:`Imaging` (one setting: microscope, tilt series, sample) and
  :class:`ImagingRanges` (a distribution of them); ``presets.py``: the named distributions
  (``paper``, ``realistic``, ``shifted``, ``broad``). Both are leaves: they import the records
  below, never the code that images with them.
- ``ctf.py``: :class:`CTFSettings` (the microscope record of both imaging paths) and the CTF;
- ``tilt_scheme.py``: tilt angles and acquisition order; ``dose.py``: the exposure filter of the
  dose received before each tilt, and the noise of each tilt's path through the ice.
"""

from cosnet_index.simulate.microscope.ctf import CTFSettings
from cosnet_index.simulate.microscope.imaging import Imaging, ImagingRanges
from cosnet_index.simulate.microscope.presets import (
    IMAGING_PRESETS,
    SHIFTED_FIELDS,
    imaging_preset,
    resolve_imaging,
)

__all__ = [
    "IMAGING_PRESETS",
    "SHIFTED_FIELDS",
    "CTFSettings",
    "Imaging",
    "ImagingRanges",
    "imaging_preset",
    "resolve_imaging",
]
