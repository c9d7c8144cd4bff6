"""Find and load the files of a pipeline folder (the layout ``us3l quickstart`` writes).

Every file is read with the loader of the package that owns its format (``us3l.eval.accuracy``,
``us3l.profiler.profile_file``, ``us3l.deploy.select``, ``us3l.deploy.manifest``, ``us3l.checkpoint``), so the
report never re-parses a format on its own. A file that is absent is recorded as *missing*; a file that is present but
unreadable (invalid JSON, another kind or schema version, damaged fields) is kept as a :class:`Loaded` with
``error`` set, so the page can say so in one line and still render everything else.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from us3l.errors import US3LError

if TYPE_CHECKING:
    from us3l.deploy.bn_stats_record import WidthBNStats

T = TypeVar("T")

RUN_DIR = "run"
ACCURACY_FILE = "accuracy.json"
PROFILES_DIR = "profiles"
SELECTION_FILE = "selection.json"
ARTIFACTS_DIR = "artifacts"
SUMMARY_FILE = "summary.json"
CHECKPOINT_META = "checkpoint.json"
METRICS_FILE = "metrics.jsonl"
WEIGHTS_FILE = "checkpoint.safetensors"
#: Set by the report in a manifest document whose files it re-hashed and found different (never written).
REHASH_KEY = "report_rehash"
#: Set by the report in a one-width manifest whose ``model.width`` it could not check against the graph (never
#: written): why, in words. The page marks that width "unchecked" and ``us3l report`` warns once per artifact.
WIDTH_UNCHECKED_KEY = "report_width_unchecked"
#: Set by the report in a manifest that records the checkpoint it was exported from (``source.checkpoint_sha256``)
#: when the folder holds no run weights to hash and check that digest against, or, of those weights, records no
#: digest of its calibrated BN statistics, and in the ``extra`` of a switchable artifact's profile whose checkpoint
#: digest ``us3l profile --artifact`` could not check (``extra.switchable.checkpoint_checked`` false) when the folder
#: holds no run weights to check it against either (never written): why, in words. The page marks the artifact or
#: profile "(source unchecked)" and ``us3l report`` warns once per file.
SOURCE_UNCHECKED_KEY = "report_source_unchecked"

#: How each input is produced, for the "missing" notes of the page.
PRODUCERS: dict[str, str] = {
    "run": "us3l train (or us3l quickstart)",
    "accuracy": "us3l eval",
    "profiles": "us3l profile",
    "selection": "us3l select",
    "artifacts": "us3l export",
    "summary": "us3l quickstart",
}


@dataclass(frozen=True)
class Loaded(Generic[T]):
    """One input file: its path and either the loaded document or the one-line reason it could not be read."""

    path: Path
    doc: T | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.doc is not None


@dataclass
class PipelineFiles:
    """Everything found in a pipeline folder; ``None`` / empty lists mean the input is missing."""

    root: Path
    run: Path  # the run folder read: root/run, or root itself when root is a run folder (``run_folder``)
    checkpoint: Loaded[dict[str, Any]] | None = None
    metrics: Loaded[list[dict[str, Any]]] | None = None
    accuracy: Loaded[dict[str, Any]] | None = None
    profiles: list[Loaded[Any]] = field(default_factory=list)  # doc: us3l.profiler.profile_file.Profile
    selection: Loaded[dict[str, Any]] | None = None
    manifests: list[Loaded[dict[str, Any]]] = field(default_factory=list)
    summary: Loaded[dict[str, Any]] | None = None
    weights_sha256: str | None = None  # sha256 of run/checkpoint.safetensors (None: absent)
    stale: list[str] = field(default_factory=list)  # readable files not bound to what they were computed from
    foreign: list[Path] = field(default_factory=list)  # readable profiles of another model than the run: left out

    def present(self) -> dict[str, bool]:
        """Which inputs were found (readable or not), by input name."""
        return {
            "run": self.checkpoint is not None or self.metrics is not None,
            "accuracy": self.accuracy is not None,
            "profiles": bool(self.profiles),
            "selection": self.selection is not None,
            "artifacts": bool(self.manifests),
            "summary": self.summary is not None,
        }

    def missing(self) -> list[str]:
        """Names of the inputs that are absent."""
        return [name for name, found in self.present().items() if not found]

    def errors(self) -> list[str]:
        """One line per file that is present but could not be read."""
        items: list[Loaded[Any] | None] = [
            self.checkpoint, self.metrics, self.accuracy, self.selection, self.summary,
            *self.profiles, *self.manifests,
        ]
        lines = [error_line(item) for item in items if item is not None and item.error]
        for m in self.manifests:  # re-hashed here: a manifest saying "valid" is not trusted on its own word
            if m.doc is not None and m.doc.get(REHASH_KEY):
                lines.append(f"{m.path}: valid: no ({m.doc[REHASH_KEY]['reason']}): {m.doc[REHASH_KEY]['detail']}")
        return lines + self.stale

    def unchecked_widths(self) -> list[str]:
        """One line per artifact whose ``model.width`` the report could not check against its graph
        (``WIDTH_UNCHECKED_KEY``): the page shows that width as the manifest's word, not a checked fact."""
        return [f"{m.path}: width {m.doc['model'].get('width')} not checked against the graph: "
                f"{m.doc[WIDTH_UNCHECKED_KEY]}" for m in self.manifests
                if m.ok and m.doc is not None and m.doc.get(WIDTH_UNCHECKED_KEY)]

    def unchecked_sources(self) -> list[str]:
        """One line per artifact, then per profile, whose source checkpoint (an artifact's: or BN statistics) the
        report could not check against the run's files (``SOURCE_UNCHECKED_KEY``): the page shows them as the
        manifest's word, not a checked fact."""
        return self.unchecked_artifact_sources() + self.unchecked_profile_sources()

    def unchecked_artifact_sources(self) -> list[str]:
        """``unchecked_sources``' lines of the artifacts (``SOURCE_UNCHECKED_KEY`` in the manifest)."""
        return [_unchecked_source_line(m.path, m.doc) for m in self.manifests
                if m.ok and m.doc is not None and m.doc.get(SOURCE_UNCHECKED_KEY)]

    def unchecked_profile_sources(self) -> list[str]:
        """``unchecked_sources``' lines of the profiles (``SOURCE_UNCHECKED_KEY`` in the profile's ``extra``)."""
        return [_unchecked_source_line(p.path, p.doc.extra) for p in self.profiles
                if p.ok and p.doc is not None and profile_source_unchecked(p.doc)]

    def found_any(self) -> bool:
        return any(self.present().values())

    def readable_any(self) -> bool:
        """Whether at least one input file could be read (a folder of unreadable files has nothing to show)."""
        items: list[Loaded[Any] | None] = [
            self.checkpoint, self.metrics, self.accuracy, self.selection, self.summary, *self.profiles,
            *self.manifests,
        ]
        return any(it is not None and it.ok for it in items)

    def usable_profiles(self) -> list[Any]:
        """The readable profiles of the run's model (``foreign`` ones left out), as loaded documents."""
        return [p.doc for p in self.profiles if p.ok and p.path not in self.foreign]

    def stale_reasons(self, path: Path) -> list[str]:
        """What ``stale`` says about the file ``path`` (its lines, without the leading path)."""
        prefix = f"{path}: "
        return [line.removeprefix(prefix) for line in self.stale if line.startswith(prefix)]


