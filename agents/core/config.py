"""Agent configuration as validated data: ``agent.toml`` (the deployment) and one source mapping TOML per department file.

``agent.toml`` names the agent, its network segment, where its keys and
outbox live (the agent home: the folder holding ``agent.toml``), the gateway
to push to, the 外字 (gaiji) table and the source files with their mappings::

    [agent]
    id = "edu-1"
    municipality = "131016"
    network = "edu"
    passphrase_file = "passphrase.txt"   # mode 0600; omit to be asked
    escrow_public_key = "escrow-public.json"
    policy = "policy.toml"               # omit: the policy shipped with tsunagu
    gaiji = "gaiji.toml"                 # omit: every 外字 is unknown (〓)

    [gateway]
    url = "https://gateway.example.lg.jp:8443"
    ca_file = "gateway-ca.pem"

    [[sources]]
    mapping = "mappings/school.toml"
    file = "data/school.csv"

A source mapping translates a department's own column names to the canonical
columns of ``linkage.record`` and names the attributes to forward::

    source = "school"
    format = "csv"          # csv, tsv or xlsx
    encoding = "cp932"      # utf-8, utf-8-sig or cp932 (csv/tsv only)

    [columns]               # canonical column = department column
    record_id = "学籍番号"
    full_name = "氏名"

    [attributes]            # attribute sent to the gateway = department column
    absence_days = "欠席日数"

Relative paths are resolved against the file that names them.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from linkage.record import IDENTITY_COLUMNS
from policy import NETWORKS, is_my_number_like
from policy.attributes import default_catalog

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_NAME_COLUMNS = ("family_name", "given_name", "full_name", "family_name_kana", "given_name_kana", "full_name_kana")


class ConfigError(Exception):
    """A configuration or mapping file is missing or wrong; the message says which file and what to fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceMapping(_Strict):
    """How one department file is laid out and what it may forward."""

    source: str
    label: str = ""
    format: Literal["csv", "tsv", "xlsx"] | None = None
    encoding: Literal["utf-8", "utf-8-sig", "cp932"] | None = None
    sheet: str | None = None
    header_row: int = Field(default=1, ge=1)
    columns: dict[str, str]
    attributes: dict[str, str] = {}
    #: Coded attributes: the department's own word → the canonical code of ``policy/attributes.toml``.
    values: dict[str, dict[str, str]] = {}

    @field_validator("source")
    @classmethod
    def _source_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"データ元名「{value}」は英小文字・数字・_ で書いてください（例: school）")
        return value

    @field_validator("columns")
    @classmethod
    def _canonical(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if name not in IDENTITY_COLUMNS:
                close = difflib.get_close_matches(name, IDENTITY_COLUMNS, n=1, cutoff=0.5)
                hint = f"「{close[0]}」の誤りではありませんか。" if close else ""
                raise ValueError(f"「{name}」は正規列ではありません。{hint}使える列: {', '.join(IDENTITY_COLUMNS)}")
        if "record_id" not in value:
            raise ValueError("record_id（各システムの記録番号: 宛名番号・学籍番号など）の列を指定してください")
        if not any(c in value for c in _NAME_COLUMNS):
            raise ValueError("氏名の列（full_name・family_name・full_name_kana など）を一つ以上指定してください")
        for name, column in value.items():
            if is_my_number_like(column):
                raise ValueError(f"列「{column}」は個人番号にあたるため使えません（{name}）")
        return value

    @field_validator("attributes")
    @classmethod
    def _attributes(cls, value: dict[str, str]) -> dict[str, str]:
        for name, column in value.items():
            if is_my_number_like(name) or is_my_number_like(column):
                raise ValueError(f"属性「{name}」（列「{column}」）は個人番号にあたるため、どの経路でも送れません")
            if name in IDENTITY_COLUMNS:
                raise ValueError(f"「{name}」は本人特定項目です。[columns] に書いてください（属性としては送れません）")
            if not _NAME.match(name):
                raise ValueError(f"属性名「{name}」は英小文字・数字・_ で書いてください（例: absence_days）")
        return value

    @model_validator(mode="after")
    def _vocabularies(self) -> "SourceMapping":
        catalog = default_catalog()
        for name, words in self.values.items():
            if name not in self.attributes:
                raise ValueError(f"[values.{name}] の属性「{name}」が [attributes] にありません")
            codes = catalog.codes(name)
            if not codes:
                raise ValueError(f"属性「{name}」は属性の定義（policy/attributes.toml）で区分値（type = \"code\"）ではありません")
            for word, code in words.items():
                if code not in codes:
                    allowed = "、".join(f"{c}（{label}）" for c, label in codes.items())
                    raise ValueError(f"[values.{name}] の「{word}」= 「{code}」は正規の値ではありません（使える値: {allowed}）")
        return self

    @model_validator(mode="after")
    def _format_options(self) -> "SourceMapping":
        if self.format == "xlsx" and self.encoding is not None:
            raise ValueError("xlsx には encoding を指定しません（Excel ファイルは文字コードを内部に持ちます）")
        if self.format in ("csv", "tsv") and self.sheet is not None:
            raise ValueError("sheet は xlsx のときだけ指定できます")
        return self

    def department_columns(self) -> dict[str, str]:
        """Every department column this mapping reads, to the canonical column or attribute it becomes."""
        return {**{v: k for k, v in self.columns.items()}, **{v: k for k, v in self.attributes.items()}}


class AgentSection(_Strict):
    """Who the agent is and where its secrets and inputs are."""

    id: str
    municipality: str = Field(pattern=r"^[0-9]{6}$")
    network: str
    passphrase_file: Path | None = None
    escrow_public_key: Path
    policy: Path | None = None
    gaiji: Path | None = None
    report_dir: Path | None = None
    #: a source with more records than this goes as several signed parts (about 40 MB each at the default; a part is
    #: also kept under 128 MiB whatever this says, half the gateway's default body limit)
    records_per_part: int = Field(default=50_000, ge=1)

    @field_validator("network")
    @classmethod
    def _network(cls, value: str) -> str:
        if value not in NETWORKS:
            raise ValueError(f"ネットワーク「{value}」は使えません（{', '.join(NETWORKS)}）")
        return value


class GatewaySection(_Strict):
    """Where and how submissions are pushed (HTTPS; plain HTTP only to this machine's loopback)."""

    url: str
    ca_file: Path | None = None
    timeout_seconds: float = Field(default=60.0, gt=0)
    attempts: int = Field(default=5, ge=1, le=20)
    backoff_seconds: float = Field(default=2.0, ge=0)
    max_backoff_seconds: float = Field(default=300.0, ge=0)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("url は https://ホスト名:ポート の形で書いてください")
        return value.rstrip("/")


class SourceEntry(_Strict):
    """One department file and the mapping that reads it."""

    mapping: Path
    file: Path


class AgentConfig(_Strict):
    """The whole ``agent.toml``, paths resolved."""

    home: Path
    agent: AgentSection
    gateway: GatewaySection | None = None
    sources: tuple[SourceEntry, ...] = Field(min_length=1)

    @property
    def report_dir(self) -> Path:
        """Where row reports are written (default: ``<home>/reports``)."""
        return self.agent.report_dir or self.home / "reports"


def _load_toml(path: Path, what: str) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} がありません。") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {path} は UTF-8 で保存してください。") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path} の TOML が読めません: {exc}") from None


