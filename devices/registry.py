"""Device registry: the built-in device files plus the user's own, looked up by name.

Order of precedence (a later source replaces a device of the same name): built-ins
(``devices/builtin/*.toml``), then the user folder (``$US3L_DEVICES_DIR`` or ``~/.config/us3l/devices/``; its
hidden ``.*.toml`` files are not read), then an explicit ``--device-file``.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from us3l.devices.spec import DeviceSpec, load_device_file
from us3l.errors import US3LError
from us3l.validate import safe_name

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"


def user_devices_dir() -> Path:
    """``$US3L_DEVICES_DIR`` if set, else ``~/.config/us3l/devices``."""
    env = os.environ.get("US3L_DEVICES_DIR")
    return Path(env).expanduser() if env else Path.home() / ".config" / "us3l" / "devices"


def _load_dir(folder: Path, builtin: bool) -> dict[str, DeviceSpec]:
    found: dict[str, DeviceSpec] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.toml")):
        if path.name.startswith("."):  # an editor's lock or backup (Emacs: a dangling link ".#mine.toml")
            continue
        spec = load_device_file(path)
        if builtin:
            spec = replace(spec, source=f"built-in ({path.name})")
        if spec.name in found:  # two files of one folder naming one device: which wins must not be an accident
            raise US3LError(f"device '{spec.name}' is defined twice in {folder}: {found[spec.name].source} and {path}")
        found[spec.name] = spec
    return found


def list_devices(device_file: str | Path | None = None) -> list[DeviceSpec]:
    """Every known device (built-in, user folder, ``device_file``), sorted by name."""
    devices = _load_dir(BUILTIN_DIR, builtin=True)
    user = user_devices_dir()
    if os.environ.get("US3L_DEVICES_DIR") and user.exists() and not user.is_dir():
        raise US3LError(f"US3L_DEVICES_DIR must name a folder of .toml device files, got the file {user}")
    devices.update(_load_dir(user, builtin=False))
    if device_file is not None:
        spec = load_device_file(device_file)
        devices[spec.name] = spec
    return sorted(devices.values(), key=lambda s: s.name)


def device_name(name: str, flag: str = "--device") -> str:
    """A ``--device`` value as device files spell names (lowercase, surrounding blanks dropped), checked as a
    safe name: ``us3l profile -d CPU`` and ``us3l select -d CPU`` mean the same device."""
    return safe_name(name.strip(), flag).lower()


def get_device(name: str | None, device_file: str | Path | None = None) -> DeviceSpec:
    """The device called ``name``; with only ``device_file``, the device that file describes."""
    if name is None:
        if device_file is None:
            raise US3LError("give a device: --device NAME or --device-file PATH (list them with: us3l devices)")
        return load_device_file(device_file)
    name = device_name(name)  # refused before any file is read or measured
    devices = {s.name: s for s in list_devices(device_file)}
    if name not in devices:
        raise US3LError(
            f"unknown device '{name}' (known: {', '.join(sorted(devices))}); "
            f"add one with --device-file PATH or a .toml file in {user_devices_dir()}"
        )
    return devices[name]


def find_device(name: str) -> DeviceSpec | None:
    """The known device called ``name`` (built-in or the user folder's), or None: for commands whose ``--device``
    may also be a free target name (``us3l export`` writes into ``OUT/<name>/``)."""
    wanted = name.strip().lower()
    return next((s for s in list_devices() if s.name == wanted), None)