def _unchecked_source_line(path: Path, marked: dict[str, Any]) -> str:
    return f"{path}: source not checked: {marked[SOURCE_UNCHECKED_KEY]}"


def profile_source_unchecked(profile: Any) -> str | None:
    """Why a loaded profile's checkpoint digest is unchecked (``SOURCE_UNCHECKED_KEY`` in its ``extra``), else
    ``None``."""
    extra = getattr(profile, "extra", None)
    why = extra.get(SOURCE_UNCHECKED_KEY) if isinstance(extra, dict) else None
    return why if isinstance(why, str) else None


def error_line(item: Loaded[Any]) -> str:
    """``item``'s error as one line naming its file once (a loader's message that names it is not prefixed)."""
    text = str(item.error)
    return text if str(item.path) in text else f"{item.path}: {text}"


def _load(path: Path, loader: Callable[[Path], T]) -> Loaded[T]:
    """Run ``loader``; turn any failure into a one-line error kept with the path."""
    try:
        return Loaded(path, doc=loader(path))
    except US3LError as exc:
        return Loaded(path, error=_one_line(str(exc)))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return Loaded(path, error=_one_line(f"{type(exc).__name__}: {exc}"))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _read_checkpoint(path: Path) -> dict[str, Any]:
    from us3l.checkpoint import read_meta

    return read_meta(path.parent)


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    """``metrics.jsonl``: one JSON object per epoch; an unreadable line is an error for the whole file, except a
    last line without its newline: an append cut off by a kill (``us3l train --resume`` drops it too)."""
    from us3l.io import read_input_text

    rows: list[dict[str, Any]] = []
    text = read_input_text(path, "metrics file")
    lines = text.splitlines()
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            if i == len(lines) and not text.endswith("\n"):
                break
            raise US3LError(f"line {i} is not valid JSON ({exc.msg})") from None
        except RecursionError:
            raise US3LError(f"line {i} is not valid JSON (nested too deep)") from None
        if not isinstance(row, dict):
            raise US3LError(f"line {i} is not a JSON object")
        rows.append(row)
    return rows


def _read_accuracy(path: Path) -> dict[str, Any]:
    from us3l.eval.accuracy import load_accuracy

    return load_accuracy(path)


def _read_profile(path: Path) -> Any:
    from us3l.profiler.profile_file import load_profile

    return load_profile(path)


def _read_selection(path: Path) -> dict[str, Any]:
    from us3l.deploy.select import read_selection

    doc = read_selection(path)
    if not isinstance(doc.get("devices"), list):
        raise US3LError(f"{path}: selection file has no 'devices' list")
    return doc


def _read_manifest(path: Path) -> dict[str, Any]:
    """The manifest, with every listed file re-hashed and its ``backend.precision``, ``input`` and ``output.shape``
    checked against the graph (``_rehashed``; ``us3l.deploy.manifest_claims.check_graph``, as ``us3l.deploy.load``).
    A switchable export's manifest (kind "switchable_manifest") is checked by
    ``us3l.deploy.switchable_runtime.read_switchable``; one that failed its own verification is shown as it is."""
    from us3l.deploy.manifest import read_artifact_files, read_manifest
    from us3l.deploy.manifest_claims import check_graph
    from us3l.io import read_json

    raw = read_json(path, "manifest")
    if isinstance(raw, dict) and raw.get("kind") == "switchable_manifest":
        from us3l.deploy.switchable_runtime import read_switchable

        if not raw.get("valid"):
            return raw
        return _rehashed(raw, path.parent, lambda: read_switchable(path.parent))
    doc, directory = read_manifest(path)

    def check() -> None:  # the files' hashes, and the graph's claims (as us3l.deploy.load)
        check_graph(doc, path, read_artifact_files(doc, directory))

    return _rehashed(doc, directory, check)


