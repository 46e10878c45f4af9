"""The venue layer: the engine composed with a registry (see :class:`Venue`).

- :mod:`~carbonbook.venue.venue`: :class:`Venue`, the composition, one transaction a batch;
- :mod:`~carbonbook.venue.holds`: the hold gate, the pre-trade risk before the book;
- :mod:`~carbonbook.venue.settler` and :mod:`~carbonbook.venue.settlement`: trades and
  auction allocations to delivery-versus-payment transfers;
- :mod:`~carbonbook.venue.checkpoint`: the log position, digest and recorded outcomes.
"""

from carbonbook.venue.checkpoint import LogMismatch
from carbonbook.venue.venue import Venue, VenueFailed, VenueState

__all__ = ["LogMismatch", "Venue", "VenueFailed", "VenueState"]
