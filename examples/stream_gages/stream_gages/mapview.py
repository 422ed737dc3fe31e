"""A map of the gages drawn on the server as SVG: no tile server, no script, no network.

:func:`build_map` fits a plate carrée (equirectangular) projection to the
gages' bounding box with some padding, and returns everything the template
draws: the graticule with its labels, one marker per gage, a scale bar.
Longitudes are scaled by the cosine of the map's middle latitude, so a
kilometre is as long across the map as up it (at 40°N plain plate carrée
would stretch east-west distances by a third).

Example::

    view = build_map([GagePoint(id=1, latitude=40.238, longitude=-111.696, value=1)])
    view.markers[0].x, view.markers[0].y      # where to draw it, in SVG pixels
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

#: Mean Earth radius (m) times pi / 180: metres per degree of latitude (and of longitude at the equator).
METRES_PER_DEGREE = 6_371_008.8 * math.pi / 180
#: The smallest extent shown (degrees), so one gage, or gages on top of each other, get a readable map.
MIN_SPAN = 0.01
#: Padding around the gages' bounding box, as a fraction of its size on each side.
PADDING = 0.25
#: Shown when there are no gages: the whole world.
WORLD = (-180.0, -90.0, 180.0, 90.0)


@dataclass(frozen=True)
class GagePoint:
    """A gage as the map needs it."""

    id: int
    latitude: float
    longitude: float
    value: int
    name: str | None = None


@dataclass(frozen=True)
class Margins:
    """Room around the plot for the axis labels (pixels)."""

    top: int = 16
    right: int = 16
    bottom: int = 36
    left: int = 78


@dataclass(frozen=True)
class Bounds:
    """A longitude/latitude box (degrees)."""

    west: float
    south: float
    east: float
    north: float


@dataclass(frozen=True)
class Projection:
    """Equirectangular projection of ``bounds`` onto the plot area."""

    bounds: Bounds
    #: Pixels per degree of latitude.
    scale: float
    #: cos(middle latitude): longitudes are multiplied by it.
    squeeze: float
    left: float
    top: float

    def x(self, longitude: float) -> float:
        return self.left + (longitude - self.bounds.west) * self.squeeze * self.scale

    def y(self, latitude: float) -> float:
        return self.top + (self.bounds.north - latitude) * self.scale


@dataclass(frozen=True)
class GridLine:
    """A meridian or parallel with its label."""

    x1: float
    y1: float
    x2: float
    y2: float
    label: str
    label_x: float
    label_y: float


@dataclass(frozen=True)
class Marker:
    """A gage drawn on the map, with a label beside it."""

    id: int
    value: int
    latitude: float
    longitude: float
    x: float
    y: float
    label: str
    #: The label's box: left edge, width; the label sits right of the marker, or left of it near the edge.
    label_left: float
    label_width: float
    title: str


@dataclass(frozen=True)
class ScaleBar:
    """A scale bar in the plot's lower left corner."""

    x: float
    y: float
    length: float
    label: str


@dataclass(frozen=True)
class MapView:
    """Everything the map template draws."""

    width: int
    height: int
    plot_left: float
    plot_top: float
    plot_width: float
    plot_height: float
    bounds: Bounds
    meridians: list[GridLine]
    parallels: list[GridLine]
    markers: list[Marker]
    scale_bar: ScaleBar
    empty: bool


