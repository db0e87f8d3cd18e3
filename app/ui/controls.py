"""The side panel: tissue toggles with the legend, opacity, fill/contour, AI on/off.

One toggle per foreground class, in table order, with keys 1-9: the protected class (the nerve)
is labeled "(protected)" and drawn bold in its reserved color; an occluder (the instrument)
starts unchecked when its table says `visible: false`, and its tooltip says that tissue is never
painted over it either way. Below the toggles one line says what the model's trust gate does to
the picture (`gate_note`): how unsure pixels look, or that the model has no gate at all.

Large, high-contrast controls for an OR monitor. The panel only reports what the user chose
(signals in the past tense); the main window owns the state.
"""
from __future__ import annotations

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtGui import QColor, QIcon, QPixmap
from PyQt6.QtWidgets import QButtonGroup, QCheckBox, QGroupBox, QLabel, QRadioButton, QSlider, QVBoxLayout, QWidget

from models.core.classes import ClassInfo, ClassTable
from models.core.overlay import OverlayStyle

PANEL_STYLE = """
QWidget { background: #15171a; color: #f2f2f2; font-size: 15pt; }
QGroupBox { border: 1px solid #444; margin-top: 1.2em; padding: 1.0em 8px 8px 8px; font-weight: bold; }
QGroupBox::title { subcontrol-origin: margin; subcontrol-position: top left; left: 8px; padding: 0 4px; }
QCheckBox::indicator, QRadioButton::indicator { width: 24px; height: 24px; }
QSlider::groove:horizontal { height: 10px; background: #444; }
QSlider::handle:horizontal { width: 26px; margin: -9px 0; background: #ffd000; }
"""


NO_GATE = "no trust gate: model exported before gates; re-export"


def gate_note(classes: ClassTable, gated: bool | None) -> str:
    """The legend's line on the trust gate. gated: the model's manifest has a gate section (True),
    has none (False: the overlay is not gated, say so), or there is no model to ask (None: '')."""
    if gated is None:
        return ""
    if not gated:
        return NO_GATE
    protected = [classes.classes[cid].name for cid in sorted(classes.protected)]
    if not protected:
        return "dashed = AI unsure (fill: left out)"
    return f"hatched/dashed = AI unsure ({', '.join(protected)} always shown)"


