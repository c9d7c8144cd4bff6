"""Profile file: round trip, CSV, schema version check, ``us3l profile show``."""

from __future__ import annotations

import json

import pytest

from us3l.cli import main
from us3l.errors import US3LError
from us3l.profiler.profile_file import Profile, ProfileRecord, csv_text, load_profile, write_profile
from us3l.profiler.stats import summarize


def make_profile() -> Profile:
    recs = tuple(
        ProfileRecord(width=w, channels=int(512 * w), macs=int(1e6 * w), params=int(1e5 * w),
                      weight_bytes=int(4e5 * w), activation_bytes=1024, latency=summarize([1.0 * w, 1.1 * w, 1.2 * w]),
                      stop_reason="target")
        for w in (0.25, 0.5, 1.0)
    )
    return Profile(model="toy", device="cpu", backend="onnx", precision="fp32", input_shape=(1, 3, 32, 32),
                   threads=2, policy={"warmup": 1}, fingerprint={"cpu": {"model": "x"}}, records=recs)


def test_round_trip_and_csv(tmp_path):
    prof = make_profile()
    jp, cp = write_profile(prof, tmp_path)
    assert jp.name == "toy-cpu-onnx-fp32.json" and cp.name == "toy-cpu-onnx-fp32.csv"
    back = load_profile(jp)
    assert back.records == prof.records and back.input_shape == prof.input_shape
    doc = json.loads(jp.read_text())
    assert doc["kind"] == "profile" and doc["schema_version"] == 1 and doc["tool"] == "us3l"
    lat = doc["records"][0]["latency"]
    assert set(lat) >= {"n", "mean_ms", "std_ms", "p50_ms", "p90_ms", "p99_ms", "min_ms", "max_ms", "ci95_ms",
                        "rel_ci_halfwidth", "stable", "samples_ms"}
    assert set(lat["ci95_ms"]) == {"p50", "p90", "p99"}
    lines = cp.read_text().splitlines()
    assert lines[0].startswith("width,channels,macs") and len(lines) == 4
    assert csv_text(prof) == cp.read_text()
    assert not list(tmp_path.glob("*.tmp"))


def test_other_schema_version_is_rejected(tmp_path, capsys):
    jp, _ = write_profile(make_profile(), tmp_path)
    doc = json.loads(jp.read_text())
    doc["schema_version"] = 2
    jp.write_text(json.dumps(doc))
    with pytest.raises(US3LError, match="profile schema version 2, this us3l .* reads version 1"):
        load_profile(jp)
    assert main(["profile", "show", str(jp)]) == 1
    assert "schema version 2" in capsys.readouterr().err
    doc["kind"] = "accuracy"
    jp.write_text(json.dumps(doc))
    with pytest.raises(US3LError, match="not a us3l profile file"):
        load_profile(jp)


def test_an_interpolated_width_without_samples_key_reads_everywhere(tmp_path, capsys):
    """Red-team 2026-12-06: a profile whose interpolated width has no ``samples_ms`` key passed the validator (and us3l
    select), but us3l profile show and the report called it "a damaged profile file (KeyError: 'samples_ms')"."""
    jp, _ = write_profile(make_profile(), tmp_path)
    doc = json.loads(jp.read_text())
    rec = doc["records"][1]
    rec["interpolated"] = True
    rec["latency"].update(n=0, stable=False)
    del rec["latency"]["samples_ms"]
    jp.write_text(json.dumps(doc))
    assert load_profile(jp).records[1].latency.samples_ms == ()
    assert main(["profile", "show", str(jp)]) == 0
    assert "interp." in capsys.readouterr().out


