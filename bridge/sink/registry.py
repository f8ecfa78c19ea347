"""Which devices the sink updated in the registry lately, in memory of a
fixed size whatever the fleet."""

from __future__ import annotations

import time
from array import array

from bridge.sink import sql


class RegistryCache:
    """Which devices this worker updated in the registry in the current
    period of REFRESH_S seconds, so that a busy fleet costs one registry
    update per device per period rather than one per batch. At each period's
    end it forgets them all: a device it forgot costs the database an index
    lookup, not a write (the REGISTRY statement leaves rows refreshed within
    REFRESH_S alone), and nothing here has to remember when a device was
    seen. At most MAX_DEVICES a period; more empties it early.

    A device is held as the 64-bit hash of its id (which the string keeps:
    no hashing per batch) and a 32-bit tag of its site, in two arrays
    allocated once, 3 MB for the bridge's life, where a dict of ids grew by
    ~100 bytes a device (10 MB at 100,000 devices; bench/README.md, the
    cardinality sweep). Two devices of one hash (about 1 in 2 billion for a
    pair of fleets of 131,072 devices; the hash's seed changes with every
    start) would leave one device's last_seen to the other's updates."""

    REFRESH_S = float(sql.REGISTRY_REFRESH_S)  # as the REGISTRY statement's own threshold
    MAX_DEVICES = 131_072

    def __init__(self) -> None:
        size = 1 << (2 * self.MAX_DEVICES - 1).bit_length()  # at most half full
        self._mask = size - 1
        self._fingerprints = array("q", bytes(8 * size))  # 0: an empty slot
        self._sites = array("I", bytes(4 * size))  # 0: no site seen
        self._count = 0
        self._period_began = time.monotonic()

    def __len__(self) -> int:
        return self._count

    def stale(self, sites: dict[str, str | None]) -> dict[str, str | None]:
        """The devices of ``sites`` that need a registry update now."""
        now = time.monotonic()
        if now - self._period_began >= self.REFRESH_S:
            self._forget()
            self._period_began = now
        fingerprints, held_sites, mask = self._fingerprints, self._sites, self._mask
        out: dict[str, str | None] = {}
        # The probe inline, not a method shared with refreshed(): this runs
        # for every device of every batch, and the call cost ~40% more.
        for device, site in sites.items():
            fingerprint = hash(device) or 1
            slot = fingerprint & mask
            while True:
                held = fingerprints[slot]
                if held == fingerprint:
                    # a new site is news (a tag as _tag's, inline: per device per batch)
                    if site is not None and held_sites[slot] != ((hash(site) & 0xFFFFFFFF) or 1):
                        out[device] = site
                    break
                if held == 0:
                    out[device] = site
                    break
                slot = (slot + 1) & mask
        return out

    def refreshed(self, sites: dict[str, str | None]) -> None:
        """Called after the commit that updated them."""
        if self._count + len(sites) > self.MAX_DEVICES:
            self._forget()
        fingerprints, held_sites, mask = self._fingerprints, self._sites, self._mask
        for device, site in sites.items():
            fingerprint = hash(device) or 1
            slot = fingerprint & mask
            while (held := fingerprints[slot]) != 0 and held != fingerprint:
                slot = (slot + 1) & mask
            if held == 0:
                fingerprints[slot] = fingerprint
                self._count += 1
            if site is not None:  # no site says nothing new: keep the one seen
                held_sites[slot] = _tag(site)

    def _forget(self) -> None:
        self._fingerprints[:] = array("q", bytes(8 * len(self._fingerprints)))
        self._sites[:] = array("I", bytes(4 * len(self._sites)))
        self._count = 0


def _tag(site: str) -> int:
    """A site as 32 bits, never 0 (which means none seen)."""
    return (hash(site) & 0xFFFFFFFF) or 1
