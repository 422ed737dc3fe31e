"""One ``APIRouter`` per resource; ``api.main`` wires them together."""