def _rehashed(doc: dict[str, Any], directory: Path, check: Callable[[], object]) -> dict[str, Any]:
    """``doc`` if ``check()`` (the re-hash of its files) passes; otherwise ``valid`` becomes False and
    ``REHASH_KEY`` says why ("hash mismatch", "file missing", "manifest edited", ...)."""
    try:
        check()
    except US3LError as exc:
        text = _one_line(str(exc))
        reason = (
            "manifest edited" if "the manifest was edited" in text
            else "hash mismatch" if "sha256" in text else "file missing" if "is missing" in text
            else "files not as listed"
        )
        detail = text.split(": ", 1)[1] if text.startswith(str(directory)) and ": " in text else text
        return {**doc, "valid": False, REHASH_KEY: {"reason": reason, "detail": detail}}
    return doc


def _confirm_widths(files: PipelineFiles) -> None:
    """The width of each valid one-width artifact whose manifest records no ``model.model_kwargs`` (exported before
    2026-12-07, or from a module not built by ``us3l.create_model``: ``_read_manifest`` could not rebuild its
    network). Exported from the run's weights, it is checked against the run's architecture (``checkpoint.json``'s
    model and options, built on the meta device, no weights): the graph's layers must be the network's at
    ``model.width`` (``us3l.deploy.manifest_claims.check_network``); an edited width is shown as the page shows any
    edited manifest: valid no. Otherwise nothing here can check it: ``WIDTH_UNCHECKED_KEY`` says why, and the page
    marks the width unchecked rather than present the manifest's word as a checked fact. A valid switchable
    manifest of the run's weights must name the run's model, with the run's network's feature sizes
    (``_check_switchable_model``): its graph records no model name."""
    meta = files.checkpoint.doc if files.checkpoint is not None and files.checkpoint.ok else None
    network, unbuilt = None, False
    for index, item in enumerate(files.manifests):
        doc = item.doc
        switchable = item.ok and doc.get("kind") == "switchable_manifest"
        if (not item.ok or not doc.get("valid")
                or (not switchable and (doc.get("model") or {}).get("model_kwargs") is not None)):  # check_graph did
            continue
        ours = meta is not None and files.weights_sha256 is not None and \
            _source(doc).get("checkpoint_sha256") == files.weights_sha256
        if ours and network is None and not unbuilt:
            try:
                network = _run_architecture(meta)
            except (US3LError, TypeError, ValueError, RuntimeError):  # the run section says why checkpoint.json is bad
                unbuilt = True
        if switchable:  # a switchable graph records no model name: of the run's weights, it is the run's model
            if ours and network is not None:
                files.manifests[index] = dataclasses.replace(item, doc=_rehashed(
                    doc, item.path.parent, lambda d=doc, i=item, n=network: _check_switchable_model(d, i.path, n)))
            continue
        if ours and network is not None:
            checked = _rehashed(doc, item.path.parent, lambda d=doc, i=item, n=network: _check_width(d, i.path, n))
        else:
            why = "the run's checkpoint.json does not build its network" if ours else \
                "it is not of this folder's run weights, whose architecture could check it"
            checked = {**doc, WIDTH_UNCHECKED_KEY: "the manifest records no model.model_kwargs to rebuild its network "
                       f"from, and {why}; re-export it to have it checked"}
        files.manifests[index] = dataclasses.replace(item, doc=checked)


def _mark_unchecked_sources(files: PipelineFiles) -> None:
    """Each manifest whose tie to the run rests on its word alone gets ``SOURCE_UNCHECKED_KEY`` saying why: without
    the run's weights (``weights_sha256`` None) its ``source.checkpoint_sha256`` cannot be checked against the bytes
    it names (nor, then, its BN statistics); with them, a manifest of those weights that records no BN statistics
    (``us3l.deploy.bn_stats_record``: written before 2026-12-06, or the record deleted; whatever ``model.bn_stats``
    says, which without the record is held to nothing) cannot be compared with the run's ``bn_stats.safetensors``
    (``_bn_stats_drift``). So does (in its ``extra``), without the run's weights, a switchable artifact's profile
    whose ``checkpoint_sha256`` is that artifact's manifest's word, which ``us3l profile --artifact`` could not
    check (``us3l.deploy.select.unchecked_checkpoint``: the checkpoint was absent there): it ties the profile's
    latencies to the run as any other profile's digest does. With the weights that digest is checked here, as an
    artifact's is (another digest: stale, ``_bindings``)."""
    from us3l.deploy.bn_stats_record import bn_stats_records
    from us3l.deploy.select import unchecked_checkpoint
    from us3l.derived import BN_STATS_FILE

    weights = files.run / WEIGHTS_FILE
    for index, item in enumerate(files.manifests):
        claimed = _source(item.doc).get("checkpoint_sha256") if item.ok and item.doc is not None else None
        if not isinstance(claimed, str):
            continue
        if files.weights_sha256 is None:
            why = (f"its manifest says it was exported from checkpoint {claimed[:12]}…, but {weights} is absent to "
                   "hash and check that against (nor its BN statistics)")
        elif claimed == files.weights_sha256 and not bn_stats_records(item.doc):
            why = ("its manifest records no BN statistics it was exported with (source.bn_stats, or a switchable "
                   "one's model.per_width[].bn_stats_sha256: written before 2026-12-06, or the record deleted) to "
                   f"check against {files.run / BN_STATS_FILE}; re-export it to have them checked")
        else:
            continue
        files.manifests[index] = dataclasses.replace(item, doc={**item.doc, SOURCE_UNCHECKED_KEY: why})
    for index, prof in enumerate(files.profiles):
        claimed = getattr(prof.doc, "checkpoint_sha256", None) if prof.ok else None
        if files.weights_sha256 is not None or not isinstance(claimed, str) or \
                not unchecked_checkpoint({"extra": prof.doc.extra, "checkpoint_sha256": claimed}):
            continue
        why = (f"it was profiled through a switchable artifact whose manifest says it was exported from checkpoint "
               f"{claimed[:12]}…, which us3l profile --artifact could not check (extra.switchable.checkpoint_checked "
               f"false, or absent: profiled before 2026-12-07), and {weights} is absent to hash and check that against")
        extra = {**prof.doc.extra, SOURCE_UNCHECKED_KEY: why}
        files.profiles[index] = dataclasses.replace(prof, doc=dataclasses.replace(prof.doc, extra=extra))


