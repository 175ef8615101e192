"""The specimen: where the molecules sit before the microscope sees them.

- ``_placement.py``: molecules of a tomogram placed without overlap and rendered into one
  density (with labels);
- ``_crowding.py``: neighbour molecules touching a subtomogram's centre molecule;
- ``_background.py``: what else is in the ice of a realistic tomogram (carbon edge, membranes,
  gold, crowders, an ice-thickness gradient).

The pose convention they share is ``simulate/_pose.py``.
"""

from cosnet_index.simulate.specimen._background import add_background, ice_gain
from cosnet_index.simulate.specimen._crowding import (
    Neighbours,
    add_neighbours,
    draw_neighbours,
    neighbour_offsets,
)
from cosnet_index.simulate.specimen._placement import place_molecules, render_molecules

__all__ = [
    "Neighbours",
    "add_background",
    "add_neighbours",
    "draw_neighbours",
    "ice_gain",
    "neighbour_offsets",
    "place_molecules",
    "render_molecules",
]
