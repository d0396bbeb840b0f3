"""The regression gate in the terminal: each compared test's growth, its interval and the verdict, one line each;
and the session's emissions, where a carbon intensity was given."""

from __future__ import annotations

from typing import Any, List, Mapping, Sequence

from ..account.record import Record


def comparison_lines(records: Sequence[Record]) -> List[str]:
    """``test_x: +3.2% (95% interval -3.5% to +9.0%, median of 5 vs 5 repeats), limit +10%: pass``."""
    compared = [(record.nodeid, record.extra["comparison"]) for record in records
                if isinstance(record.extra.get("comparison"), Mapping) and "ratio" in record.extra["comparison"]]
    if not compared:
        return []
    lines = [f"energy comparison with {compared[0][1].get('run')}:"]
    lines += [f"  {nodeid}: {_growth(entry)}" for nodeid, entry in compared]
    return lines


def _growth(entry: Mapping[str, Any]) -> str:
    ratio, low, high = entry["ratio"], entry.get("low"), entry.get("high")
    now, before = entry.get("repeats") or (1, 1)
    if low is None or high is None:
        spread = f"{now} vs {before} repeats: cannot separate a change from noise"
    else:
        spread = f"{entry.get('confidence', 0.95):.0%} interval {low - 1:+.1%} to {high - 1:+.1%}, median of {now} vs {before} repeats"
    limit = entry.get("limit")
    shown_limit = "no limit (auto: no noise floor yet)" if limit is None else f"limit +{limit * 100:g}%"
    floor = entry.get("noise_floor")
    noise = f", noise {floor['noise']:.0%}" if floor else ""
    return f"{ratio - 1:+.1%} ({spread}), {shown_limit}{noise}: {entry.get('verdict', 'pass')}"


def emissions_lines(records: Sequence[Record]) -> List[str]:
    """``emissions: 1.2e-05 kg CO2eq over 3 tests (56 g CO2eq/kWh, from the carbon-intensity setting)``; none without one."""
    emissions = [record.extra["emissions"] for record in records if isinstance(record.extra.get("emissions"), Mapping)]
    if not emissions:
        return []
    total = sum(entry["kg_co2eq"] for entry in emissions)
    intensity = emissions[0]["carbon_intensity_g_per_kwh"]
    return [f"emissions: {total:.3g} kg CO2eq over {len(emissions)} measured tests ({intensity:g} g CO2eq/kWh, from the "
            f"{emissions[0]['source']})"]