def _run_architecture(meta: dict[str, Any]) -> Any:
    """The run's network as ``checkpoint.json`` describes it, on the meta device (shapes only)."""

    from us3l.checkpoint import model_kwargs_of
    from us3l.models import create_model
    from us3l.models.meta import shapes_only

    with shapes_only():
        return create_model(str(meta.get("model")), num_classes=0, **model_kwargs_of(meta))


def _check_switchable_model(doc: dict[str, Any], path: Path, network: Any) -> None:
    """Refuse (one line) a switchable manifest of the run's weights whose ``model.name`` is not the run's model, or
    whose widths' ``feature_dim`` (checked against the file's own record on read) are not the run's network's."""
    run_model = network.registered_as[0]
    name = doc["model"].get("name")
    if name != run_model:
        raise US3LError(f"{path}: model.name {name!r:.60} is not the run's model {run_model}, whose weights "
                        "source.checkpoint_sha256 names (the manifest was edited); re-export the artifact")
    for i, p in enumerate(doc["model"]["per_width"]):
        try:  # a width outside the run's range (another network's): the manifest's, not a traceback
            want = int(network.feature_dim(float(p["width"])))
        except ValueError as exc:
            raise US3LError(f"{path}: model.per_width[{i}].width {p['width']:g} is not a width of the run's "
                            f"{run_model} ({exc}): not exported from the weights source.checkpoint_sha256 names (the "
                            "manifest was edited); re-export the artifact") from None
        if p.get("feature_dim") != want:
            raise US3LError(f"{path}: model.per_width[{i}].feature_dim {p.get('feature_dim')!r:.20} is not the run's "
                            f"{run_model} at width {p['width']:g} ({want} features): not exported from the weights "
                            "source.checkpoint_sha256 names (the manifest was edited); re-export the artifact")


def _check_width(doc: dict[str, Any], path: Path, network: Any) -> None:
    from us3l.deploy.manifest import read_artifact_files
    from us3l.deploy.manifest_claims import check_network

    check_network(doc, path, read_artifact_files(doc, path.parent), network, f"the run's {network.registered_as[0]}")


def _artifact_manifests(root: Path) -> list[Path]:
    """``artifacts/<device>/<name>/manifest.json``, leaving out hidden folders: the staging and swapped-aside
    folders of an export (``.<name>.staging-*``, ``.<name>.old-*``) are never artifacts, even when complete."""
    return [
        p
        for p in sorted((root / ARTIFACTS_DIR).glob("*/*/manifest.json"))
        if not p.parent.name.startswith(".") and not p.parent.parent.name.startswith(".")
    ]


