"""The cluster layer: derived desired state, computed purely from the whole configuration.

The engine runs :data:`DERIVATIONS` in plan without knowing what they derive (see :mod:`.derive`).
"""

from .derive import Derivation, Derived, DerivedInstance, DerivedObject, Inputs, Summary
from .ipam import IPAM
from .placement import PLACEMENT
from .reachability import REACHABILITY
from .services import SERVICES

# In the order the planner may need them; each runs once per plan.
DERIVATIONS: tuple[Derivation, ...] = (IPAM, PLACEMENT, SERVICES, REACHABILITY)

__all__ = ["DERIVATIONS", "Derivation", "Derived", "DerivedInstance", "DerivedObject", "Inputs", "Summary"]
