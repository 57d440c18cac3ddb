"""The column-mapping file that lets any CRM's CSV export land in the canonical shape.

A mapping is YAML, validated with pydantic; errors name the file and the field.
See README ("Bring your own CSV export") for the format; examples live in
connectors/mappings/.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from connectors.schema import RAW_OBJECTS
from connectors.values import PlausibleBounds


class MappingError(ValueError):
    """A mapping file that cannot be used; the message names the file and the field."""


class StageSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    order: int
    closed: bool = False
    won: bool = False

    @model_validator(mode="after")
    def _won_is_closed(self) -> "StageSpec":
        if self.won and not self.closed:
            raise ValueError(f"stage {self.name!r}: won: true requires closed: true")
        return self


class ObjectMapping(BaseModel):
    model_config = ConfigDict(extra="forbid")
    file: str = Field(description="CSV file name inside the export folder.")
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="canonical field -> source column. Unlisted canonical fields are read from a "
        "column of the same name when present, else left empty.",
    )
    constants: dict[str, Any] = Field(default_factory=dict, description="canonical field -> fixed value.")
    if_present: dict[str, str] = Field(
        default_factory=dict,
        description="canonical field -> source column read only when the file has it (an org's custom field, "
        "e.g. loss_reason: Loss_Reason__c); without it the field is left empty instead of failing the mapping.",
    )
    skip_when: dict[str, list[str]] = Field(
        default_factory=dict,
        description="source column -> values; rows matching any are skipped and counted (e.g. IsDeleted: ['1']).",
    )
    modified: str | None = Field(
        default=None,
        description="source column of the record's last-modified time (e.g. LastModifiedDate): of rows sharing a "
        "primary key the latest modified is kept, else the last in the file; the others are quarantined as duplicates.",
    )


class Formats(BaseModel):
    model_config = ConfigDict(extra="forbid")
    date: list[str] = Field(default_factory=lambda: ["%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"])
    timestamp: list[str] = Field(
        default_factory=lambda: ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d"]
    )
    true_values: list[str] = Field(default_factory=lambda: ["true", "1", "yes", "y", "t"])
    false_values: list[str] = Field(default_factory=lambda: ["false", "0", "no", "n", "f"])
    delimiter: str = ","
    encoding: str = Field(
        default="utf-8-sig",
        description="utf-8 (a BOM is skipped), utf-16 or latin-1; bytes invalid in it quarantine their rows.",
    )


class Plausibility(BaseModel):
    """Values outside these bounds are quarantined as implausible (typos, placeholder dates)."""

    model_config = ConfigDict(extra="forbid")
    min_date: dt.date = Field(default=dt.date(1990, 1, 1), description="earliest plausible date or timestamp")
    max_years_ahead: int = Field(default=10, ge=0, description="latest plausible date: the as-of date plus this many years")
    max_amount: float = Field(default=10_000_000_000, gt=0, description="largest plausible amount")
    max_quarantine_share: float = Field(
        default=0.2, ge=0, le=1, description="an object with a larger share of its rows quarantined fails an ERROR check"
    )

    def bounds(self, as_of: dt.date | None = None) -> PlausibleBounds:
        """The date window (as of ``as_of``, default today) and amount ceiling values must meet."""
        return PlausibleBounds.window(self.min_date, self.max_years_ahead, self.max_amount, as_of)


class CsvMapping(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source_system: str = Field(default="csv", description="Recorded on every landed row.")
    crm_base_url: str | None = Field(
        default=None,
        description="Where the CRM's records live: the record id is appended (or fills {record_id}); becomes "
        "source_url of deals whose file has no URL column, so every CRM link in digests opens the record.",
    )
    stages: list[StageSpec] | None = Field(
        default=None, description="The CRM's stages in order. Required unless a 'stages' object file is mapped."
    )
    objects: dict[str, ObjectMapping]
    formats: Formats = Field(default_factory=Formats)
    plausibility: Plausibility = Field(default_factory=Plausibility)

    @field_validator("objects")
    @classmethod
    def _known_objects(cls, v: dict[str, ObjectMapping]) -> dict[str, ObjectMapping]:
        for name, om in v.items():
            if name not in RAW_OBJECTS:
                raise ValueError(f"unknown object {name!r} (known: {', '.join(RAW_OBJECTS)})")
            fields = set(RAW_OBJECTS[name].field_names)
            for canonical in list(om.columns) + list(om.constants) + list(om.if_present):
                if canonical not in fields:
                    raise ValueError(
                        f"objects.{name}: unknown canonical field {canonical!r} (fields: {', '.join(sorted(fields))})"
                    )
        return v

    @model_validator(mode="after")
    def _stages_known(self) -> "CsvMapping":
        if "opportunities" not in self.objects:
            raise ValueError("objects: an 'opportunities' mapping is required")
        if self.stages is None and "stages" not in self.objects:
            raise ValueError("stages: list the CRM's stages, or map a 'stages' object file")
        return self


def identity_mapping(source_system: str = "csv") -> CsvMapping:
    """The mapping of a folder already in the canonical shape (``<object>.csv``, canonical headers)."""
    return CsvMapping(
        source_system=source_system,
        objects={name: ObjectMapping(file=f"{name}.csv") for name in RAW_OBJECTS},
    )


M = TypeVar("M", bound=BaseModel)


def load_yaml_model(path: Path | str, model: type[M], what: str = "mapping file") -> M:
    """Read a YAML file into a pydantic model; every error names the file and the field."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MappingError(f"{path}: {what} not found") from None
    except yaml.YAMLError as exc:
        raise MappingError(f"{path}: not valid YAML: {exc}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise MappingError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()
        )
        raise MappingError(f"{path}: {problems}") from None


def load_mapping(path: Path | str) -> CsvMapping:
    return load_yaml_model(path, CsvMapping)