def _bindings(files: PipelineFiles) -> list[str]:
    """One line per readable file computed from another checkpoint or other inputs than the folder holds."""
    root, lines = files.root, []
    weights = files.run / WEIGHTS_FILE
    sha, reference, absent = (files.weights_sha256, str(weights), "") if files.weights_sha256 else (
        *_recorded_checkpoint(files), f"; {weights} is absent")
    meta = files.checkpoint.doc if files.checkpoint is not None and files.checkpoint.ok else {}
    recorded = meta.get("weights_sha256")
    if files.weights_sha256 and isinstance(recorded, str) and recorded != files.weights_sha256:
        lines.append(f"{files.run / CHECKPOINT_META}: stale: describes other weights (sha256 {recorded[:12]}…) than "
                     f"{weights} (sha256 {files.weights_sha256[:12]}…): the run section may not be of these weights "
                     "(replaced, damaged, or a save in progress)")

    def other(recorded: object) -> bool:
        return sha is not None and isinstance(recorded, str) and recorded != sha

    def note(path: Path, what: str, fix: str) -> None:
        lines.append(f"{path}: stale: {what} than {reference} (sha256 {str(sha)[:12]}…{absent}); {fix}")

    if files.accuracy is not None and files.accuracy.ok and other(files.accuracy.doc.get("checkpoint_sha256")):
        note(files.accuracy.path, "computed for another checkpoint", "re-run us3l eval")
    elif files.accuracy is not None and files.accuracy.ok:
        lines.extend(_accuracy_bn_drift(files.accuracy.path, files.accuracy.doc, files.run))
    for prof in files.profiles:
        if prof.ok and other(getattr(prof.doc, "checkpoint_sha256", None)):
            note(prof.path, "profiled from another checkpoint", "re-run us3l profile")
        elif prof.ok:
            lines.extend(_switchable_drift(prof.path, getattr(prof.doc, "extra", None), files.manifests, root))
    run_digests = functools.cache(lambda: _run_bn_digests(files.run))  # read once, for every manifest that asks
    for man in files.manifests:
        source = _source(man.doc) if man.ok else {}
        if man.ok and other(source.get("checkpoint_sha256")):
            note(man.path, "exported from another checkpoint", "re-run us3l export")
        elif man.ok and sha is not None and source.get("checkpoint_sha256") is None:  # `us3l export --model`
            lines.append(f"{man.path}: stale: exported from a fresh model's initial weights, not from {reference} "
                         f"(sha256 {str(sha)[:12]}…{absent}); re-run us3l export --ckpt on the run")
        elif man.ok:
            lines.extend(_bn_stats_drift(man.path, man.doc, files.run, run_digests))
    sel = files.selection
    if sel is not None and sel.ok and isinstance(sel.doc.get("inputs"), dict):
        inputs = sel.doc["inputs"]
        acc = inputs.get("accuracy") if isinstance(inputs.get("accuracy"), dict) else {}
        recorded = [(used_input(sel, acc.get("path"), accuracy_path(root, acc.get("path"))), acc.get("sha256"))]
        for p in inputs.get("profiles") or []:
            if isinstance(p, dict) and isinstance(p.get("path"), str):
                fallback = root / PROFILES_DIR / Path(p["path"]).name
                recorded.append((used_input(sel, p["path"], fallback), p.get("sha256")))
        changed, absent = _drifted(recorded)
        if changed:
            lines.append(
                f"{sel.path}: stale: made from other versions of "
                f"{', '.join(shown_path(root, f) for f in changed)}; re-run us3l select"
            )
        gone = [shown_path(root, f) for f in absent]
        if gone:  # re-profiled under another name, or deleted: the page shows other files than the answer used
            lines.append(f"{sel.path}: stale: made from {', '.join(gone)}, which this folder no longer holds; "
                         "re-run us3l select")
    summary = files.summary
    if summary is not None and summary.ok and isinstance(summary.doc.get("inputs"), dict):  # quickstart's numbers
        recorded = []
        for name in (ACCURACY_FILE, SELECTION_FILE):  # the files it recorded (inputs.*.path: relative to its folder)
            entry = summary.doc["inputs"].get(name)
            path = entry.get("path") if isinstance(entry, dict) else None
            recorded.append((summary.path.parent / path if isinstance(path, str) and path else root / name,
                             entry.get("sha256") if isinstance(entry, dict) else None))
        changed, absent = _drifted(recorded)
        other = [shown_path(root, f) for f in (*changed, *absent)]
        if other:  # copied from another quickstart folder, or the files were re-made by hand since
            lines.append(f"{summary.path}: stale: its numbers come from other versions of {', '.join(other)} than "
                         "this folder holds; re-run us3l quickstart")
    return lines


def _accuracy_bn_drift(path: Path, doc: dict[str, Any], run: Path) -> list[str]:
    """One stale line when the accuracies were measured with other calibrated BN statistics (``calibration``)
    than the run's ``bn_stats.safetensors`` holds now for the same checkpoint and data (recalibrated since: the
    artifacts exported from the run are other networks than those scored)."""
    from us3l.derived import BN_STATS_FILE
    from us3l.eval.calibrate import bn_stats_checkpoint_sha256, read_bn_stats_settings
    from us3l.eval.runner import stats_settings_changes

    stats = run / BN_STATS_FILE
    if not stats.is_file() or bn_stats_checkpoint_sha256(stats) != doc.get("checkpoint_sha256"):
        return []
    changes = stats_settings_changes(doc.get("calibration"), read_bn_stats_settings(run))
    if not changes:
        return []
    return [f"{path}: stale: measured with other BN statistics than {stats} holds now (recalibrated since: "
            f"{', '.join(changes)}); re-run us3l eval"]


def _source(doc: dict[str, Any]) -> dict[str, Any]:
    """A manifest's ``source`` section, ``{}`` unless it is an object: a switchable manifest reaches the report
    without the one-width manifest's field checks, and an edited ``"source": 5`` was an AttributeError traceback."""
    source = doc.get("source")
    return source if isinstance(source, dict) else {}


def _run_bn_digests(run: Path) -> dict[str, str] | str:
    """The run's ``bn_stats.safetensors`` digest per stored width key, or the one-line reason it cannot be read."""
    from us3l.derived import BN_STATS_FILE
    from us3l.eval.calibrate import file_bn_stats_digests

    try:
        return file_bn_stats_digests(run / BN_STATS_FILE)
    except US3LError as exc:
        return _one_line(str(exc))


