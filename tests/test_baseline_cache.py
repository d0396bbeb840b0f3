"""The baseline cache on real files: hit, miss, fingerprint change, expiry, refresh,
corrupt and foreign entries, and two processes storing at once."""

from __future__ import annotations

import datetime
import json
import multiprocessing
import subprocess
import sys

import jsonschema
import pytest

from pytest_energy.account.baseline_cache import (
    SCHEMA,
    BaselineCache,
    BaselineCacheError,
    BaselineEntry,
    summarize_repeats,
)
from pytest_energy.measure.machine import fingerprint, hardware_facts
from pytest_energy.store import schemas
from pytest_energy.store.schemas import BASELINE_CACHE_SCHEMA, SCHEMA_DIR

A100 = hardware_facts(["NVIDIA A100-SXM4-40GB"], "550.54", "AMD EPYC 7742", "nvml-counter+rapl-counter")
NODEID = "tests/test_baseline.py::test_ten_epochs"
MEASURED = datetime.datetime(2024, 6, 1, 12, 0, tzinfo=datetime.timezone.utc)


def entry_for(hardware=A100, energies=(115200.0,), nodeid=NODEID, measured_at=MEASURED) -> BaselineEntry:
    meter = str(hardware["meter"])
    return BaselineEntry.from_repeats(hardware, list(energies), meter=meter, nodeid=nodeid, measured_at=measured_at)


def test_fingerprint_is_stable_and_covers_each_fact():
    assert fingerprint(A100) == fingerprint(dict(reversed(list(A100.items()))))
    assert fingerprint({**A100, "hostname": "ci-7", "measured": "today"}) == fingerprint(A100)
    assert len(fingerprint(A100)) == 16
    changed = [
        hardware_facts(["NVIDIA H100 80GB HBM3"], "550.54", "AMD EPYC 7742", "nvml-counter+rapl-counter"),
        hardware_facts(["NVIDIA A100-SXM4-40GB"] * 2, "550.54", "AMD EPYC 7742", "nvml-counter+rapl-counter"),
        hardware_facts(["NVIDIA A100-SXM4-40GB"], "535.104", "AMD EPYC 7742", "nvml-counter+rapl-counter"),
        hardware_facts(["NVIDIA A100-SXM4-40GB"], "550.54", "Intel Xeon Gold 6248", "nvml-counter+rapl-counter"),
        hardware_facts(["NVIDIA A100-SXM4-40GB"], "550.54", "AMD EPYC 7742", "codecarbon-estimate"),
    ]
    assert len({fingerprint(facts) for facts in changed} | {fingerprint(A100)}) == 6


def test_gpu_order_does_not_change_the_fingerprint():
    first = hardware_facts(["A", "B"], "1", "cpu", "nvml-counter")
    assert fingerprint(first) == fingerprint({**first, "gpu_models": ["B", "A"]})


def test_summarize_repeats_mean_std_and_spread_warning():
    mean, std, warning = summarize_repeats([100.0, 110.0, 90.0])
    assert (mean, std, warning) == (pytest.approx(100.0), pytest.approx(10.0), None)
    assert summarize_repeats([50.0]) == (50.0, 0.0, None)
    mean, std, warning = summarize_repeats([100.0, 200.0])
    assert std / mean > 0.2
    assert "varies by 47% across 2 repeats" in warning and "0.030 ± 0.020 kWh" in warning
    for bad in ([], [0.0], [-1.0, 2.0], [float("nan")]):
        with pytest.raises(ValueError):
            summarize_repeats(bad)


def test_entry_round_trips_through_json():
    entry = entry_for(energies=(100.0, 120.0))
    again = BaselineEntry.from_json(json.loads(json.dumps(entry.to_json())))
    assert again == entry
    assert again.energy_j == pytest.approx(110.0) and again.std_j == pytest.approx(14.142, abs=1e-3)
    assert again.measured_at == "2024-06-01T12:00:00+00:00" and again.schema == SCHEMA


@pytest.mark.parametrize(
    ("change", "phrase"),
    [({"schema": "other-tool/1"}, "$.schema: 'pytest-energy/baseline/1' was expected"),
     ({"energy_j": 5.0}, "energy_j 5.0 does not agree with energies_j"),
     ({"energies_j": []}, "$.energies_j: [] should be non-empty"),
     ({"energies_j": [100.0, float("nan")]}, "$.energies_j[1]: nan is not a finite number"),
     ({"fingerprint": "0" * 16}, "fingerprint does not match"),
     ({"measured_at": "2024-06-01T12:00:00"}, "no time zone"),
     ({"extra": 1}, "$: Additional properties are not allowed ('extra' was unexpected)"),
     ({"nodeid": ""}, "$.nodeid: '' should be non-empty")],
)
def test_from_json_is_strict(change, phrase):
    data = {**entry_for().to_json(), **change}
    with pytest.raises(ValueError) as raised:
        BaselineEntry.from_json(data)
    assert phrase in str(raised.value)


