"""The reference workload in a session: reuse its cached energy, or measure it first.

A baseline test is marked ``@pytest.mark.energy_baseline`` (or named by ``baseline``
in ``[tool.pytest-energy]``). Its energy on this machine, ``E_local``, is cached per
hardware fingerprint; on a hit the test is skipped and reported as reused, on a miss
it runs before every other test so that the tests after it are normalised.
One-point normalisation takes one baseline test (its reference energy from
``reference-energy`` or the marker's ``reference=``); two-point takes two, each with
its own ``reference=``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from .account.baseline_cache import BaselineCache, BaselineCacheError, BaselineEntry
from .account.normalize import Normalization
from .config import ConfigError, Settings, parse_marker_cap
from .units import format_energy

MARKER = "energy_baseline"


@dataclasses.dataclass
class BaselineTarget:
    """One reference workload: its test, its reference-machine energy, and what is known here."""

    nodeid: str
    reference_j: Optional[float]
    cache: BaselineCache
    entry: Optional[BaselineEntry] = None
    source: str = ""  # "cached", "measured", or "contended" (measured beside other work, so not cached)
    message: str = ""

    def to_json(self) -> Dict[str, Any]:
        entry = self.entry
        return {
            "nodeid": self.nodeid,
            "reference_j": self.reference_j,
            "energy_j": entry.energy_j if entry else None,
            "energies_j": list(entry.energies_j) if entry else [],
            "std_j": entry.std_j if entry else None,
            "measured_at": entry.measured_at if entry else None,
            "meter": entry.meter if entry else None,
            "source": self.source or None,
            "contended": self.source == "contended",
            "cache": self.message,
        }


class BaselinePlan:
    """The session's baseline targets and, once all are known, its normalisation."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.cache_dir = Path()
        self.targets: List[BaselineTarget] = []
        self.warnings: List[str] = []
        self.refused: Optional[str] = None  # why the measured energies give no normalisation, once they are known

    @property
    def active(self) -> bool:
        return self.settings.baseline_mode != "off"

    def is_baseline(self, item: Any) -> bool:
        return item.get_closest_marker(MARKER) is not None or item.nodeid == self.settings.baseline_nodeid

    def prepare(self, items: List[Any], fingerprint: str, cache_dir: Path) -> List[Any]:
        """Look every baseline test up in the cache; return the items to skip as reused. Reorders ``items``."""
        self.cache_dir = cache_dir
        baseline_items = [item for item in items if self.is_baseline(item)]
        two_point = self.settings.normalization == "two-point"
        if two_point and len(baseline_items) != 2:
            raise ConfigError(
                f"normalization = \"two-point\" needs two baseline tests, each marked energy_baseline(reference=...); "
                f"found {len(baseline_items)}"
            )
        if not two_point and len(baseline_items) > 1:
            names = ", ".join(item.nodeid for item in baseline_items)
            raise ConfigError(f"one-point normalisation takes one baseline test, found {len(baseline_items)} ({names}); "
                              "keep one or set normalization = \"two-point\"")
        reused = []
        for item in baseline_items:
            marker = item.get_closest_marker(MARKER)
            reference = parse_marker_cap(marker.kwargs.get("reference"), item.nodeid) if marker else None
            if reference is None and two_point:
                raise ConfigError(f"{item.nodeid}: two-point normalisation needs energy_baseline(reference=\"...\")")
            target = self._target(item.nodeid, reference if reference is not None else self.settings.reference.reference_energy_j,
                                  two_point, fingerprint)
            if target.entry is not None:
                reused.append((item, target))
        if reused and len(reused) == len(self.targets) and self.normalization() is None and self.refused:
            self.warnings.append(f"baseline: cached two-point baseline gives no fit ({self.refused}); measuring both again")
            for target in self.targets:
                target.entry, target.source, target.message = None, "", "cached entry discarded: it gave no fit"
            self.refused, reused = None, []
        if not baseline_items and not two_point:
            self._target(None, self.settings.reference.reference_energy_j, False, fingerprint)
        measured_first = [item for item in baseline_items if item not in [pair[0] for pair in reused]]
        items[:] = measured_first + [item for item in items if item not in measured_first]
        if self.settings.normalized and not self.targets_known_or_pending:
            raise ConfigError("--energy-normalized needs a baseline: mark the reference workload with "
                              "@pytest.mark.energy_baseline or set baseline = \"<test id>\" in [tool.pytest-energy]")
        if self.settings.normalized and any(target.reference_j is None for target in self.targets):
            raise ConfigError("--energy-normalized needs the reference workload's energy on the reference machine: "
                              "set reference-energy (or a preset that normalises) in [tool.pytest-energy], "
                              "or write @pytest.mark.energy_baseline(reference=\"...\")")
        return reused

    @property
    def targets_known_or_pending(self) -> bool:
        return bool(self.targets) and all(target.entry is not None or target.nodeid for target in self.targets)

    def _target(self, nodeid: Optional[str], reference_j: Optional[float], two_point: bool, fingerprint: str) -> BaselineTarget:
        directory = self.cache_dir
        if two_point:
            directory = directory / ("two-point-" + hashlib.sha256(str(nodeid).encode()).hexdigest()[:8])
        cache = BaselineCache(directory)
        if self.settings.baseline_mode == "refresh":
            cache.clear(fingerprint)
        lookup = cache.load(fingerprint, self.settings.baseline_max_age_s, nodeid=nodeid)
        if lookup.status in ("corrupt", "expired", "baseline-changed", "fingerprint-changed") and nodeid:
            self.warnings.append(f"baseline: {lookup.message}; measuring it again")
        elif lookup.status == "corrupt":
            self.warnings.append(f"baseline: {lookup.message}")
        if nodeid is None and lookup.entry is None:
            return BaselineTarget("", reference_j, cache, message=lookup.message)
        target = BaselineTarget(nodeid or lookup.entry.nodeid, reference_j, cache, lookup.entry,  # type: ignore[union-attr]
                                "cached" if lookup.entry else "", lookup.message)
        self.targets.append(target)
        return target

    def target_for(self, nodeid: str) -> Optional[BaselineTarget]:
        return next((target for target in self.targets if target.nodeid == nodeid), None)

    def measured(self, nodeid: str, energies_j: Sequence[float], hardware: Mapping[str, Any], meter: str,
                 cache: bool = True) -> Optional[str]:
        """Use a fresh measurement of a baseline test, and cache it unless ``cache`` is False (a contended
        measurement); returns a warning on large spread."""
        target = self.target_for(nodeid)
        if target is None:
            return None
        entry = BaselineEntry.from_repeats(hardware, energies_j, meter, nodeid)
        if not cache:
            target.entry, target.source = entry, "contended"
            target.message = "measured in this run while other work was measured on the machine: used for this run only, not cached"
            return entry.spread_warning
        target.entry, target.source, target.message = entry, "measured", "measured in this run"
        target.cache.store(entry)
        target.message = "measured in this run and cached"
        return entry.spread_warning

    def normalization(self) -> Optional[Normalization]:
        """The normalisation once every target has an energy and a reference energy; else None.

        Energies that give no fit (two-point: the larger workload costs less on one machine) give
        None, ``refused`` says why, and their cache entries are removed so no later run reuses them.
        A baseline measured beside other work gives a normalisation whose ``caveat`` says so.
        """
        if not self.active or not self.targets or any(t.entry is None or t.reference_j is None for t in self.targets):
            return None
        try:
            normalization = Normalization.from_points(tuple((t.entry.energy_j, t.reference_j) for t in self.targets))  # type: ignore[union-attr]
        except ValueError as exc:
            self._refuse_fit(exc)
            return None
        contended = [target.nodeid for target in self.targets if target.source == "contended"]
        if not contended:
            return normalization
        return dataclasses.replace(normalization, caveat=f"the baseline {', '.join(contended)} was measured while other "
                                   "work was measured on this machine (measure it alone to trust normalised figures)")

    def _refuse_fit(self, error: ValueError) -> None:
        """Say why the targets' energies give no normalisation, and remove their cache entries."""
        for target in self.targets:
            try:
                if target.entry is not None:
                    target.cache.clear(target.entry.fingerprint)
            except (BaselineCacheError, OSError):
                pass  # the refusal stands; a later run refuses the same entries again
        reason = str(error).replace(f"{self.settings.normalization} normalisation: ", "", 1)
        self.refused = f"{self.settings.normalization} normalisation refused: {reason}"

    def reuse_reason(self, target: BaselineTarget) -> str:
        entry = target.entry
        assert entry is not None
        return (f"baseline reused from cache: {format_energy(entry.energy_j)} measured {entry.measured_at} "
                f"with {entry.meter} (--energy-baseline=refresh measures it again)")
