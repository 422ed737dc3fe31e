"""The app's endpoints, served by the portal under ``/apps/stream_gages/``.

======  ========================  =============================================  ==========
method  path                      what                                           sign-in
======  ========================  =============================================  ==========
GET     ``/`` (also ``/map``)     HTML page with the gages on an offline map     no
GET     ``/gages``                every gage as a GeoJSON FeatureCollection      no
GET     ``/gages/{id}``           one gage as a GeoJSON Feature                  no
POST    ``/gages``                add a gage ``{latitude, longitude, value,      any user
                                  name?}``
GET     ``/scenarios``            the scenario stores that exist                 no
POST    ``/scenarios``            create scenario store ``{"name": ...}``        admin
DELETE  ``/scenarios/{name}``     drop a scenario store                          admin
GET     ``/static/{file}``        the page's stylesheet                          no
======  ========================  =============================================  ==========

Errors are the portal's problem documents (``application/problem+json``):
bodies not sent as JSON 415, invalid bodies 422, bad scenario names 400, no token 401, viewers creating or
dropping scenarios 403, unknown gages or scenarios 404, existing scenarios 409.

The routes are built by :func:`build_router` for an app class; ``router`` is
the one the portal serves (``App.router = "stream_gages.routes:router"``). Only
the portal imports this module, so commands that load the app never import
FastAPI, pydantic or Jinja.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.responses import HTMLResponse, JSONResponse
from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from storekeeper.errors import StorekeeperError
from storekeeper.portal.deps import AdminDep, CurrentUser
from stream_gages.app import MIGRATIONS, PRIMARY_DB, SCENARIOS, App
from stream_gages.mapview import GagePoint, build_map
from stream_gages.model import StreamGage

if TYPE_CHECKING:
    from storekeeper import AppBase

#: Scenario "wet_year" lives in store "scenario_wet_year" (database ``stream_gages_scenario_wet_year``).
SCENARIO_PREFIX = "scenario_"
SCENARIO_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,31}\Z")
SCENARIO_NAME_RULE = "1 to 32 lowercase letters, digits or _, starting with a letter"
SCENARIO_INITIALIZER = "stream_gages.model.init_scenario_db"
GEOJSON = "application/geo+json"
#: Files served from the package's static/ folder, with their media types.
STATIC_FILES = {"map.css": "text/css; charset=utf-8"}
#: Decimal digits ST_AsGeoJSON may write: enough for any double to come back unchanged (its default, 9, rounds).
GEOJSON_DIGITS = 15
#: PostgreSQL integer range, the type of the ``id`` and ``value`` columns.
INT_MIN, INT_MAX = -(2**31), 2**31 - 1

_templates = Environment(
    loader=PackageLoader("stream_gages", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_templates.filters["px"] = lambda value: f"{value:.1f}"


class ScenarioError(StorekeeperError):
    """A scenario store cannot be created, found or dropped."""


class GageError(StorekeeperError):
    """A gage (or file) the request names does not exist."""


def require_json(request: Request) -> None:
    """Refuse (415) a request body that is not sent as JSON, as the links example does."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise GageError(
            f"The body must be JSON (Content-Type: application/json), not {media_type or 'untyped'}.",
            hint="send it with: -H 'Content-Type: application/json'",
            status=415,
        )


# -- request and response bodies -------------------------------------------------------

Latitude = Annotated[float, Field(strict=True, ge=-90, le=90, allow_inf_nan=False, description="degrees north, WGS 84")]
Longitude = Annotated[
    float, Field(strict=True, ge=-180, le=180, allow_inf_nan=False, description="degrees east, WGS 84")
]


class GageIn(BaseModel):
    """A new gage. Numbers only: strings, booleans, NaN and infinities are refused."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {"latitude": 40.2401, "longitude": -111.6571, "value": 7, "name": "Provo River at Main St"}
        },
    )

    latitude: Latitude
    longitude: Longitude
    value: Annotated[int, Field(strict=True, ge=INT_MIN, le=INT_MAX, description="the gage's reading")]
    name: Annotated[str | None, Field(max_length=200, description="what the gage is called (optional)")] = None


class ScenarioIn(BaseModel):
    """A scenario to create."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"name": "wet_year"}})

    name: str = Field(description=SCENARIO_NAME_RULE)


