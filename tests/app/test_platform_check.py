"""The first-run check of `endospine run`: missing system libraries of Qt's xcb plugin, or no
display, are one line with what to install or do, before Qt can abort the process."""
from __future__ import annotations

import shutil

import pytest

from app import platform_check as pc
from app.platform_check import effective_platform, missing_libraries, platform_problem

pytestmark = pytest.mark.unit

DEBIAN = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n'
UBUNTU = 'NAME="Ubuntu"\nVERSION_ID="24.04"\nID=ubuntu\nID_LIKE=debian\n'
FEDORA = 'NAME="Fedora Linux"\nVERSION_ID=40\nID=fedora\n'
ROCKY = 'NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\n'
ARCH = 'NAME="Arch Linux"\nID=arch\n'
X11 = {"DISPLAY": ":0"}

# the shape of `ldd libqxcb.so` on a bare machine: two xcb-util libraries and xkbcommon-x11 missing
LDD_MISSING = """\
\tlinux-vdso.so.1 (0x00007ffd1b5f2000)
\tlibQt6XcbQpa.so.6 => /venv/lib/python3.11/site-packages/PyQt6/Qt6/plugins/platforms/../../lib/libQt6XcbQpa.so.6 (0x00007f0)
\tlibGL.so.1 => /lib/x86_64-linux-gnu/libGL.so.1 (0x00007f3bd5d49000)
\tlibxkbcommon-x11.so.0 => not found
\tlibxcb-cursor.so.0 => not found
\tlibxcb-icccm.so.4 => /lib/x86_64-linux-gnu/libxcb-icccm.so.4 (0x00007f3bd5d40000)
\tlibxcb-cursor.so.0 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f3bd4400000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f3bd5dd2000)
"""
LDD_COMPLETE = "\n".join(line for line in LDD_MISSING.splitlines() if "not found" not in line)


def test_missing_libraries_are_one_line_with_the_apt_get_command():
    line = platform_problem(X11, LDD_MISSING, DEBIAN)
    assert line is not None and "\n" not in line
    assert "libxkbcommon-x11.so.0, libxcb-cursor.so.0, libxcb-keysyms.so.1" in line   # each once, in ldd's order
    assert line.endswith("sudo apt-get install libxkbcommon-x11-0 libxcb-cursor0 libxcb-keysyms1")
    assert platform_problem(X11, LDD_MISSING, UBUNTU).endswith(
        "apt-get install libxkbcommon-x11-0 libxcb-cursor0 libxcb-keysyms1")
    assert "sudo" not in platform_problem(X11, LDD_MISSING, DEBIAN, root=True)      # root: no sudo to name
    assert platform_problem({"QT_QPA_PLATFORM": "xcb", **X11}, LDD_MISSING, DEBIAN) == line


def test_other_distributions_get_dnf_or_the_library_names():
    assert platform_problem(X11, LDD_MISSING, FEDORA).endswith(
        "sudo dnf install libxkbcommon-x11 xcb-util-cursor xcb-util-keysyms")
    assert "dnf install" in platform_problem(X11, LDD_MISSING, ROCKY)
    unknown = platform_problem(X11, "\tlibxcb-new.so.2 => not found\n", FEDORA)
    assert unknown.endswith("dnf install 'libxcb-new.so.2()(64bit)'")             # dnf resolves what provides it
    generic = platform_problem(X11, LDD_MISSING, ARCH)
    assert "libxcb-cursor.so.0" in generic and "package manager" in generic and "apt-get" not in generic
    assert "package manager" in platform_problem(X11, LDD_MISSING, "")             # no os-release at all
    debian_unknown = platform_problem(X11, "\tlibxcb-cursor.so.0 => not found\n\tlibnew.so.1 => not found\n", DEBIAN)
    assert "apt-get install libxcb-cursor0;" in debian_unknown and "apt-file search" in debian_unknown


def test_nothing_missing_is_no_problem():
    assert platform_problem(X11, LDD_COMPLETE, DEBIAN) is None
    assert platform_problem({"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"}, LDD_COMPLETE, DEBIAN) is None
    assert platform_problem(X11, None, DEBIAN) is None        # not checked (no ldd, no plugin): Qt starts as before
    assert platform_problem(X11, "", DEBIAN) is None