def nice_step(span: float, target: int) -> float:
    """Return a round step (1, 2, 2.5 or 5 times a power of ten) giving about ``target`` intervals over ``span``."""
    raw = span / max(target, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    for multiple in (1.0, 2.0, 2.5, 5.0, 10.0):
        if raw <= multiple * power * (1 + 1e-9):
            return multiple * power
    return 10.0 * power  # pragma: no cover - the loop always returns


def _decimals(step: float) -> int:
    """Return the decimals that show every multiple of ``step`` exactly (0.0025 -> 4)."""
    decimals = 0
    while abs(step * 10**decimals - round(step * 10**decimals)) > 1e-6 and decimals < 12:
        decimals += 1
    return decimals


def format_degrees(value: float, axis: str, decimals: int) -> str:
    """Format a longitude (``axis="lon"``) or latitude (``"lat"``) like ``111.705°W`` or ``40.238°N``."""
    value = round(value, decimals)
    if value == 0:
        return f"{0:.{decimals}f}°"
    hemisphere = ("E" if value > 0 else "W") if axis == "lon" else ("N" if value > 0 else "S")
    return f"{abs(value):.{decimals}f}°{hemisphere}"


def fit(points: Sequence[GagePoint], plot_width: float, plot_height: float, margins: Margins) -> Projection:
    """Return the projection showing every point, padded, with the plot's aspect ratio."""
    if points:
        west = min(p.longitude for p in points)
        east = max(p.longitude for p in points)
        south = min(p.latitude for p in points)
        north = max(p.latitude for p in points)
    else:
        west, south, east, north = WORLD
    middle_lat = (south + north) / 2
    squeeze = max(math.cos(math.radians(middle_lat)), 0.1)
    centre_x = (west + east) / 2 * squeeze  # "squeezed" degrees: equal lengths in x and y
    centre_y = middle_lat
    width = max((east - west) * squeeze, MIN_SPAN)
    height = max(north - south, MIN_SPAN)
    if points:
        width, height = width * (1 + 2 * PADDING), height * (1 + 2 * PADDING)
    aspect = plot_width / plot_height
    if width / height < aspect:
        width = height * aspect
    else:
        height = width / aspect
    bounds = Bounds(
        west=(centre_x - width / 2) / squeeze,
        south=centre_y - height / 2,
        east=(centre_x + width / 2) / squeeze,
        north=centre_y + height / 2,
    )
    return Projection(bounds=bounds, scale=plot_height / height, squeeze=squeeze, left=margins.left, top=margins.top)


def _ticks(low: float, high: float, step: float, limit: float) -> list[float]:
    first = math.ceil(low / step - 1e-9)
    last = math.floor(high / step + 1e-9)
    return [round(i * step, 12) for i in range(first, last + 1) if -limit <= i * step <= limit]


def _round_down(value: float) -> float:
    """Return the largest 1, 2 or 5 times a power of ten that is at most ``value``."""
    power = 10.0 ** math.floor(math.log10(value))
    return next(m * power for m in (5.0, 2.0, 1.0) if m * power <= value * (1 + 1e-9))


def _scale_bar(projection: Projection, plot_width: float, left: float, bottom: float) -> ScaleBar:
    metres_per_pixel = METRES_PER_DEGREE / projection.scale
    metres = _round_down(plot_width / 4 * metres_per_pixel)
    label = f"{metres / 1000:g} km" if metres >= 1000 else f"{metres:g} m"
    return ScaleBar(x=left + 16, y=bottom - 22, length=metres / metres_per_pixel, label=label)


def _label_width(text: str) -> float:
    return 14 + 7.2 * len(text)  # 12px system sans-serif, padded


def build_map(
    points: Sequence[GagePoint], width: int = 960, height: int = 600, margins: Margins = Margins()
) -> MapView:
    """Return the map of ``points`` as an SVG of ``width`` x ``height`` pixels."""
    plot_width = width - margins.left - margins.right
    plot_height = height - margins.top - margins.bottom
    projection = fit(points, plot_width, plot_height, margins)
    b = projection.bounds
    left, top = float(margins.left), float(margins.top)
    right, bottom = left + plot_width, top + plot_height

    lon_step = nice_step(b.east - b.west, 7)
    lat_step = nice_step(b.north - b.south, 6)
    meridians = [
        GridLine(
            x1=projection.x(lon),
            y1=top,
            x2=projection.x(lon),
            y2=bottom,
            label=format_degrees(lon, "lon", _decimals(lon_step)),
            label_x=projection.x(lon),
            label_y=bottom + 22,
        )
        for lon in _ticks(b.west, b.east, lon_step, 180)
    ]
    parallels = [
        GridLine(
            x1=left,
            y1=projection.y(lat),
            x2=right,
            y2=projection.y(lat),
            label=format_degrees(lat, "lat", _decimals(lat_step)),
            label_x=left - 8,
            label_y=projection.y(lat) + 4,
        )
        for lat in _ticks(b.south, b.north, lat_step, 90)
    ]

    markers = []
    for p in points:
        x, y = projection.x(p.longitude), projection.y(p.latitude)
        label = f"Gage {p.id} · value {p.value}"
        label_width = _label_width(label)
        # Right of the marker, unless that would leave the plot.
        label_left = x + 14 if x + 14 + label_width <= right - 4 else x - 14 - label_width
        markers.append(
            Marker(
                id=p.id,
                value=p.value,
                latitude=p.latitude,
                longitude=p.longitude,
                x=x,
                y=y,
                label=label,
                label_left=label_left,
                label_width=label_width,
                title=(
                    f"Gage {p.id}{f' ({p.name})' if p.name else ''}: value {p.value} at "
                    f"{format_degrees(p.latitude, 'lat', 5)}, {format_degrees(p.longitude, 'lon', 5)}"
                ),
            )
        )
    return MapView(
        width=width,
        height=height,
        plot_left=left,
        plot_top=top,
        plot_width=plot_width,
        plot_height=plot_height,
        bounds=b,
        meridians=meridians,
        parallels=parallels,
        markers=markers,
        scale_bar=_scale_bar(projection, plot_width, left, bottom),
        empty=not points,
    )