def test_miss_then_store_then_hit(tmp_path):
    cache = BaselineCache(tmp_path / "energy-baseline")
    key = fingerprint(A100)
    lookup = cache.load(key)
    assert (lookup.entry, lookup.status) == (None, "miss")
    stored = entry_for(energies=(110000.0, 120400.0))
    path = cache.store(stored)
    assert path == tmp_path / "energy-baseline" / f"{key}.json"
    lookup = cache.load(key, max_age_s=3600, nodeid=NODEID, now=MEASURED + datetime.timedelta(minutes=5))
    assert lookup.status == "hit" and lookup.entry == stored
    assert "reused baseline measured 2024-06-01T12:00:00+00:00" in lookup.message


def test_fingerprint_change_is_reported_and_both_entries_are_kept(tmp_path):
    cache = BaselineCache(tmp_path)
    cache.store(entry_for())
    h100 = hardware_facts(["NVIDIA H100 80GB HBM3"], "550.54", "AMD EPYC 7742", "nvml-counter+rapl-counter")
    lookup = cache.load(fingerprint(h100))
    assert lookup.status == "fingerprint-changed" and lookup.entry is None
    assert fingerprint(A100) in lookup.message
    cache.store(entry_for(hardware=h100, energies=(90000.0,)))
    assert cache.load(fingerprint(A100)).entry.energy_j == pytest.approx(115200.0)
    assert cache.load(fingerprint(h100)).entry.energy_j == pytest.approx(90000.0)


def test_entry_older_than_max_age_expires(tmp_path):
    cache = BaselineCache(tmp_path)
    cache.store(entry_for())
    key = fingerprint(A100)
    day = datetime.timedelta(days=1)
    assert cache.load(key, max_age_s=7 * 86400, now=MEASURED + 6 * day).status == "hit"
    lookup = cache.load(key, max_age_s=7 * 86400, now=MEASURED + 8 * day)
    assert lookup.status == "expired" and lookup.entry is None and "691200 s old" in lookup.message
    assert cache.load(key, max_age_s=None, now=MEASURED + 800 * day).status == "hit"


def test_a_different_baseline_test_is_not_reused(tmp_path):
    cache = BaselineCache(tmp_path)
    cache.store(entry_for())
    lookup = cache.load(fingerprint(A100), nodeid="tests/test_baseline.py::test_two_epochs")
    assert lookup.status == "baseline-changed" and "test_ten_epochs" in lookup.message


def test_refresh_clears_the_entry_and_a_new_store_replaces_it(tmp_path):
    cache = BaselineCache(tmp_path)
    cache.store(entry_for())
    key = fingerprint(A100)
    assert cache.clear(key) == [tmp_path / f"{key}.json"]
    assert cache.load(key).status == "miss"
    assert cache.clear(key) == []
    cache.store(entry_for(energies=(120000.0,)))
    cache.store(entry_for(energies=(130000.0,)))
    assert cache.load(key).entry.energy_j == pytest.approx(130000.0)


def test_clear_without_fingerprint_removes_every_entry(tmp_path):
    cache = BaselineCache(tmp_path)
    other = hardware_facts([], None, "Apple M2", "codecarbon-estimate")
    cache.store(entry_for())
    cache.store(entry_for(hardware=other))
    assert len(cache.clear()) == 2
    assert not list(tmp_path.glob("*.json"))


@pytest.mark.parametrize(
    "content",
    [b"{\"fingerprint\": \"abc\", \"energy_j\": 1", b"\xff\xfe not utf-8", b"[1, 2, 3]",
     json.dumps({"schema": "pytest-benchmark/4", "machine_info": {}}).encode()],
    ids=["truncated", "binary", "not-an-object", "foreign-schema"],
)
def test_corrupt_or_foreign_entry_is_discarded_and_reported(tmp_path, content):
    cache = BaselineCache(tmp_path)
    key = fingerprint(A100)
    (tmp_path / f"{key}.json").write_bytes(content)
    lookup = cache.load(key)
    assert lookup.status == "corrupt" and lookup.entry is None
    assert "discarded the corrupt or foreign baseline cache entry" in lookup.message
    assert not (tmp_path / f"{key}.json").exists()
    assert cache.load(key).status == "miss"