class ScenarioOut(BaseModel):
    """A scenario and the store that holds it."""

    name: str
    store: str


class ScenarioList(BaseModel):
    """Every scenario store that exists, sorted by name."""

    scenarios: list[ScenarioOut]


class GeoJSONResponse(JSONResponse):
    """JSON sent as ``application/geo+json`` (RFC 7946)."""

    media_type = GEOJSON


# -- helpers -------------------------------------------------------------------------


def _feature(gage_id: int, value: int, name: str | None, geometry: str) -> dict[str, Any]:
    return {
        "type": "Feature",
        "id": gage_id,
        "geometry": json.loads(geometry),
        "properties": {"id": gage_id, "value": value, "name": name},
    }


def _features(session: Session, *where: Any) -> list[dict[str, Any]]:
    """Return gages as GeoJSON Features, geometry from PostGIS's ST_AsGeoJSON of the stored point."""
    geometry = func.ST_AsGeoJSON(StreamGage.geom, GEOJSON_DIGITS)
    stmt = select(StreamGage.id, StreamGage.value, StreamGage.name, geometry).where(*where).order_by(StreamGage.id)
    return [_feature(gage_id, value, name, geometry) for gage_id, value, name, geometry in session.execute(stmt)]


def scenario_store(name: str) -> str:
    """Return the store name of scenario ``name``, refusing (400) a name outside the rule."""
    if not isinstance(name, str) or not SCENARIO_NAME_RE.match(name):
        raise ScenarioError(
            f"Invalid scenario name {name!r}: use {SCENARIO_NAME_RULE}.",
            hint='e.g. {"name": "wet_year"}',
            status=400,
        )
    return SCENARIO_PREFIX + name