def test_profile_show_table_and_json(tmp_path, capsys):
    jp, _ = write_profile(make_profile(), tmp_path)
    assert main(["profile", "show", str(jp)]) == 0
    assert "toy on cpu" in capsys.readouterr().out  # the table is the result: stdout
    assert main(["profile", "show", str(jp), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "toy"
    assert main(["profile", "show", str(tmp_path / "missing.json")]) == 1
    assert "profile file not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("field", "value", "need"),
    [
        ("latency.p50_ms", float("nan"), "a finite positive number <= 3600000"),  # one hour, in ms
        ("latency.p90_ms", -1.0, "a finite positive number <= 3600000"),  # one hour, in ms
        ("latency.mean_ms", float("inf"), "a finite positive number <= 3600000"),  # one hour, in ms
        ("latency.std_ms", float("nan"), "a finite non-negative number"),
        ("latency.n", 0, "a finite positive integer"),
        ("latency.samples_ms[1]", float("nan"), "a finite positive number <= 3600000"),  # one hour, in ms
        ("latency.ci95_ms.p90[1]", float("nan"), "a finite positive number"),
        ("macs", float("nan"), "a finite positive integer <= 1e+15"),
        ("macs", 0, "a finite positive integer <= 1e+15"),
        ("params", -5, "a finite positive integer <= 1e+15"),
        ("weight_bytes", float("inf"), "a finite non-negative integer <= 1e+15 or null"),
        ("macs", 1e300, "a finite positive integer <= 1e+15"),  # red-team: printed as a 300-digit integer
        ("channels", 2.5, "a finite positive integer <= 1e+15"),
        ("latency.stable", "false", "true or false"),  # red-team: the string read as stable
        ("width", float("nan"), "a finite positive number <= 1"),
        ("width", 1.5, "a finite positive number <= 1"),
    ],
)
def test_measurements_are_validated_on_load(tmp_path, field, value, need):
    jp, _ = write_profile(make_profile(), tmp_path)
    doc = json.loads(jp.read_text())
    target, key = doc["records"][2], field
    *parents, last = field.replace("[", ".").replace("]", "").split(".")
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    jp.write_text(json.dumps(doc))  # json writes NaN / Infinity, as a tampered or buggy writer would
    with pytest.raises(US3LError) as info:
        load_profile(jp)
    assert str(info.value) == f"{jp}: records[2].{key} must be {need}, got {value!r}"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["records"][0]["latency"]["ci95_ms"].update(p90=[0.5, 0.1]),
         "records[0].latency.ci95_ms.p90 must be [low, high] with low <= high, got [0.5, 0.1]"),
        (lambda d: d.update(extra="str"), "extra must be an object, got 'str'"),
        (lambda d: d.update(input_shape=[1, 3, 0, 16]), "input_shape[2] must be a finite positive integer, got 0"),
        (lambda d: d.update(input_shape="1x3x16x16"),
         "input_shape must be [batch, channels, height, width], got '1x3x16x16'"),
        (lambda d: d["records"][1].update(bn=7), "records[1].bn must be a string or null, got 7"),
        (lambda d: d.update(schema_version="1"), "schema_version must be an integer, got '1'"),
    ],
)
def test_hand_edited_fields_are_refused_naming_file_and_field(tmp_path, edit, message):
    """Red-team 2026-12-05: wrong-typed fields got through to an AttributeError in select, or were misread."""
    jp, _ = write_profile(make_profile(), tmp_path)
    doc = json.loads(jp.read_text())
    edit(doc)
    jp.write_text(json.dumps(doc))
    with pytest.raises(US3LError) as info:
        load_profile(jp)
    assert str(info.value) == f"{jp}: {message}"


def test_unsafe_names_in_a_profile_are_refused(tmp_path):
    jp, _ = write_profile(make_profile(), tmp_path)
    doc = json.loads(jp.read_text())
    doc["device"] = "../../ESCAPED"
    jp.write_text(json.dumps(doc))
    with pytest.raises(US3LError, match=r"^.*: device must be a name \(.*\), got '\.\./\.\./ESCAPED'$"):
        load_profile(jp)


def test_new_optional_fields_round_trip_and_old_files_still_load(tmp_path):
    from dataclasses import replace

    prof = make_profile()
    recs = tuple(replace(r, share_s=1.5, timing_s=1.25, stop_reason="budget") for r in prof.records)
    window = {"size": 3, "session_bytes": 10 << 20, "baseline_bytes": 400 << 20, "limit_bytes": 1 << 30,
              "available_bytes": 8 << 30, "max_memory_bytes": 1 << 30, "reason": "memory", "max_live": 3,
              "peak_scope": "sweep"}
    budget = {"max_total_seconds": 180.0, "wall_s": 170.2, "prepare_s": 20.0, "measure_s": 150.0,
              "stable_widths": 2, "unstable_widths": 1, "budget_stopped": 1}
    full = replace(prof, records=recs, peak_rss_bytes=700 << 20, window=window, time_budget=budget)
    jp, _ = write_profile(full, tmp_path)
    back = load_profile(jp)
    assert back == full
    assert back.peak_rss_bytes == 700 << 20 and back.window == window and back.time_budget == budget
    assert back.records[0].share_s == 1.5 and back.records[0].timing_s == 1.25
    # a profile written before these fields existed: still schema 1, loads with None
    doc = json.loads(jp.read_text())
    for key in ("peak_rss_bytes", "window", "time_budget"):
        del doc[key]
    for r in doc["records"]:
        del r["share_s"], r["timing_s"]
    old = tmp_path / "old.json"
    old.write_text(json.dumps(doc))
    back = load_profile(old)
    assert back.peak_rss_bytes is None and back.window is None and back.records[0].share_s is None
    # and damaged values are one-line errors
    for key, value, match in (("peak_rss_bytes", -1, "peak_rss_bytes"), ("window", "big", "window must be"),
                              ("window", {"size": 0}, "window.size")):
        bad = dict(doc, **{key: value})
        old.write_text(json.dumps(bad))
        with pytest.raises(US3LError, match=match):
            load_profile(old)


