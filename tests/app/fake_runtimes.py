"""The scripted faulty runtime for worker tests; it lives in app.diagnostics.fault_runtime because
`endospine faults` uses it too (its docstring lists the modes)."""
from app.diagnostics.fault_runtime import FaultRuntime as FakeRuntime

__all__ = ["FakeRuntime"]