def build_router(app: type[AppBase]) -> APIRouter:
    """Return the app's endpoints, working on ``app``'s stores."""
    router = APIRouter()

    def sessions() -> sessionmaker[Session]:
        return app.get_persistent_store_database(PRIMARY_DB, as_sessionmaker=True)  # type: ignore[return-value]

    def scenario_names() -> list[str]:
        stores = app.list_persistent_store_databases(dynamic_only=True)
        return sorted(s.removeprefix(SCENARIO_PREFIX) for s in stores if s.startswith(SCENARIO_PREFIX))

    # -- the map ---------------------------------------------------------------------

    @router.get("/", response_class=HTMLResponse, summary="Map of the gages")
    def map_page(request: Request) -> HTMLResponse:
        """The gages on a map drawn on the server as SVG; works without any network access."""
        stmt = select(
            StreamGage.id, func.ST_Y(StreamGage.geom), func.ST_X(StreamGage.geom), StreamGage.value, StreamGage.name
        )
        with sessions()() as session:
            points = [
                GagePoint(id=i, latitude=lat, longitude=lon, value=v, name=name)
                for i, lat, lon, v, name in session.execute(stmt.order_by(StreamGage.id))
            ]
        html = _templates.get_template("map.html").render(view=build_map(points), gages=points, app_name=app.name)
        return HTMLResponse(html)

    router.add_api_route("/map", map_page, methods=["GET"], response_class=HTMLResponse, include_in_schema=False)

    @router.get("/static/{file}", include_in_schema=False)
    def static_file(file: str) -> Response:
        media_type = STATIC_FILES.get(file)
        if media_type is None:
            raise GageError(f"There is no static file {file!r}.", hint=f"known: {', '.join(STATIC_FILES)}", status=404)
        body = (resources.files("stream_gages") / "static" / file).read_bytes()
        return Response(body, media_type=media_type, headers={"Cache-Control": "public, max-age=300"})

    # -- gages -------------------------------------------------------------------------

    @router.get("/gages", response_class=GeoJSONResponse, summary="Every gage as GeoJSON")
    def list_gages() -> GeoJSONResponse:
        """Every gage as a GeoJSON FeatureCollection: Points [longitude, latitude], properties id, value and name."""
        with sessions()() as session:
            return GeoJSONResponse({"type": "FeatureCollection", "features": _features(session)})

    @router.get("/gages/{gage_id}", response_class=GeoJSONResponse, name="stream_gage", summary="One gage as GeoJSON")
    def get_gage(gage_id: int) -> GeoJSONResponse:
        """One gage as a GeoJSON Feature (404 when there is none with this id, 422 when the id is not a number)."""
        found = []
        if INT_MIN <= gage_id <= INT_MAX:  # the id column is an integer: no gage has an id beyond its range
            with sessions()() as session:
                found = _features(session, StreamGage.id == gage_id)
        if not found:
            shown = (
                gage_id if INT_MIN <= gage_id <= INT_MAX else "with that id (gage ids are integers up to 2147483647)"
            )
            raise GageError(f"There is no gage {shown}.", hint="list them: GET /apps/stream_gages/gages", status=404)
        return GeoJSONResponse(found[0])

    @router.post(
        "/gages",
        status_code=status.HTTP_201_CREATED,
        response_class=GeoJSONResponse,
        summary="Add a gage",
        dependencies=[Depends(require_json)],
    )
    def add_gage(body: GageIn, request: Request, _: CurrentUser) -> GeoJSONResponse:
        """Add a gage (any signed-in user); answers 201 with the new gage as a GeoJSON Feature."""
        with sessions()() as session:
            gage = StreamGage(latitude=body.latitude, longitude=body.longitude, value=body.value, name=body.name)
            session.add(gage)
            session.commit()
            (feature,) = _features(session, StreamGage.id == gage.id)
        location = request.url_for("stream_gage", gage_id=gage.id).path
        return GeoJSONResponse(feature, status_code=status.HTTP_201_CREATED, headers={"Location": location})

    # -- scenarios: dynamic stores -----------------------------------------------------

    @router.get("/scenarios", response_model=ScenarioList, summary="List scenario stores")
    def list_scenarios() -> ScenarioList:
        """The scenario stores that exist on their server."""
        return ScenarioList(scenarios=[ScenarioOut(name=n, store=SCENARIO_PREFIX + n) for n in scenario_names()])

    @router.post(
        "/scenarios",
        status_code=status.HTTP_201_CREATED,
        response_model=ScenarioOut,
        summary="Create a scenario store",
        dependencies=[Depends(require_json)],
    )
    def create_scenario(body: ScenarioIn, response: Response, _: AdminDep) -> ScenarioOut:
        """Create a spatial store for a scenario, starting from the seed gages (admins only; 409 if it exists)."""
        store = scenario_store(body.name)
        if app.persistent_store_exists(store):
            raise ScenarioError(
                f'Scenario "{body.name}" already exists (store {store}).',
                hint=f"pick another name, or drop it first: DELETE /apps/stream_gages/scenarios/{body.name}",
                status=409,
                store=store,
            )
        app.create_persistent_store(
            store, SCENARIOS, spatial=True, initializer=SCENARIO_INITIALIZER, migrations=MIGRATIONS
        )
        response.headers["Location"] = f"/apps/stream_gages/scenarios/{body.name}"
        return ScenarioOut(name=body.name, store=store)

    @router.delete("/scenarios/{name}", status_code=status.HTTP_204_NO_CONTENT, summary="Drop a scenario store")
    def drop_scenario(name: str, _: AdminDep) -> Response:
        """Drop a scenario's store and all its data (admins only; 404 if there is no such scenario)."""
        store = scenario_store(name)
        if not app.persistent_store_exists(store):
            raise ScenarioError(
                f'There is no scenario "{name}".',
                hint="list them: GET /apps/stream_gages/scenarios",
                status=404,
                store=store,
            )
        app.drop_persistent_store(store)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return router


#: The endpoints the portal serves at /apps/stream_gages/.
router = build_router(App)