def test_the_shipped_cache_schema_is_valid_and_entries_written_satisfy_it():
    schema = json.loads((SCHEMA_DIR / BASELINE_CACHE_SCHEMA).read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    checker = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    assert list(checker.iter_errors(entry_for(energies=(100.0, 120.0)).to_json())) == []
    assert schema["properties"]["schema"]["const"] == SCHEMA


def test_an_entry_whose_hardware_facts_have_the_wrong_types_is_discarded(tmp_path):
    """Consistently fingerprinted, so only the schema's description of the hardware facts catches it."""
    hardware = {**A100, "gpu_count": "1"}
    key = fingerprint(hardware)
    entry = {**entry_for().to_json(), "hardware": hardware, "fingerprint": key}
    (tmp_path / f"{key}.json").write_text(json.dumps(entry), encoding="utf-8")
    lookup = BaselineCache(tmp_path).load(key)
    assert (lookup.status, lookup.entry) == ("corrupt", None)
    assert lookup.message == (f"discarded the corrupt or foreign baseline cache entry {tmp_path / f'{key}.json'}: "
                              "$.hardware.gpu_count: '1' is not of type 'integer'")
    assert not (tmp_path / f"{key}.json").exists()


def test_jsonschema_is_imported_by_the_first_check_not_with_the_plugin():
    probe = (
        "import sys\n"
        "import pytest_energy.plugin, pytest_energy.session_plugin\n"
        "print('jsonschema' in sys.modules)\n"
        "from pytest_energy.account.baseline_cache import BaselineEntry\n"
        "try:\n"
        "    BaselineEntry.from_json({})\n"
        "except ValueError:\n"
        "    print('jsonschema' in sys.modules)\n"
    )
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert completed.stdout.split() == ["False", "True"]


def test_an_entry_filed_under_another_fingerprint_is_not_trusted(tmp_path):
    cache = BaselineCache(tmp_path)
    wrong = "0123456789abcdef"
    (tmp_path / f"{wrong}.json").write_text(json.dumps(entry_for().to_json()))
    lookup = cache.load(wrong)
    assert lookup.status == "corrupt" and "describes" in lookup.message


def test_store_refuses_an_entry_load_would_discard(tmp_path):
    cache = BaselineCache(tmp_path)
    with pytest.raises(ValueError, match="fingerprint does not match"):
        cache.store(BaselineEntry(**{**entry_for().__dict__, "fingerprint": "0" * 16}))
    assert not list(tmp_path.glob("*.json"))


def _store_repeatedly(directory: str, energy_j: float, count: int) -> None:
    cache = BaselineCache(directory)
    for index in range(count):
        cache.store(entry_for(energies=(energy_j + index,)))


def _load_repeatedly(directory: str, count: int, statuses) -> None:
    cache = BaselineCache(directory)
    for _ in range(count):
        statuses.append(cache.load(fingerprint(A100)).status)


def test_two_processes_storing_at_once_leave_one_valid_entry(tmp_path):
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        statuses = manager.list()
        workers = [
            context.Process(target=_store_repeatedly, args=(str(tmp_path), 100000.0, 60)),
            context.Process(target=_store_repeatedly, args=(str(tmp_path), 200000.0, 60)),
            context.Process(target=_load_repeatedly, args=(str(tmp_path), 120, statuses)),
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        assert [worker.exitcode for worker in workers] == [0, 0, 0]
        seen = set(statuses)
    assert seen <= {"hit", "miss"}, f"a reader saw {seen}"
    entry = BaselineCache(tmp_path).load(fingerprint(A100)).entry
    assert entry is not None and entry.energy_j in {100059.0, 200059.0}
    left = sorted(path.name for path in tmp_path.iterdir() if not path.name.endswith(".lock"))
    assert left == [f"{fingerprint(A100)}.json"]  # no temporary file left behind


def test_an_unusable_directory_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(BaselineCacheError, match="cannot use the baseline cache"):
        BaselineCache(blocker / "energy-baseline").load(fingerprint(A100))
    assert blocker.read_text() == "not a directory"


def test_inlining_the_schemas_refs_keeps_what_they_accept() -> None:
    """The validator uses the report schema with its ``$ref``s inlined: same verdicts, recursion kept as a ref."""
    original = json.loads((schemas.SCHEMA_DIR / schemas.REPORT_SCHEMA).read_text(encoding="utf-8"))
    inlined = schemas.inline_local_refs(original)
    assert "$ref" not in json.dumps({key: value for key, value in inlined.items() if key != "$defs"})
    energy = inlined["properties"]["tests"]["items"]["properties"]["energy_j"]
    assert energy == original["$defs"]["joules"]
    recursive = {"$defs": {"node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}}}},
                 "properties": {"head": {"$ref": "#/$defs/node"}}}
    head = schemas.inline_local_refs(recursive)["properties"]["head"]
    assert head["properties"]["next"] == {"$ref": "#/$defs/node"}
    validator = jsonschema.Draft202012Validator
    for document in ({"schema": "pytest-energy/1"}, {"tests": [{"energy_j": -1}]}, [], {"tests": "none"}):
        assert validator(inlined).is_valid(document) == validator(original).is_valid(document)
