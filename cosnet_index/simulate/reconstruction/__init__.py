"""Reconstruction: from the imaged specimen to the tomogram a user would cut boxes from.

- ``paper.py``: the paper's fast path, CTF x missing wedge + noise as one filter of the 3D
  spectrum (:class:`~cosnet_index.simulate.config.SimulationConfig`);
- ``projection.py``: projection and weighted back-projection of a single-axis tilt series;
- ``_tilt_series.py``: the real tilt-series path (project, per-tilt and per-height CTF, exposure
  filter, noise in the projections, WBP), used for tomograms;
- ``_fourier_form.py``: its Fourier form for batches of subtomograms (central-slice theorem);
- ``image.py``: :func:`image_subtomograms` and :func:`image_by_projection`, the public verbs.
"""

from cosnet_index.simulate.reconstruction.image import image_by_projection, image_subtomograms

__all__ = ["image_by_projection", "image_subtomograms"]