@pytest.mark.parametrize("platform", ["offscreen", "minimal", "vnc", "offscreen:fontengine=freetype", "linuxfb"])
def test_platforms_without_a_display_need_neither_xcb_nor_a_display(platform):
    assert platform_problem({"QT_QPA_PLATFORM": platform}, LDD_MISSING, DEBIAN) is None


def test_no_display_says_so_and_how_to_run_without_one():
    line = platform_problem({}, LDD_COMPLETE, DEBIAN)
    assert line.startswith("no display") and "\n" not in line
    assert "xvfb-run" in line and "QT_QPA_PLATFORM=offscreen" in line
    both = platform_problem({}, LDD_MISSING, DEBIAN)     # both at once: still one line, the libraries first
    assert "\n" not in both and both.index("libxcb-cursor0") < both.index("no display")
    only_wayland = platform_problem({"QT_QPA_PLATFORM": "xcb", "WAYLAND_DISPLAY": "wayland-0"}, LDD_COMPLETE, DEBIAN)
    assert "DISPLAY is not set" in only_wayland and "QT_QPA_PLATFORM=wayland" in only_wayland


def test_wayland_sessions_and_other_systems_are_not_judged_on_xcb():
    wayland = {"XDG_SESSION_TYPE": "wayland", "WAYLAND_DISPLAY": "wayland-0"}
    assert effective_platform(wayland) == "wayland"
    assert platform_problem(wayland, LDD_MISSING, DEBIAN) is None            # Qt tries its wayland plugin first
    assert effective_platform({**wayland, "XDG_CURRENT_DESKTOP": "GNOME"}) == "xcb"   # Qt keeps xcb on GNOME
    assert effective_platform({"QT_QPA_PLATFORM": "wayland;xcb"}) == "wayland"
    assert effective_platform({}) == "xcb"
    assert platform_problem({}, LDD_MISSING, DEBIAN, system="Darwin") is None


def test_parsing_ldd_and_os_release():
    assert missing_libraries(LDD_MISSING) == ["libxkbcommon-x11.so.0", "libxcb-cursor.so.0", "libxcb-keysyms.so.1"]
    assert missing_libraries("not a dynamic executable\n") == []
    assert [pc.distribution(t) for t in (DEBIAN, UBUNTU, FEDORA, ROCKY, ARCH, "")] == [
        "debian", "debian", "fedora", "fedora", "", ""]


def test_the_real_probe_passes_offscreen_here():
    assert pc.probe({"QT_QPA_PLATFORM": "offscreen"}) is None


needs_ldd = pytest.mark.skipif(shutil.which("ldd") is None or not pc.xcb_plugin_files(), reason="needs ldd and "
                               "PyQt6's xcb plugin")


@needs_ldd
def test_real_ldd_output_of_a_plugin_without_its_libraries_names_them(tmp_path):
    """The plugin copied away from the Qt libraries beside it: ldd's real output says 'not found'
    for them, and the line names them."""
    plugin = pc.xcb_plugin_files()[0]
    copy = tmp_path / "Qt6" / "plugins" / "platforms" / plugin.name
    copy.parent.mkdir(parents=True)
    shutil.copy2(plugin, copy)
    output = pc.run_ldd(pc.xcb_plugin_files(tmp_path / "Qt6"))
    assert {"libQt6XcbQpa.so.6", "libQt6Gui.so.6", "libQt6Core.so.6"} <= set(missing_libraries(output))
    assert "libQt6XcbQpa.so.6" in platform_problem(X11, output, DEBIAN)


@needs_ldd
def test_every_system_library_the_plugin_loads_has_its_debian_package():
    """What the table says was read off `dpkg -S` for this PyQt6: a PyQt6 that links a new library
    fails here until the table names its package."""
    output = pc.run_ldd(pc.xcb_plugin_files())
    bundled = str(pc.qt_root())
    system = {line.split("=>")[0].strip() for line in output.splitlines()
              if "=>" in line and bundled not in line and "/PyQt6/" not in line}
    assert system and system <= set(pc.DEBIAN_PACKAGES), sorted(system - set(pc.DEBIAN_PACKAGES))


def test_endospine_run_without_a_display_is_one_line_and_exit_1(monkeypatch, capsys):
    from app.cli import main

    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM", "XDG_SESSION_TYPE"):
        monkeypatch.delenv(name, raising=False)
    assert main(["run", "--no-ai"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("endospine: error: ") and "no display" in err and err.count("\n") == 1