class ControlPanel(QWidget):
    style_changed = pyqtSignal(object)   # OverlayStyle
    ai_toggled = pyqtSignal(bool)

    def __init__(self, classes: ClassTable, style: OverlayStyle, parent: QWidget | None = None,
                 gated: bool | None = None):
        """gated: whether the model has a trust gate (None: no model); see `gate_note`."""
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)  # paint the dark background
        self.setStyleSheet(PANEL_STYLE)
        self.setMinimumWidth(250)
        self._style = style
        layout = QVBoxLayout(self)

        tissues = QGroupBox("Tissues", self)
        tl = QVBoxLayout(tissues)
        # which class table this legend is: the model's own, or the shipped default without a model
        self.table_label = QLabel(f"classes: {classes.origin or classes.name} ({len(classes)})", tissues)
        self.table_label.setWordWrap(True)
        self.table_label.setStyleSheet("font-size: 11pt; color: #b8b8b8;")
        tl.addWidget(self.table_label)
        self.tissue_boxes: dict[int, QCheckBox] = {}
        for n, c in enumerate(classes.foreground, start=1):
            box = QCheckBox(legend_text(c, n), tissues)
            box.setIcon(_swatch(c.color))
            box.setToolTip(legend_tip(c))
            if c.protect:  # the protected class stands out in the legend too: bold, in its own color
                box.setStyleSheet(_protected_style(c.color))
            box.setChecked(c.id in style.visible)
            box.toggled.connect(lambda on, cid=c.id: self._set_visible(cid, on))
            tl.addWidget(box)
            self.tissue_boxes[c.id] = box
        self.gate_label = QLabel(gate_note(classes, gated), tissues)  # how unsure pixels look, or: no gate
        self.gate_label.setWordWrap(True)
        self.gate_label.setStyleSheet("font-size: 12pt; font-weight: bold; color: #ffb000;" if gated is False
                                      else "font-size: 11pt; color: #b8b8b8;")
        self.gate_label.setVisible(bool(self.gate_label.text()))
        tl.addWidget(self.gate_label)
        self.all_box = QCheckBox("Overlay   [Space]", tissues)
        self.all_box.setChecked(style.enabled)
        self.all_box.toggled.connect(lambda on: self._update(enabled=on))
        tl.addWidget(self.all_box)
        layout.addWidget(tissues)

        look = QGroupBox("Display", self)
        ll = QVBoxLayout(look)
        self.opacity_label = QLabel(self)
        ll.addWidget(self.opacity_label)
        self.opacity = QSlider(Qt.Orientation.Horizontal, look)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(round(style.opacity * 100))
        self.opacity.valueChanged.connect(lambda v: self._update(opacity=v / 100))
        ll.addWidget(self.opacity)
        group = QButtonGroup(look)
        self.fill_button = QRadioButton("Fill", look)
        self.contour_button = QRadioButton("Contour", look)
        (self.fill_button if style.mode == "fill" else self.contour_button).setChecked(True)
        for b in (self.fill_button, self.contour_button):
            group.addButton(b)
            ll.addWidget(b)
        self.contour_button.toggled.connect(lambda on: self._update(mode="contour" if on else "fill"))
        layout.addWidget(look)

        ai = QGroupBox("AI", self)
        al = QVBoxLayout(ai)
        self.ai_box = QCheckBox("AI overlay on", ai)
        self.ai_box.setChecked(True)
        self.ai_box.toggled.connect(self.ai_toggled.emit)
        al.addWidget(self.ai_box)
        self.ai_label = QLabel("", ai)
        self.ai_label.setWordWrap(True)
        al.addWidget(self.ai_label)
        layout.addWidget(ai)
        layout.addStretch(1)
        self._show_opacity()

    @property
    def style(self) -> OverlayStyle:
        return self._style

    def apply(self, style: OverlayStyle) -> None:
        """Reflect a style chosen elsewhere (keyboard) in the widgets, then report it."""
        for cid, box in self.tissue_boxes.items():
            box.blockSignals(True)
            box.setChecked(cid in style.visible)
            box.blockSignals(False)
        self.all_box.blockSignals(True)
        self.all_box.setChecked(style.enabled)
        self.all_box.blockSignals(False)
        self._style = style
        self._show_opacity()
        self.style_changed.emit(style)

    def _set_visible(self, class_id: int, on: bool) -> None:
        visible = set(self._style.visible)
        visible.add(class_id) if on else visible.discard(class_id)
        self._update(visible=frozenset(visible))

    def _update(self, **changes) -> None:
        from dataclasses import replace

        self._style = replace(self._style, **changes)
        self._show_opacity()
        self.style_changed.emit(self._style)

    def _show_opacity(self) -> None:
        self.opacity_label.setText(f"Opacity {round(self._style.opacity * 100)}%")


def legend_text(c: ClassInfo, n: int) -> str:
    """A toggle's label: the name, its role, its key (1-9, in table order)."""
    name = f"{c.name} (protected)" if c.protect else c.name
    return f"{name}   [{n}]" if n <= 9 else name


def legend_tip(c: ClassInfo) -> str:
    default = "shown" if c.visible else "off"
    if c.protect:
        return (f"{c.name}: the protected structure. Drawn on top of the other classes, in a color "
                f"no other class uses. {default.capitalize()} when the display starts.")
    if c.occluder:
        return (f"{c.name}: not tissue. No tissue color is painted over it, whether it is shown or "
                f"not. {default.capitalize()} when the display starts.")
    return f"{c.name}: {default} when the display starts."


def _protected_style(color) -> str:
    """Bold, in the class's color when that reads on the dark panel (else the panel's own text color)."""
    r, g, b = color
    readable = 0.2126 * r + 0.7152 * g + 0.0722 * b >= 110
    return "QCheckBox { font-weight: bold; %s}" % (f"color: #{r:02x}{g:02x}{b:02x}; " if readable else "")


def _swatch(color) -> QIcon:
    pix = QPixmap(22, 22)
    pix.fill(QColor(*color))
    return QIcon(pix)