def _bn_stats_drift(path: Path, doc: dict[str, Any], run: Path,
                    run_digests: Callable[[], dict[str, str] | str]) -> list[str]:
    """A manifest whose width (a switchable one's: each width) was materialized with other calibrated BN statistics
    (``us3l.deploy.bn_stats_record``) than the run's ``bn_stats.safetensors`` holds for it now: one stale line per
    such width (recalibrated, or the file removed, after the export), and one per width exported without calibrated
    statistics that the file holds now (calibrated since: the artifact runs running or batch statistics, the page's
    accuracy the calibrated network). Manifests without the record (older ones) are skipped, and so is every manifest
    when the folder holds no run's weights (a run trained elsewhere, ``train --out runs/r18``: nothing to compare).
    ``run_digests``: the file's digests (``_run_bn_digests``), called only when the file exists and the manifest has
    records."""
    from us3l.deploy.bn_stats_record import bn_stats_records
    from us3l.derived import BN_STATS_FILE
    from us3l.width_key import width_key_text

    records = bn_stats_records(doc)
    if _source(doc).get("init_seed") is not None:  # a freshly initialised model's export (--model): not the run's
        records = [r for r in records if r.sha256 is not None]
    stats = run / BN_STATS_FILE
    if not records or not (run / WEIGHTS_FILE).is_file():  # no run in this folder (trained elsewhere): no comparison
        return []
    if not stats.is_file():
        return [f"{path}: stale: exported with calibrated BN statistics of {_width_label(r)} that {stats} no "
                "longer holds (removed since); re-run us3l calibrate and us3l export" for r in records
                if r.sha256 is not None]
    now = run_digests()
    if isinstance(now, str):
        return [f"{path}: cannot compare its BN statistics with the run's: {now}"]
    lines = []
    for r in records:
        current = now.get(width_key_text(r.canonical))
        if r.sha256 is None:  # exported with running or no statistics: stale once the run has calibrated ones
            if current is not None:
                lines.append(f"{path}: stale: exported without calibrated BN statistics of {_width_label(r)}, which "
                             f"{stats} holds now (calibrated since); re-run us3l export")
            continue
        if r.sha256 in now.values():  # a digest names its width's key: these are that width's statistics, unchanged
            continue
        lines.append(f"{path}: stale: exported with other BN statistics of {_width_label(r)} ({str(r.sha256)[:12]}…) "
                     f"than {stats} holds now ({str(current)[:12]}…: recalibrated since); re-run us3l export")
    return lines


def _switchable_drift(path: Path, extra: object, manifests: list[Loaded[dict[str, Any]]], root: Path) -> list[str]:
    """A profile measured through a switchable artifact (``extra.switchable``: its folder and sha256) whose folder
    now holds another artifact (re-exported since, perhaps with another grid): its latencies, and the width indices
    ``us3l select --latency-schedule`` derives from its grid, are not those of the artifact the page lists. The
    folder is the manifest's the recorded path names (relative to the profile's folder since 2026-12-06; in an
    older profile as given to ``us3l profile --artifact``: absolute, or relative to the folder the command ran in),
    else the only switchable export of that name."""
    from us3l.profiler.switchable_profile import (
        ARTIFACT_RELATIVE_TO,
        manifest_artifact_sha256,
        recorded_artifact,
        recorded_switchable,
        reexported_text,
    )

    sw = recorded_switchable(extra)
    if sw is None:
        return []
    ours = [m for m in manifests if m.ok and m.doc.get("kind") == "switchable_manifest"]
    recorded = Path(sw["artifact"])
    if sw.get("relative_to") == ARTIFACT_RELATIVE_TO:
        places = {recorded_artifact(path, sw).resolve()}
    else:
        places = {p.resolve() for p in (recorded, root / recorded, root.parent / recorded)}
    match = [m for m in ours if m.path.parent.resolve() in places]
    if not match:
        match = [m for m in ours if m.path.parent.name == recorded.name]
    if len(match) != 1:
        return []
    (man,) = match
    now = manifest_artifact_sha256(man.doc)
    if now is None or now == sw["sha256"]:
        return []
    return [f"{path}: stale: {reexported_text(shown_path(root, man.path.parent), sw['sha256'], now)}; a latency "
            "schedule's width indices may name other widths there); re-run us3l profile --artifact"]


def _width_label(record: WidthBNStats) -> str:
    """``width 0.25`` (the stored width), and a switchable artifact's index: ``width 0.25 (index 1)``."""
    return f"width {record.canonical:g}" + ("" if record.index is None else f" (index {record.index})")


def used_input(selection: Loaded[dict[str, Any]], recorded: Any, fallback: Path) -> Path:
    """The file a selection recorded as its input (``inputs.*.path``). A selection written since 2026-12-06
    records it relative to its own folder (``us3l.deploy.select.selection_input``). An older one recorded it as
    given to ``us3l select``, relative to wherever that ran: such a path is looked up inside the selection's
    (pipeline) folder, else from the current folder, else ``fallback`` (the folder's own file of that kind: the
    pipeline folder moved since); when none exists, the recorded path inside the pipeline folder, so that a line
    about the missing file names the one the selection used (``run/accuracy.json``), not a namesake."""
    from us3l.deploy.select import inputs_placed, selection_input

    if not isinstance(recorded, str) or not recorded:
        return fallback
    assert selection.doc is not None
    path = selection_input(selection.path, selection.doc, recorded)
    if path.is_absolute() or inputs_placed(selection.doc):
        return path
    root = selection.path.parent
    return next((f for f in (root / path, path, fallback) if f.is_file()), root / path)


