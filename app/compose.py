"""The live path, composed in one place (no Qt):

    source --> capture thread --> latest-frame store --> AI supervisor (worker process)
                                        |                      |
                                        +--> decide (app.decide) <--+ --> Decision --> the view

`build_live` wires the stages; `LivePipeline.tick(now)` gathers what the stages report and
returns what the screen shows (the window, app/ui/main_window.py, only paints it). `run`,
`bench`, `soak` and `faults` all build from here. An offline path (render, the naive loop of
the bench) reuses the same stage choices: `open_source_stage` (a SOURCE string through the
source registry, opened, with the timing rules it applies itself; realtime=False to read as
fast as possible), `classes_of` (the class table the display states) and `timing_of` (the
timing rules of an endoscope profile). `deid_of` gives what its recordings and snapshots keep
(models/core/deid.py: the field of view only, unless the profile says keep_full_frame).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from app.ai.supervisor import InferenceClient, WorkerConfig
from app.capture_thread import CaptureThread, LatestFrame, ReviewGate
from app.decide import AIFacts, Decision, Overlay, Screen, SourceFacts, Tick, decide, overlay_for
from models.core.classes import ClassTable, default_classes
from models.core.deid import DeidPolicy
from models.core.errors import EndoSpineError
from models.core.optics.capture_settings import CaptureSettings
from models.core.picture import DEFAULT_VIEW_MAX
from models.core.runtime.manifest import load_manifest
from models.core.sources.base import Source
from models.core.sources.registry import open_source
from models.core.timing import DEFAULT_TIMING, Timing
from models.core.types import Frame


def build_live(source: Source, worker: WorkerConfig | None = None, timing: Timing | None = None,
               review: bool = False, deid: DeidPolicy | None = None) -> LivePipeline:
    """The live path on `source` (opened or not) with the AI of `worker` (None: video only).
    timing: the rules of the whole path, which the source and the AI worker follow too (None: the
    worker's, else the defaults). review: frame-exact replay, each frame waits for its own mask
    (only with an AI). deid: what recordings and snapshots keep (None: as the worker's profile
    says, else de-identified with a detected field of view)."""
    if deid is None:
        try:
            deid = deid_of(worker.settings.profile if worker is not None else None)
        except EndoSpineError:  # the worker reports its bad profile; recordings stay de-identified
            deid = DeidPolicy()
    if timing is None:
        timing = worker.timing if worker is not None else DEFAULT_TIMING
    elif worker is not None and worker.timing != timing:
        worker = replace(worker, timing=timing)
    source.timing = timing
    store = LatestFrame()
    ai = InferenceClient(worker, store) if worker is not None else None
    gate = ReviewGate() if review and ai is not None else None
    return LivePipeline(source, store, CaptureThread(source, store, gate), ai, gate, timing, classes_of(worker),
                        deid=deid)


@dataclass
class LivePipeline:
    """The live path's stages, its timing rules and what is on screen (app.decide.Screen)."""
    source: Source
    store: LatestFrame                 # the newest captured frame, for the display and the AI
    capture: CaptureThread
    ai: InferenceClient | None         # None: video only
    gate: ReviewGate | None            # review mode: capture waits until the display put the frame up
    timing: Timing
    classes: ClassTable
    screen: Screen = field(default_factory=lambda: Screen(last_new=time.monotonic()))
    deid: DeidPolicy = field(default_factory=DeidPolicy)  # what recordings and snapshots keep

    @property
    def review(self) -> bool:
        return self.gate is not None

    @property
    def worker(self) -> WorkerConfig | None:
        return self.ai.cfg if self.ai is not None else None

    def start(self) -> None:
        if self.ai is not None:
            self.ai.start()
        self.capture.start()
        self.screen = replace(self.screen, last_new=time.monotonic())

    def stop(self) -> None:
        self.capture.stop()
        if self.ai is not None:
            self.ai.stop()

    def tick(self, now: float, overlay_on: bool = True) -> Decision:
        """One display tick: the newest frame and the stages' states through `decide`."""
        newest = self.store.get_newer(self.screen.asks_after)
        ai = self._ai_facts(newest or self.screen.held)
        tick = Tick(now, newest, self._source_facts(newest), ai, self.review, overlay_on)
        decision = decide(tick, self.screen, self.timing)
        self.screen = decision.screen
        if decision.release is not None:
            self.gate.release(decision.release)
        return decision

    def restyled(self, overlay_on: bool) -> Overlay | None:
        """The overlay over the frame on screen after a style change (None: no frame)."""
        overlay, self.screen = overlay_for(self.screen, self._ai_facts(None), self.review, overlay_on, self.timing)
        return overlay

    def _source_facts(self, newest: Frame | None) -> SourceFacts:
        src, status = self.source, self.capture.status
        return SourceFacts(src.name, status.state, status.message,
                           blank=newest is not None and src.blank(newest.image), idle=src.idle(),
                           signal_note=src.signal_note(), rate=src.fps * getattr(src, "speed", 1.0))

    def _ai_facts(self, waiting: Frame | None) -> AIFacts | None:
        ai = self.ai
        if ai is None:
            return None
        answered = ai.answered(waiting.frame_id) if self.review and waiting is not None else True
        result = ai.latest()  # after answered(): an answer seen there is in this result
        return AIFacts(ai.state, result, answered)


def open_source_stage(spec: str, loop: bool = False, capture: CaptureSettings | None = None, isolated: bool = False,
                      realtime: bool = True, timing: Timing = DEFAULT_TIMING,
                      view_max: tuple[int, int] | None = DEFAULT_VIEW_MAX) -> Source:
    """The opened source a SOURCE string names. capture: options for a capture card the spec
    leaves out (a profile's capture section); isolated: decode files in a child process (the
    live display); realtime=False: as fast as read() is called (offline); view_max: larger frames
    come as a view of this size with their full-resolution planes (models/core/picture.py; None:
    at their own size). A missing or unreadable source is a one-line EndoSpineError."""
    source = open_source(spec, loop=loop, capture=capture, isolated=isolated, view_max=view_max)
    source.timing = timing
    if not realtime:
        source.realtime = False
    source.open()
    return source


def _manifest_of(worker: WorkerConfig | None):
    """The model's manifest as the window reads it for its legend (the worker verifies it when it
    loads the model), or None: no model, or nothing readable (the AI's own state says why)."""
    if worker is None or not Path(worker.model_dir).is_dir():
        return None
    try:
        return load_manifest(worker.model_dir, verify=False)
    except EndoSpineError:
        return None


def classes_of(worker: WorkerConfig | None) -> ClassTable:
    """The class table the display uses (legend, colors, keys, starting visibility): the model's
    own, from its manifest, else the shipped default. Its `origin` says which ("model NAME" or
    "default table"); the side panel shows it."""
    manifest = _manifest_of(worker)
    if manifest is None:
        return default_classes()
    return replace(manifest.classes, origin=f"model {manifest.name}")


def gate_of(worker: WorkerConfig | None) -> bool | None:
    """Whether the model has a trust gate (its manifest's `gate` section): True, False (exported
    before gates: the overlay is not gated, and the window says so), or None (no model to read)."""
    manifest = _manifest_of(worker)
    return None if manifest is None else bool(manifest.gate)


def timing_of(profile: str | Path | None) -> Timing:
    """The timing rules of an endoscope profile file (its `timing:` section), or the defaults.
    A bad file is the profile's one-line EndoSpineError."""
    from models.core.optics.profile import load_profile

    return load_profile(profile).timing if profile else DEFAULT_TIMING


def deid_of(profile: str | Path | None) -> DeidPolicy:
    """What recordings and snapshots keep under an endoscope profile file (its fixed circle and
    `deid:` section), or the default: de-identified, the circle detected. A bad file is the
    profile's one-line EndoSpineError."""
    from models.core.optics.profile import load_profile

    return DeidPolicy.from_profile(load_profile(profile) if profile else None)
