"""Can Qt open a window here? Checked by `endospine run` before Qt is imported (no Qt here).

PyQt6's wheels bundle Qt but not the system libraries its xcb platform plugin links (xcb-util,
xkbcommon-x11, ...). Without them Qt prints "Could not load the Qt platform plugin "xcb" even
though it was found" and aborts the process (SIGABRT); without a display it aborts too. Here
each becomes one line naming what is missing and how to get it, and a non-zero exit.

`platform_problem` decides, as a pure function of its inputs (the environment, the output of
`ldd` on the plugin, the text of /etc/os-release); `probe` gathers those inputs on this machine.
If `ldd` is missing or the plugin cannot be found, the libraries are not checked and Qt starts
as before: the check never stands in the way of a start it cannot judge.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Mapping, Sequence

from models.core.errors import EndoSpineError

# platforms that need no display server (Qt's plugins of these names draw into memory or a device)
NO_DISPLAY_NEEDED = frozenset({"offscreen", "minimal", "minimalegl", "vnc", "linuxfb", "eglfs", "vkkhrdisplay"})

# soname -> Debian package: `dpkg -S` on each library `ldd` lists for PyQt6's libqxcb.so (PyQt6
# 6.11, Qt 6.11) and the libQt6XcbQpa it links, Debian 12; the same names on Ubuntu (where apt
# picks the t64 package for a renamed one such as libglib2.0-0t64). The libraries the plugin
# links directly come first, then those they pull in.
DEBIAN_PACKAGES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb.so.1": "libxcb1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libGL.so.1": "libgl1",
    "libEGL.so.1": "libegl1",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libdbus-1.so.3": "libdbus-1-3",
    "libGLX.so.0": "libglx0",
    "libGLdispatch.so.0": "libglvnd0",
    "libXau.so.6": "libxau6",
    "libXdmcp.so.6": "libxdmcp6",
    "libpng16.so.16": "libpng16-16",
    "libbrotlidec.so.1": "libbrotli1",
    "libbrotlicommon.so.1": "libbrotli1",
    "libexpat.so.1": "libexpat1",
    "libpcre2-8.so.0": "libpcre2-8-0",
    "libbsd.so.0": "libbsd0",
    "libmd.so.0": "libmd0",
    "libzstd.so.1": "libzstd1",
    "libz.so.1": "zlib1g",
    "libsystemd.so.0": "libsystemd0",
    "libcap.so.2": "libcap2",
    "libgcrypt.so.20": "libgcrypt20",
    "libgpg-error.so.0": "libgpg-error0",
    "liblz4.so.1": "liblz4-1",
    "liblzma.so.5": "liblzma5",
    "libstdc++.so.6": "libstdc++6",
    "libgcc_s.so.1": "libgcc-s1",
    **dict.fromkeys(("libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2"), "libc6"),
}

# soname -> Fedora / RHEL package for the libraries a bare install lacks; any other one is asked
# for by what it provides ('libfoo.so.1()(64bit)'), which dnf resolves itself.
FEDORA_PACKAGES = {
    "libxcb-cursor.so.0": "xcb-util-cursor",
    "libxcb-icccm.so.4": "xcb-util-wm",
    "libxcb-image.so.0": "xcb-util-image",
    "libxcb-keysyms.so.1": "xcb-util-keysyms",
    "libxcb-render-util.so.0": "xcb-util-renderutil",
    "libxcb-util.so.1": "xcb-util",
    **{f"libxcb{part}.so.{n}": "libxcb" for part, n in (("", 1), ("-randr", 0), ("-render", 0), ("-shape", 0),
                                                         ("-shm", 0), ("-sync", 1), ("-xfixes", 0), ("-xkb", 1))},
    "libxkbcommon-x11.so.0": "libxkbcommon-x11",
    "libxkbcommon.so.0": "libxkbcommon",
    "libX11-xcb.so.1": "libX11-xcb",
    "libX11.so.6": "libX11",
    "libGL.so.1": "libglvnd-glx",
    "libGLX.so.0": "libglvnd-glx",
    "libEGL.so.1": "libglvnd-egl",
    "libGLdispatch.so.0": "libglvnd",
    "libfontconfig.so.1": "fontconfig",
    "libfreetype.so.6": "freetype",
    "libglib-2.0.so.0": "glib2",
    "libgthread-2.0.so.0": "glib2",
    "libdbus-1.so.3": "dbus-libs",
}

NO_DISPLAY = ("no display: neither DISPLAY nor WAYLAND_DISPLAY is set, so the window has nowhere to open; run it "
              "in a desktop session, under a virtual X server (xvfb-run -a endospine run ...), or without a screen "
              "with QT_QPA_PLATFORM=offscreen (e.g. with --screenshot PNG --quit-after S)")


def effective_platform(env: Mapping[str, str]) -> str:
    """The Qt platform plugin the application will try first: QT_QPA_PLATFORM's first choice
    ('wayland;xcb' lists fallbacks, 'offscreen:fontengine=...' carries options), else what Qt 6
    picks on Linux: wayland in a Wayland session (but not GNOME's, where Qt keeps xcb), else xcb."""
    chosen = env.get("QT_QPA_PLATFORM", "").strip()
    if chosen:
        return chosen.split(";")[0].split(":")[0].strip().lower()
    desktops = (env.get("XDG_CURRENT_DESKTOP", "") + env.get("XDG_SESSION_DESKTOP", "")).lower()
    if env.get("XDG_SESSION_TYPE", "").lower() == "wayland" and "gnome" not in desktops:
        return "wayland"
    return "xcb"


def missing_libraries(ldd_output: str) -> list[str]:
    """The sonames `ldd` reports as 'not found', in order, each once."""
    missing: list[str] = []
    for line in ldd_output.splitlines():
        name, arrow, where = line.strip().partition("=>")
        if arrow and where.strip() == "not found" and name.strip() not in missing:
            missing.append(name.strip())
    return missing


def distribution(os_release: str) -> str:
    """'debian' (Debian, Ubuntu and their derivatives), 'fedora' (Fedora, RHEL and theirs) or ''
    from the ID and ID_LIKE lines of /etc/os-release."""
    ids: list[str] = []
    for line in os_release.splitlines():
        key, _, value = line.strip().partition("=")
        if key in ("ID", "ID_LIKE"):
            ids += value.strip().strip("'\"").lower().split()
    if any(i in ("debian", "ubuntu") for i in ids):
        return "debian"
    if any(i in ("fedora", "rhel", "centos") for i in ids):
        return "fedora"
    return ""


def install_hint(sonames: Sequence[str], os_release: str = "", root: bool = False) -> str:
    """How to install the packages that provide `sonames` on this distribution."""
    sudo = "" if root else "sudo "
    family = distribution(os_release)
    if family == "debian":
        packages = list(dict.fromkeys(DEBIAN_PACKAGES[s] for s in sonames if s in DEBIAN_PACKAGES))
        unknown = [s for s in sonames if s not in DEBIAN_PACKAGES]
        hint = f"install them with: {sudo}apt-get install {' '.join(packages)}" if packages else ""
        if unknown:
            hint += ("; " if hint else "") + "find the package of " + ", ".join(unknown) + " with: apt-file search NAME"
        return hint
    if family == "fedora":
        packages = [FEDORA_PACKAGES.get(s, f"'{s}()(64bit)'") for s in sonames]
        return f"install them with: {sudo}dnf install {' '.join(dict.fromkeys(packages))}"
    return "install the packages that provide them with your distribution's package manager"


def platform_problem(env: Mapping[str, str], ldd_output: str | None, os_release: str = "", system: str = "Linux",
                     root: bool = False) -> str | None:
    """One line saying why Qt cannot open its window here, or None when nothing is known to stop it.

    env: the environment (QT_QPA_PLATFORM, DISPLAY, WAYLAND_DISPLAY, XDG_SESSION_TYPE ...);
    ldd_output: `ldd` on PyQt6's libqxcb.so (and libQt6XcbQpa), or None: not checked (no ldd,
    no plugin, not xcb); os_release: the text of /etc/os-release ('' unknown); system: as
    platform.system() says (only Linux is checked); root: no sudo in the command shown."""
    if system != "Linux":
        return None
    platform = effective_platform(env)
    if platform in NO_DISPLAY_NEEDED:
        return None
    problems = []
    missing = missing_libraries(ldd_output) if platform == "xcb" and ldd_output else []
    if missing:
        problems.append("Qt's xcb platform plugin cannot load: missing system libraries " + ", ".join(missing)
                        + "; " + install_hint(missing, os_release, root))
    if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        problems.append(NO_DISPLAY)
    elif platform == "xcb" and not env.get("DISPLAY"):
        problems.append("no X display: DISPLAY is not set but WAYLAND_DISPLAY is; run with QT_QPA_PLATFORM=wayland "
                        "or start an X server (XWayland)")
    return "; also ".join(problems) if problems else None


# -- gathering the inputs on this machine --------------------------------------------------------

def qt_root() -> Path | None:
    """PyQt6's bundled Qt folder (…/site-packages/PyQt6/Qt6), found without importing Qt."""
    spec = importlib.util.find_spec("PyQt6")
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        root = Path(location) / "Qt6"
        if root.is_dir():
            return root
    return None


def xcb_plugin_files(root: Path | None = None) -> list[Path]:
    """The xcb platform plugin and the libQt6XcbQpa library it links ([] if not there)."""
    root = qt_root() if root is None else root
    plugin = root / "plugins" / "platforms" / "libqxcb.so" if root is not None else None
    if plugin is None or not plugin.is_file():
        return []
    return [plugin, *sorted((root / "lib").glob("libQt6XcbQpa.so*"))[:1]]


def run_ldd(files: Sequence[Path], timeout_s: float = 20.0) -> str | None:
    """`ldd` on `files` (stdout), or None: no ldd, no files, or ldd failed to run."""
    ldd = shutil.which("ldd")
    if ldd is None or not files:
        return None
    try:
        done = subprocess.run([ldd, *map(str, files)], capture_output=True, text=True, timeout=timeout_s,
                              check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout


def read_os_release() -> str:
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            return Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
    return ""


def probe(env: Mapping[str, str] | None = None) -> str | None:
    """platform_problem on this machine: its environment (or `env`), ldd on PyQt6's plugin."""
    env = os.environ if env is None else env
    if not sys.platform.startswith("linux"):
        return None
    ldd_output = run_ldd(xcb_plugin_files()) if effective_platform(env) == "xcb" else None
    return platform_problem(env, ldd_output, read_os_release(), "Linux", root=os.geteuid() == 0)


def check_before_qt(env: Mapping[str, str] | None = None) -> None:
    """Raise the one-line EndoSpineError of `probe`, if any (the CLI prints it and exits 1)."""
    problem = probe(env)
    if problem:
        raise EndoSpineError(problem)