def shown_path(root: Path, path: Path) -> str:
    """``path`` relative to the pipeline folder where it lies inside it, else as it is."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _drifted(recorded: list[tuple[Path, Any]]) -> tuple[list[Path], list[Path]]:
    """Of ``(file, recorded sha256)`` pairs (those without a digest skipped): the files whose bytes differ from
    their digest now, and the files that are gone."""
    from us3l.io import file_sha256

    changed = [f for f, digest in recorded if digest and f.is_file() and file_sha256(f) != digest]
    gone = [f for f, digest in recorded if digest and not f.is_file()]
    return changed, gone


def _recorded_checkpoint(files: PipelineFiles) -> tuple[str | None, str]:
    """Without the run's weights (a folder of results only, or a run folder whose checkpoint.safetensors is gone):
    the checkpoint sha256 the first readable file records (checkpoint.json's weights_sha256, else accuracy.json,
    else a profile, else a manifest), so
    files computed from two different checkpoints are still told apart; (None, "") when none records one."""
    items: list[tuple[Loaded[Any], object]] = []
    if files.checkpoint is not None and files.checkpoint.ok:  # the run's own record of its weights
        items.append((files.checkpoint, files.checkpoint.doc.get("weights_sha256")))
    if files.accuracy is not None and files.accuracy.ok:
        items.append((files.accuracy, files.accuracy.doc.get("checkpoint_sha256")))
    items += [(p, getattr(p.doc, "checkpoint_sha256", None)) for p in files.profiles if p.ok]
    items += [(m, _source(m.doc).get("checkpoint_sha256")) for m in files.manifests if m.ok]
    for item, recorded in items:
        if isinstance(recorded, str) and recorded:
            verb = "records" if item is files.checkpoint else "was computed from"
            return recorded, f"the one {item.path} {verb}"
    return None, ""


def run_model(files: PipelineFiles) -> tuple[str, dict[str, Any] | None] | None:
    """The run's model name and keyword arguments (None: not recorded): from the checkpoint, else accuracy.json."""
    for item in (files.checkpoint, files.accuracy):
        if item is not None and item.ok and isinstance(item.doc.get("model"), str):
            kwargs = item.doc.get("model_kwargs")
            return item.doc["model"], kwargs if isinstance(kwargs, dict) else None
    return None


def answer_of_another_model(files: PipelineFiles, device: Any) -> str | None:
    """Why one device entry of selection.json is not an answer for the run (its model is another), None if it is:
    ``us3l select`` over a profiles/ folder that also holds a ``profile --model`` of another network."""
    run = run_model(files)
    model = device.get("model") if isinstance(device, dict) else None
    if run is None or not isinstance(model, str):
        return None
    from us3l.profiler.profile_file import SWITCHABLE_SUFFIX

    if model == run[0] + SWITCHABLE_SUFFIX:  # chosen from a switchable artifact's profile of the run's model
        model = run[0]
    if model != run[0]:
        return f"this answer is for {model}, not for the run's model {run[0]}"
    name = Path(str(device.get("profile") or "")).name  # same model name, other kwargs: its profile is left out
    for p in files.profiles:
        if p.ok and p.path in files.foreign and p.path.name == name:
            return f"this answer comes from {PROFILES_DIR}/{name}, a {_model_mismatch(p.doc, run, _run_macs(files))}"
    return None


def _foreign_answers(files: PipelineFiles) -> list[str]:
    sel = files.selection
    if sel is None or not sel.ok:
        return []
    lines = []
    for d in sel.doc.get("devices") or []:
        why = answer_of_another_model(files, d)
        if why:
            lines.append(f"{sel.path}: {d.get('device')}/{d.get('backend')}: {why}; re-run us3l select with "
                         "profiles of the run's checkpoint")
    return lines


def _profile_model(prof: Any) -> tuple[str, dict[str, Any] | None]:
    """The model a profile measured and its recorded kwargs; a switchable artifact's profile (``us3l profile
    --artifact``, model ``<model>-switchable``) measured the same network as a static one."""
    from us3l.profiler.profile_file import measured_model

    kwargs = prof.extra.get("model_kwargs") if isinstance(prof.extra, dict) else None
    return measured_model(str(prof.model), prof.extra), kwargs if isinstance(kwargs, dict) else None


def _model_mismatch(prof: Any, run: tuple[str, dict[str, Any] | None], run_macs: dict[float, int]) -> str | None:
    """Why a profile is not of the run's model (None when it is): another model name, other recorded model kwargs,
    or, where it records neither (``us3l profile --model`` of a fresh network), other MACs at a width the run's
    accuracy file also measured (another configuration of the same architecture, or another input size)."""
    from us3l.width_key import width_key

    model, kwargs = _profile_model(prof)
    if model != run[0]:
        return f"profile of {model}, not of the run's model {run[0]}"
    if kwargs is not None and run[1] is not None and kwargs != run[1]:
        return f"profile of {model} with model kwargs {kwargs}, not the run's {run[1]}"
    for rec in getattr(prof, "records", ()):
        macs = run_macs.get(width_key(rec.width))
        if macs is not None and int(rec.macs) != macs:
            return (f"profile of {model} with {int(rec.macs)} MACs at width {rec.width:g}, not the run's {macs} "
                    "(other model options or input size)")
    return None


