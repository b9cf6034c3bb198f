"""The attribute catalog: each attribute's Japanese label, its type and, for coded values, the canonical codes.

Attributes are declared data (``policy/attributes.toml``, or a municipality's
own copy): screens and exports show ``label`` and the code's label, never the
key; agents map a department's own words to the canonical codes
(``[values.checkup_missed] "未受診" = "missed"``); screening rules are written
against the canonical codes and checked against this catalog when they are
loaded (:func:`policy.screening.check_rules`).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from policy._toml import first_problem, read_toml

AttributeType = Literal["number", "code", "text"]

DEFAULT_CATALOG = Path(__file__).with_name("attributes.toml")


class CatalogError(Exception):
    """The attribute catalog is missing or invalid; the message says where and how to fix it."""


class AttributeSpec(BaseModel):
    """One declared attribute."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str = Field(min_length=1)
    type: AttributeType
    unit: str = ""
    values: dict[str, str] = {}

    @field_validator("values")
    @classmethod
    def _codes(cls, value: dict[str, str]) -> dict[str, str]:
        for code, label in value.items():
            if not code or not code.isascii() or not code.replace("_", "").isalnum():
                raise ValueError(f"区分値「{code}」は英数字と _ で書いてください（例: missed）")
            if not label:
                raise ValueError(f"区分値「{code}」に日本語の名前がありません")
        return value

    @model_validator(mode="after")
    def _code_has_values(self) -> "AttributeSpec":
        if self.type == "code" and not self.values:
            raise ValueError("type = \"code\" の属性には values（正規の値と日本語の名前）が必要です")
        if self.type != "code" and self.values:
            raise ValueError("values は type = \"code\" の属性にだけ書けます")
        return self


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    attributes: dict[str, AttributeSpec]


class AttributeCatalog:
    """Labels, types and codes of the declared attributes; undeclared keys are reported, shown as themselves."""

    def __init__(self, attributes: Mapping[str, AttributeSpec]):
        """A catalog of ``attributes`` (key → spec)."""
        self.attributes = dict(attributes)

    def get(self, key: str) -> AttributeSpec | None:
        """The spec of ``key``, or None if it is not declared."""
        return self.attributes.get(key)

    def label(self, key: str) -> str:
        """The Japanese label of ``key`` (the key itself, for an undeclared attribute)."""
        spec = self.attributes.get(key)
        return spec.label if spec else key

    def value_label(self, key: str, value: str | None) -> str:
        """How a stored value reads on a screen: a code's label, a number with its unit, blank as 「データなし」."""
        if value is None or not str(value).strip():
            return "データなし"
        spec = self.attributes.get(key)
        if spec is None:
            return str(value)
        if spec.type == "code":
            return spec.values.get(str(value), f"{value}（未定義の値）")
        return f"{value}{spec.unit}" if spec.unit else str(value)

    def codes(self, key: str) -> dict[str, str]:
        """The canonical codes of a coded attribute (empty for other types or undeclared keys)."""
        spec = self.attributes.get(key)
        return dict(spec.values) if spec else {}


def parse_catalog(data: Mapping[str, Any], origin: str = "attributes") -> AttributeCatalog:
    """Validate a catalog already read from TOML."""
    try:
        document = _Document.model_validate(data)
    except ValidationError as exc:
        raise CatalogError(f"{first_problem(origin, exc)}。属性の定義を確認してください") from None
    return AttributeCatalog(document.attributes)


def load_catalog(path: Path | str) -> AttributeCatalog:
    """Read and validate a catalog file."""
    path = Path(path)
    return parse_catalog(read_toml(path, CatalogError, "属性の定義"), str(path))


@lru_cache(maxsize=1)
def default_catalog() -> AttributeCatalog:
    """The shipped catalog (policy/attributes.toml)."""
    return load_catalog(DEFAULT_CATALOG)