def test_a_measurement_the_reader_would_refuse_is_not_written(tmp_path):
    from dataclasses import replace

    from us3l.errors import US3LError

    prof = make_profile()
    huge = replace(prof.records[0], latency=summarize([1e308, 1e308, 1e308]))  # a remote runner's garbage
    bad = replace(prof, records=(huge, *prof.records[1:]))
    with pytest.raises(US3LError, match=r"^the measured profile is not valid, not written: .*samples_ms\[0\] "
                                        r"must be a finite positive number <= 3600000, got 1e\+308$"):
        write_profile(bad, tmp_path)
    assert not list(tmp_path.iterdir())


def test_show_reads_every_profile_select_reads(tmp_path, capsys):
    """Fields the validator lets be absent (a profile edited by hand or written by another tool: no ``ci95_ms``
    bound, no byte counts, no ``stable``) are shown as —, not refused: `profile show` said `error: KeyError:
    'p50'` or `damaged profile file (KeyError: 'weight_bytes')` for a file `us3l select` reads (with a warning)."""
    jp, _ = write_profile(make_profile(), tmp_path)
    doc = json.loads(jp.read_text())
    rec = doc["records"][0]
    rec["latency"]["ci95_ms"] = {}
    del rec["weight_bytes"], rec["activation_bytes"], rec["latency"]["stable"], rec["latency"]["rel_ci_halfwidth"]
    jp.write_text(json.dumps(doc))
    assert main(["select", "--profile", str(jp), "--macs", "1e9", "--out", str(tmp_path / "sel")]) == 0
    capsys.readouterr()
    assert main(["profile", "show", str(jp), "--wide"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "0.25" in line)
    assert "—" in row and "no" in row
    back = load_profile(jp).records[0]
    assert back.weight_bytes is None and back.activation_bytes is None and not back.latency.stable


def test_a_table_written_by_an_older_us3l_is_replaced(tmp_path):
    """Re-profiling into a folder that holds an older us3l's profile (its CSV without the later columns bn and
    graph_sha256) said `refusing to replace ...csv: it is not a us3l profile table`; a user's own CSV still
    is refused."""
    header = ("width,channels,macs,params,weight_bytes,activation_bytes,n,mean_ms,std_ms,p50_ms,p90_ms,p99_ms,min_ms,"
              "max_ms,p50_ci_lo_ms,p50_ci_hi_ms,p90_ci_lo_ms,p90_ci_hi_ms,p99_ci_lo_ms,p99_ci_hi_ms,rel_ci_halfwidth,"
              "stable,stop_reason")  # the table of us3l before 2026-12-01 (010b2a8)
    prof = make_profile()
    old = tmp_path / f"{prof.stem}.csv"
    old.write_text(header + "\n0.25,128\n", encoding="utf-8")
    _, cp = write_profile(prof, tmp_path)
    assert cp.read_text() == csv_text(prof)
    old.write_text("width,my own notes\n", encoding="utf-8")
    with pytest.raises(US3LError, match="refusing to replace .*: it is not a us3l profile table"):
        write_profile(prof, tmp_path)


_GRID = {"artifact": "sw", "sha256": "0" * 64, "widths": [1.0, 0.5, 0.25]}


@pytest.mark.parametrize(
    ("switchable", "message"),
    [
        (5, "extra.switchable must be an object or null, got 5"),
        ({**_GRID, "widths": "abc"}, "extra.switchable.widths must be a non-empty list of widths, got 'abc'"),
        ({k: v for k, v in _GRID.items() if k != "artifact"}, "extra.switchable.artifact must be a string, got None"),
        ({**_GRID, "relative_to": "cwd"}, 'extra.switchable.relative_to must be "profile" (the artifact path starts '
                                           "at the profile's folder) or absent, got 'cwd'"),
        ({**_GRID, "widths": [1.0, 0.5]},
         "extra.switchable.widths does not hold the record width 0.25: not the artifact's grid"),
    ],
)
def test_a_damaged_switchable_grid_is_refused_in_one_line(tmp_path, capsys, switchable, message):
    """`us3l select --latency-schedule` maps a switchable profile's widths to their index in the artifact's grid:
    an edited `extra.switchable` made it fail with `error: TypeError: 'int' object is not subscriptable`,
    `error: 0.25 is not in list` or `error: KeyError: 'artifact'`."""
    jp, _ = write_profile(make_profile(), tmp_path)
    doc = json.loads(jp.read_text())
    doc["extra"] = {"switchable": _GRID}
    jp.write_text(json.dumps(doc))
    load_profile(jp)  # the grid us3l profile --artifact writes
    doc["extra"] = {"switchable": switchable}
    jp.write_text(json.dumps(doc))
    code = main(["select", "--profile", str(jp), "--latency-schedule", "1,2", "--out", str(tmp_path / "sel")])
    assert code == 1
    assert capsys.readouterr().err == f"error: {jp}: {message}\n"


def test_show_prints_the_files_text_fields_as_text(tmp_path, capsys):
    """`bn` and `stop_reason` are free strings in a profile file and table cells are rich markup: `[/x]` made
    `us3l profile show` fail with `error: MarkupError: closing tag ...`, and `[bold]calibrated` lost its brackets."""
    jp, _ = write_profile(make_profile(), tmp_path)
    doc = json.loads(jp.read_text())
    doc["records"][0]["bn"] = "[bold]calibrated"
    doc["records"][1].update(stop_reason="[/x]")
    doc["records"][1]["latency"]["stable"] = False
    jp.write_text(json.dumps(doc))
    assert main(["profile", "show", str(jp), "--wide"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "[bold]calibrated" in out and "no ([/x])" in out


@pytest.mark.parametrize(("key", "value", "message"), [
    ("bn", "calibrated\x1b[31m", "records[0].bn must be printable text, got 'calibrated\\x1b[31m'"),
    ("stop_reason", "target\n", "records[0].stop_reason must be printable text, got 'target\\n'"),
    ("graph_sha256", "ab" * 31, f"records[0].graph_sha256 must be a sha256 (64 hex digits) or null, got '{'ab' * 31}'"),
])
def test_a_text_field_with_control_characters_is_refused(key, value, message, tmp_path, capsys):
    """Red-team 2026-12-07: `profile show` wrote a record's raw ESC sequence to the terminal."""
    jp, _ = write_profile(make_profile(), tmp_path)
    doc = json.loads(jp.read_text())
    doc["records"][0][key] = value
    jp.write_text(json.dumps(doc))
    assert main(["profile", "show", str(jp)]) == 1
    assert capsys.readouterr().err.strip() == f"error: {jp}: {message}"


def test_show_says_drift_for_a_width_that_met_the_ci_target_but_is_unstable(tmp_path, capsys):
    """A width stops at `target` once its median's interval meets the target; it is unstable then only through
    the drift check. The table said "no (target)", which reads as "the target was not met"."""
    jp, _ = write_profile(make_profile(), tmp_path)
    doc = json.loads(jp.read_text())
    doc["records"][0]["latency"]["stable"] = False  # stop_reason "target": drift
    doc["records"][1].update(stop_reason="time_cap")
    doc["records"][1]["latency"]["stable"] = False
    jp.write_text(json.dumps(doc))
    assert main(["profile", "show", str(jp), "--wide"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "no (drift)" in out and "no (time_cap)" in out and "no (target)" not in out


def test_show_says_the_runtimes_default_threads_where_none_were_pinned(tmp_path, capsys):
    """`threads: null` (nothing pinned) showed as "None threads" in the title."""
    jp, _ = write_profile(make_profile(), tmp_path)
    doc = json.loads(jp.read_text())
    doc["threads"] = None
    jp.write_text(json.dumps(doc))
    assert main(["profile", "show", str(jp), "--wide"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "the runtime's default threads)" in out and "None threads" not in out


def test_select_refuses_the_same_latency_budget_twice(tmp_path, capsys):
    """Red-team 2026-12-06 (rtF): `--latency-schedule 1,1` was deduplicated without a word (a typo for 1,10 went
    unnoticed); 1 and 1.0 are the same budget too."""
    jp, _ = write_profile(make_profile(), tmp_path)
    for text, shown in (("1,1", "1"), ("2,1.0,1", "1")):
        code = main(["select", "--profile", str(jp), "--latency-schedule", text, "--out", str(tmp_path / "sel")])
        assert code == 1
        assert capsys.readouterr().err == f"error: --latency-schedule lists {shown} twice\n"
    assert not (tmp_path / "sel" / "selection.json").exists()


def _edit(doc: dict, key: str, value: object) -> None:
    """Set ``key`` (``a.b[2].c``) of a profile document to ``value``."""
    *parents, last = key.replace("[", ".").replace("]", "").split(".")
    for part in parents:
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    doc[int(last) if isinstance(doc, list) else last] = value


@pytest.mark.parametrize(("key", "value", "message"), [
    ("records[1].latency", summarize([1e303, 1e303, 1e303]).to_dict(),  # statistics and samples agree
     "records[1].latency.samples_ms[0] must be a finite positive number <= 3600000, got 1e+303"),
    ("records[1].latency.samples_ms[1]", 1e303,
     "records[1].latency.samples_ms[1] must be a finite positive number <= 3600000, got 1e+303"),
    ("records[1].latency.samples_ms[0]", 3600000.5,
     "records[1].latency.samples_ms[0] must be a finite positive number <= 3600000, got 3600000.5"),
    ("peak_rss_bytes", 10**30,
     f"peak_rss_bytes must be an integer from 1 to 1125899906842624 or null, got {10**30}"),
    ("window.baseline_bytes", 2**50 + 1,
     f"window.baseline_bytes must be an integer from 1 to 1125899906842624 or null, got {2**50 + 1}"),
    ("window.available_bytes", -1,
     "window.available_bytes must be an integer from 0 to 1125899906842624 or null, got -1"),
])
def test_a_profile_read_back_is_held_to_the_bounds_of_a_fresh_measurement(tmp_path, capsys, key, value, message):
    """A sample above one hour per inference (measure.MAX_SAMPLE_S) and a memory figure above 2**50 bytes
    (remote.MAX_MEMORY_BYTES, remote.FACTS) are refused when a runner sends them, but a hand-edited profile with
    samples of 1e303 ms or a peak of 10**30 bytes was selected from and shown. On load: the same bounds, one line."""
    from dataclasses import replace

    window = {"size": 2, "session_bytes": 10 << 20, "baseline_bytes": 400 << 20, "limit_bytes": None,
              "available_bytes": 8 << 30, "max_memory_bytes": None, "reason": "memory", "max_live": 2,
              "peak_scope": "sweep"}
    jp, _ = write_profile(replace(make_profile(), peak_rss_bytes=700 << 20, window=window), tmp_path)
    doc = json.loads(jp.read_text())
    _edit(doc, key, value)
    jp.write_text(json.dumps(doc))
    for argv in (["select", "--profile", str(jp), "--macs", "1e9", "--out", str(tmp_path / "sel")],
                 ["profile", "show", str(jp)]):
        assert main(argv) == 1, argv
        captured = capsys.readouterr()
        assert captured.err == f"error: {jp}: {message}\n" and captured.out == ""
    assert not (tmp_path / "sel").exists()


def test_a_profile_at_the_bounds_still_loads(tmp_path, capsys):
    """Samples of exactly one hour per inference and memory figures of exactly 2**50 bytes are what a measurement
    may hold: read back and selected from."""
    from dataclasses import replace

    from us3l.profiler.measure import MAX_SAMPLE_S
    from us3l.profiler.remote import MAX_MEMORY_BYTES

    prof = make_profile()
    hour = replace(prof.records[2], latency=summarize([MAX_SAMPLE_S * 1e3] * 3))
    window = {"size": 1, "session_bytes": 10 << 20, "baseline_bytes": MAX_MEMORY_BYTES, "limit_bytes": None,
              "available_bytes": MAX_MEMORY_BYTES, "max_memory_bytes": None, "reason": "memory", "max_live": 1,
              "peak_scope": "sweep"}
    full = replace(prof, records=(*prof.records[:2], hour), peak_rss_bytes=MAX_MEMORY_BYTES, window=window)
    jp, _ = write_profile(full, tmp_path)
    assert load_profile(jp) == full
    assert main(["select", "--profile", str(jp), "--latency-ms", "3600001", "--out", str(tmp_path / "sel")]) == 0, \
        capsys.readouterr().err
    assert json.loads((tmp_path / "sel" / "selection.json").read_text())["devices"][0]["chosen"]["width"] == 1.0