def _run_macs(files: PipelineFiles) -> dict[float, int]:
    """MACs per image at each width the run's readable accuracy file records (``us3l eval`` counts them on the
    checkpoint's network); empty without one."""
    from us3l.width_key import width_key

    acc = files.accuracy.doc if files.accuracy is not None and files.accuracy.ok else {}
    out: dict[float, int] = {}
    for row in acc.get("widths") or []:
        if isinstance(row, dict) and isinstance(row.get("width"), int | float) and \
                isinstance(row.get("macs"), int) and not isinstance(row.get("macs"), bool):
            out[width_key(float(row["width"]))] = int(row["macs"])
    return out


def _foreign_profiles(files: PipelineFiles) -> dict[Path, str]:
    """One line per readable profile of another model (or other recorded model kwargs, or other MACs) than the
    run's."""
    run = run_model(files)
    if run is None:
        return {}
    run_macs = _run_macs(files)
    why = {p.path: _model_mismatch(p.doc, run, run_macs) for p in files.profiles if p.ok}
    return {path: f"{path}: left out: {text}; re-run us3l profile on the run's checkpoint (or move it out of "
                  f"{PROFILES_DIR}/)" for path, text in why.items() if text}


def _read_summary(path: Path) -> dict[str, Any]:
    from us3l.io import read_json

    doc = read_json(path, "summary")
    if not isinstance(doc, dict):
        raise US3LError("summary file is not a JSON object")
    if doc.get("kind") != "quickstart":  # what us3l quickstart writes; a project's own summary.json is not it
        raise US3LError(f"{path} is not a us3l quickstart summary")
    return doc


def _optional(path: Path, loader: Callable[[Path], T]) -> Loaded[T] | None:
    return _load(path, loader) if path.is_file() else None


def accuracy_path(root: Path, named: object = None) -> Path:
    """``root/accuracy.json`` (quickstart, or a run folder given as the pipeline folder), else
    ``root/run/accuracy.json`` (the step-by-step flow: ``us3l eval --ckpt run`` writes beside the checkpoint).

    ``named``: the accuracy file the folder's selection.json was made from (its ``inputs.accuracy.path``); where
    both files exist (step-by-step commands run in a quickstart folder), one named ``.../run/accuracy.json`` picks
    the nested one."""
    top = root / ACCURACY_FILE
    nested = root / RUN_DIR / ACCURACY_FILE
    if isinstance(named, str) and Path(named).parts[-2:] == (RUN_DIR, ACCURACY_FILE) and nested.is_file():
        return nested
    return nested if not top.is_file() and nested.is_file() else top


def _selection_accuracy(selection: Loaded[dict[str, Any]] | None) -> object:
    """The accuracy path a readable selection records (``inputs.accuracy.path``), else None."""
    inputs = selection.doc.get("inputs") if selection is not None and selection.ok else None
    accuracy = inputs.get("accuracy") if isinstance(inputs, dict) else None
    return accuracy.get("path") if isinstance(accuracy, dict) else None


def run_folder(root: Path) -> Path:
    """``root/run``, or ``root`` itself when it is a run folder (its ``checkpoint.json`` at the top and no
    ``run/`` inside): ``us3l report RUN`` reports a training run on its own."""
    if not (root / RUN_DIR).is_dir() and (root / CHECKPOINT_META).is_file():
        return root
    return root / RUN_DIR


def collect_pipeline(directory: str | Path) -> PipelineFiles:
    """Load every known file of the pipeline folder ``directory``.

    Raises ``US3LError`` (one line) when the folder does not exist or holds none of the pipeline's files.
    """
    root = Path(directory)
    if not root.exists():
        raise US3LError(f"pipeline folder not found: {root}")
    if not root.is_dir():
        raise US3LError(f"{root} is not a folder (expected a pipeline folder written by us3l quickstart)")
    run = run_folder(root)
    selection = _optional(root / SELECTION_FILE, _read_selection)
    files = PipelineFiles(
        root=root,
        run=run,
        checkpoint=_optional(run / CHECKPOINT_META, _read_checkpoint),
        metrics=_optional(run / METRICS_FILE, _read_metrics),
        accuracy=_optional(accuracy_path(root, _selection_accuracy(selection)), _read_accuracy),
        profiles=[_load(p, _read_profile) for p in sorted((root / PROFILES_DIR).glob("*.json"))],
        selection=selection,
        manifests=[_load(p, _read_manifest) for p in _artifact_manifests(root)],
        summary=_optional(root / SUMMARY_FILE, _read_summary),
    )
    weights = run / WEIGHTS_FILE
    if weights.is_file():
        from us3l.io import file_sha256

        files.weights_sha256 = file_sha256(weights)
    _confirm_widths(files)
    _mark_unchecked_sources(files)
    foreign = _foreign_profiles(files)
    files.foreign = list(foreign)
    files.stale = _bindings(files) + list(foreign.values()) + _foreign_answers(files)
    if not files.found_any():
        raise US3LError(
            f"{root} contains no us3l pipeline files (expected a run folder, or run/checkpoint.json, accuracy.json "
            "or run/accuracy.json, profiles/*.json, selection.json or artifacts/<device>/<name>/manifest.json)"
        )
    if not files.readable_any():  # e.g. a project's own summary.json, or only files of another us3l version
        errors = files.errors()
        raise US3LError(f"{root} contains no readable us3l pipeline file: {errors[0]}"
                        + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""))
    return files
