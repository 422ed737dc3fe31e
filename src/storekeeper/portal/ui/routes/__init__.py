"""One ``APIRouter`` per page (or group of pages); ``ui.main`` wires them together."""