def _explain(path: Path, exc: ValidationError) -> ConfigError:
    problems = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "(全体)"
        kind = error.get("type")
        if kind == "extra_forbidden":
            message = "未知の項目です（綴りを確認してください）"
        elif kind == "missing":
            message = "必須の項目がありません"
        else:
            message = str(error.get("msg", "")).removeprefix("Value error, ")
        problems.append(f"{where}: {message}")
    return ConfigError(f"{path} に誤りがあります — " + "; ".join(problems))


def load_mapping(path: Path) -> SourceMapping:
    """Read and validate one source mapping TOML."""
    try:
        return SourceMapping.model_validate(_load_toml(path, "対応表"))
    except ValidationError as exc:
        raise _explain(path, exc) from None


def load_config(path: Path) -> AgentConfig:
    """Read and validate ``agent.toml``; relative paths become paths under its folder."""
    path = path.resolve()
    data = _load_toml(path, "設定ファイル")
    home = path.parent
    agent = data.get("agent")
    if isinstance(agent, dict):
        for key in ("passphrase_file", "escrow_public_key", "policy", "gaiji", "report_dir"):
            if isinstance(agent.get(key), str):
                agent[key] = home / agent[key]
    gateway = data.get("gateway")
    if isinstance(gateway, dict) and isinstance(gateway.get("ca_file"), str):
        gateway["ca_file"] = home / gateway["ca_file"]
    for entry in data.get("sources") or []:
        if isinstance(entry, dict):
            for key in ("mapping", "file"):
                if isinstance(entry.get(key), str):
                    entry[key] = home / entry[key]
    try:
        config = AgentConfig.model_validate({**data, "home": home})
    except ValidationError as exc:
        raise _explain(path, exc) from None
    return config
