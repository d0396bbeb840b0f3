"""``Comparison``: the stored run a session compares its tests with, and what each test's record says of it.

``--energy-compare=<run>`` names the run; a regression limit (``--energy-compare-fail``,
``--macs-compare-fail``) without one compares with the latest run of this hardware, looked
up once the meter gives the fingerprint. The noise floors the ``auto`` limit uses come
from the stored runs of the same hardware, read once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, Optional

from .config import ConfigError, Settings
from .decide.figures import CapFailure, Figures, Limits
from .decide.noise import NoiseFloor, floors
from .decide.regression import StoredComparison, compare_with_stored
from .store.runs import RunStore, RunStoreError, StoredRun


class Comparison:
    """The run compared with (none, a named one, or the latest of this hardware) and its noise floors."""

    def __init__(self, settings: Settings, rootpath: Path, notice: Callable[[str], None]):
        self._settings = settings
        self._notice = notice
        self.store = RunStore(Path(rootpath, settings.storage))
        self.note = ""  # why nothing was compared, where a comparison was asked for
        self._stored: Optional[StoredRun] = None
        self._latest = False  # the latest run of this hardware is loaded once the fingerprint is known
        self._floors: Optional[Dict[str, NoiseFloor]] = None
        gated = settings.compare_fail is not None or settings.macs_compare_fail is not None
        compare = settings.compare or ("latest" if gated else None)
        if compare == "latest" and not self.store.has_runs():
            self.note = f"no stored run yet under {settings.storage}: nothing compared this time"
        elif compare == "latest":
            self._latest = True
        elif compare is not None:
            try:
                self._stored = StoredRun.from_document(*self.store.load(compare))
            except RunStoreError as exc:
                raise ConfigError(str(exc)) from None

    def stored_run(self, fingerprint: Optional[str]) -> Optional[StoredRun]:
        """The run compared with; the latest of this hardware is looked up once its ``fingerprint`` is known."""
        if self._latest and fingerprint:
            self._latest = False
            try:
                path, document, skipped = self.store.latest(fingerprint)
            except RunStoreError as exc:
                self.note = f"{exc}: nothing compared this time"
            else:
                self._stored = StoredRun.from_document(path, document)
                for message in skipped:
                    self._notice(message)
        return self._stored

    def noise_floors(self) -> Dict[str, NoiseFloor]:
        """Each test's noise on this machine, from its stored runs: read once, when a regression limit is set."""
        stored = self._stored
        if self._floors is None and stored is not None and stored.fingerprint and self._settings.compare_fail is not None:
            self._floors = floors(self.store.recent(stored.fingerprint))
        return self._floors or {}

    def entry(self, figures: Figures, limits: Limits, regression: Optional[CapFailure]) -> Optional[Dict[str, Any]]:
        """The record's ``comparison`` with the stored run, if there is one; a notice when the limit is under the noise."""
        compared = compare_with_stored(figures, limits)
        if regression is None and not isinstance(compared, StoredComparison):
            return None
        entry: Dict[str, Any] = {"run": limits.stored.path.name,  # type: ignore[union-attr]
                                 "verdict": regression.verdict if regression else "pass"}
        if regression is not None:
            entry["message"] = regression.message
        if isinstance(compared, StoredComparison):
            entry.update(compared.to_json())
            floor, limit = compared.floor, compared.limit
            if limit is None:
                self._notice(f"{figures.nodeid}: --energy-compare-fail=auto has no noise floor for it yet (store runs "
                             "with repeats, or two runs of one commit, with --energy-autosave): not gated this time")
            elif floor is not None and not limits.regression_auto and limit < floor.noise:
                self._notice(f"{figures.nodeid}: the limit +{limit * 100:g}% is below this runner's noise of "
                             f"{floor.describe()}: a change under it cannot be told from noise "
                             "(--energy-compare-fail=auto uses the noise)")
        return entry
