"""The demo's campaign traffic (the notice, section VI): a designation or a case that a campaign of
the catalogue covers (its field, the unit's region, the date in its period) names it about half
the time, so the cases service has campaign progress to show."""

from __future__ import annotations

import random
from datetime import date

from credit_common.reference.catalog import Catalog

SHARE = 0.5  # of what a campaign covers, the part that names it


def campaign_for(catalog: Catalog, rng: random.Random, field: str, region: str, day: date) -> str | None:
    """A campaign covering a designation or case of `field` by a unit of `region` on `day`, or None."""
    covering = [c.code for c in catalog.campaigns() if c.refusal(field=field, region=region, day=day, what="") is None]
    return rng.choice(sorted(covering)) if covering and rng.random() < SHARE else None
