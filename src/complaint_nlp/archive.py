"""Batch labelling of complaint archives: every row exactly once, any encoding, resumable.

The path of a row: a reader (CSV/TSV, JSONL, Excel, Parquet; encoding
detected) yields it with its row number; rows are grouped in chunks; a chunk
is labelled by ``ComplaintClassifier.predict`` (which deduplicates identical
texts and sorts by length) and written as one part file next to the output.
A finished part is never rewritten, so a killed run restarted with
``resume=True`` continues after the last finished part. When all parts are
there they are joined into the output file, which appears atomically.

Rows that cannot be labelled (empty text, undecodable bytes, a broken JSON
line) keep their place and get an ``error`` value; nothing is dropped.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import json
import math
import os
import re
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time as dt_time
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Iterator, Sequence

from . import labels
from .classifier import ComplaintClassifier, ComplaintResult
from .modeling import WEIGHTS_NAME

READ_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".xlsx": "xlsx",
                ".parquet": "parquet"}
WRITE_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
DEFAULT_CHUNK_SIZE = 4096
ENCODING_SAMPLE_BYTES = 1 << 20
# A CSV field longer than this is refused rather than read into memory whole.
MAX_FIELD_CHARS = 16 << 20

ROW_NUMBER_COLUMN = "row_number"
ERROR_UNREADABLE = "unreadable_bytes"
ERROR_INVALID_JSON = "invalid_json"
ERROR_MISSING_TEXT = "missing_text_column"
WARNING_RAGGED = "ragged_row"

_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")


class ArchiveError(ValueError):
    """The archive as a whole cannot be read or written (not a single bad row)."""


# ----------------------------------------------------------------------------- encodings

# Detected names mapped to the superset codec that decodes them without loss.
_SUPERSETS = {"gb2312": "gb18030", "gbk": "gb18030", "hz": "gb18030", "big5": "big5hkscs", "cp950": "big5hkscs",
              "ascii": "utf-8", "utf_8": "utf-8"}


def detect_encoding(sample: bytes) -> str:
    """BOM first, then strict UTF-8, then charset-normalizer; GBK/GB2312 widen to GB18030, Big5 to Big5-HKSCS."""
    for bom, name in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                      (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                      (codecs.BOM_UTF16_BE, "utf-16")):
        if sample.startswith(bom):
            return name
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(sample).best()
    if best is None:
        raise ArchiveError("could not detect the text encoding; pass it with --encoding (e.g. gb18030, big5, utf-16)")
    name = codecs.lookup(best.encoding).name.replace("-", "_")
    return _SUPERSETS.get(name, name)


def escape_undecodable(value: str) -> str:
    """Show bytes that did not decode as ``\\xNN`` instead of dropping or replacing them."""
    return _ESCAPED_BYTE.sub(lambda m: f"\\x{ord(m.group()) - 0xDC00:02x}", value)


class _CountingReader(io.RawIOBase):
    """Counts bytes read from a binary file, for a progress fraction of text formats."""

    def __init__(self, raw: IO[bytes]):
        self.raw, self.count = raw, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self.raw.readinto(buffer)
        self.count += n or 0
        return n

    def close(self) -> None:
        self.raw.close()
        super().close()


# ----------------------------------------------------------------------------- readers

@dataclass
class Row:
    """One input row: its 1-based number, its values by column, and any problem reading it."""

    number: int
    values: dict[str, Any]
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


class ArchiveReader:
    """Iterates the rows of one archive in order; ``columns`` is known before the first row."""

    columns: list[str]
    encoding: str | None = None
    total_rows: int | None = None

    def __iter__(self) -> Iterator[Row]:
        raise NotImplementedError

    def fraction_read(self) -> float | None:
        return None

    def close(self) -> None:
        pass


def _unique_names(names: Sequence[Any]) -> list[str]:
    """Header cells as unique, non-empty names (``column_3``, ``name_2``) so no column is lost."""
    out: list[str] = []
    for i, name in enumerate(names, 1):
        base = escape_undecodable(str(name)).strip() if name is not None and str(name).strip() else f"column_{i}"
        candidate, n = base, 2
        while candidate in out:
            candidate, n = f"{base}_{n}", n + 1
        out.append(candidate)
    return out


class _TextReader(ArchiveReader):
    def __init__(self, path: Path, encoding: str | None):
        raw = open(path, "rb")
        self.size = max(path.stat().st_size, 1)
        if encoding is None:
            encoding = detect_encoding(raw.read(ENCODING_SAMPLE_BYTES))
            raw.seek(0)
        try:
            codecs.lookup(encoding)
        except LookupError as exc:
            raw.close()
            raise ArchiveError(f"unknown encoding {encoding!r}") from exc
        self.encoding = encoding
        self._counter = _CountingReader(raw)
        # surrogateescape keeps undecodable bytes visible, so the row can be flagged rather than mangled.
        self._text = io.TextIOWrapper(io.BufferedReader(self._counter), encoding=encoding,
                                      errors="surrogateescape", newline="")

    def fraction_read(self) -> float:
        return min(1.0, self._counter.count / self.size)

    def close(self) -> None:
        self._text.close()


class CsvReader(_TextReader):
    """CSV/TSV: quoted newlines, ragged rows and NUL bytes are read without losing a field."""

    def __init__(self, path: Path, encoding: str | None, delimiter: str):
        super().__init__(path, encoding)
        self.delimiter = delimiter
        csv.field_size_limit(MAX_FIELD_CHARS)
        self._rows = csv.reader(self._text, delimiter=delimiter)
        header = next((r for r in self._rows if r), None)
        if header is None:
            raise ArchiveError(f"{path}: no header row")
        if header and header[0].startswith("\ufeff"):
            header[0] = header[0][1:]
        self.columns = _unique_names(header)

    def __iter__(self) -> Iterator[Row]:
        width = len(self.columns)
        number = 0
        try:
            for cells in self._rows:
                if not cells:  # a blank line is not a row
                    continue
                number += 1
                warnings = []
                if len(cells) != width:
                    warnings.append(WARNING_RAGGED)
                    if len(cells) > width:  # surplus fields rejoin the last column: nothing is dropped
                        cells = [*cells[:width - 1], self.delimiter.join(cells[width - 1:])]
                    else:
                        cells = [*cells, *([""] * (width - len(cells)))]
                values = dict(zip(self.columns, cells))
                bad = any(isinstance(v, str) and _ESCAPED_BYTE.search(v) for v in values.values())
                yield Row(number, values, ERROR_UNREADABLE if bad else None, warnings)
        except csv.Error as exc:
            raise ArchiveError(f"CSV row {number + 1}: {exc}") from exc


class JsonlReader(_TextReader):
    """JSON Lines; the columns are the keys of all objects, in order of first appearance (one pre-pass)."""

    MAX_COLUMNS = 1000

    def __init__(self, path: Path, encoding: str | None):
        super().__init__(path, encoding)
        keys: dict[str, None] = {}
        with open(path, encoding=self.encoding, errors="surrogateescape", newline="") as lines:
            for line in lines:
                try:
                    obj = json.loads(line) if line.strip() else None
                except ValueError:
                    continue
                if isinstance(obj, dict):
                    keys.update(dict.fromkeys(obj))
                    if len(keys) > self.MAX_COLUMNS:
                        raise ArchiveError(f"{path}: more than {self.MAX_COLUMNS} distinct keys; not a table")
        self.columns = list(keys)

    def __iter__(self) -> Iterator[Row]:
        number = 0
        for line in self._text:
            if not line.strip():
                continue
            number += 1
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None
            if not isinstance(obj, dict):
                yield Row(number, {}, ERROR_UNREADABLE if _ESCAPED_BYTE.search(line) else ERROR_INVALID_JSON)
                continue
            bad = any(isinstance(v, str) and _ESCAPED_BYTE.search(v) for v in obj.values())
            yield Row(number, obj, ERROR_UNREADABLE if bad else None)


class XlsxReader(ArchiveReader):
    """The first sheet of an Excel workbook, streamed (openpyxl read-only mode)."""

    def __init__(self, path: Path, sheet: str | None = None):
        from openpyxl import load_workbook

        try:
            self._book = load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises many types for a bad file
            raise ArchiveError(f"{path}: not a readable .xlsx workbook ({exc})") from exc
        if sheet is not None and sheet not in self._book.sheetnames:
            raise ArchiveError(f"{path}: no sheet {sheet!r}; sheets are {self._book.sheetnames}")
        ws = self._book[sheet] if sheet else self._book.worksheets[0]
        self._rows = ws.iter_rows(values_only=True)
        header = next((r for r in self._rows if any(v is not None for v in r)), None)
        if header is None:
            raise ArchiveError(f"{path}: the sheet is empty")
        self.columns = _unique_names(header)
        self.total_rows = max((ws.max_row or 1) - 1, 0)
        self._done = 0

    def __iter__(self) -> Iterator[Row]:
        width = len(self.columns)
        for cells in self._rows:
            if all(v is None for v in cells):
                continue
            self._done += 1
            warnings = []
            if len(cells) > width and any(v is not None for v in cells[width:]):
                warnings.append(WARNING_RAGGED)
                cells = [*cells[:width - 1], "\t".join("" if v is None else str(v) for v in cells[width - 1:])]
            yield Row(self._done, dict(zip(self.columns, cells)), None, warnings)

    def fraction_read(self) -> float | None:
        return min(1.0, self._done / self.total_rows) if self.total_rows else None

    def close(self) -> None:
        self._book.close()


class ParquetReader(ArchiveReader):
    """Parquet, read in record batches; carried columns keep their Arrow types."""

    def __init__(self, path: Path):
        import pyarrow.parquet as pq

        try:
            self._file = pq.ParquetFile(path)
        except Exception as exc:
            raise ArchiveError(f"{path}: not a readable Parquet file ({exc})") from exc
        self.schema = self._file.schema_arrow
        self.columns = list(self.schema.names)
        self.total_rows = self._file.metadata.num_rows
        self._done = 0

    def __iter__(self) -> Iterator[Row]:
        for batch in self._file.iter_batches(batch_size=8192):
            for values in batch.to_pylist():
                self._done += 1
                yield Row(self._done, values)

    def fraction_read(self) -> float | None:
        return min(1.0, self._done / self.total_rows) if self.total_rows else None

    def close(self) -> None:
        self._file.close()


def open_archive(path: str | os.PathLike, encoding: str | None = None, sheet: str | None = None) -> ArchiveReader:
    """A reader for ``path``, chosen by its suffix."""
    path = Path(path)
    kind = READ_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ArchiveError(f"{path}: unsupported input type {path.suffix!r}; expected one of {sorted(READ_FORMATS)}")
    if not path.is_file():
        raise ArchiveError(f"{path}: no such file")
    if kind in ("csv", "tsv"):
        return CsvReader(path, encoding, "\t" if kind == "tsv" else ",")
    if kind == "jsonl":
        return JsonlReader(path, encoding)
    if kind == "xlsx":
        return XlsxReader(path, sheet)
    return ParquetReader(path)


# ----------------------------------------------------------------------------- label columns

def probability_columns() -> list[tuple[str, str, str]]:
    """(column, head, class) for every class probability, generated from the label schema."""
    return [(f"p_{head}_{c}", head, c) for head in labels.REPORTED_HEADS for c in labels.head_classes(head)]


def label_column_names(probs: bool = False) -> list[str]:
    """Columns added to every output row."""
    names = ["is_complaint", "category", "categories", "urgency", "scope", "tier", "response_target", "emotion"]
    if probs:
        names += [column for column, _, _ in probability_columns()]
    return [*names, "warnings", "error"]


def label_arrow_schema(probs: bool = False) -> Any:
    """Arrow types of the label columns, for Parquet output and ``datasets`` features."""
    import pyarrow as pa

    types = {"is_complaint": pa.bool_(), "categories": pa.list_(pa.string()), "warnings": pa.list_(pa.string())}
    return pa.schema([pa.field(name, pa.float64() if name.startswith("p_") else types.get(name, pa.string()))
                      for name in label_column_names(probs)])


def label_columns(result: ComplaintResult, probs: bool = False) -> dict[str, Any]:
    """One result as flat output columns (the same for files and ``datasets``)."""
    row: dict[str, Any] = {
        "is_complaint": result.is_complaint, "category": result.category, "categories": list(result.categories),
        "urgency": result.urgency, "scope": result.scope, "tier": result.tier,
        "response_target": result.response_target, "emotion": result.emotion,
    }
    if probs:
        for column, head, cls in probability_columns():
            value = result.probabilities.get(head, {}).get(cls)
            row[column] = None if value is None else round(float(value), 6)
    row["warnings"] = list(result.warnings)
    row["error"] = result.error
    return row


# ----------------------------------------------------------------------------- writers

def _plain(value: Any) -> Any:
    """A JSON-friendly value: dates as ISO text, decimals as floats, undecodable bytes escaped."""
    if isinstance(value, str):
        return escape_undecodable(value)
    if isinstance(value, (datetime, date, dt_time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "|".join(str(_csv_cell(v)) for v in value)
    value = _plain(value)
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False) if isinstance(
        value, (dict, list)) else str(value)


class PartWriter:
    """Writes chunks of output rows as part files and joins them into the final file."""

    def __init__(self, kind: str, columns: list[str], input_schema: Any = None, probs: bool = False):
        self.kind, self.columns = kind, columns
        self.schema = self._arrow_schema(input_schema, probs) if kind == "parquet" else None

    def _arrow_schema(self, input_schema: Any, probs: bool) -> Any:
        import pyarrow as pa

        label_schema = label_arrow_schema(probs)
        fields = []
        for name in self.columns:
            if name in label_schema.names:
                fields.append(label_schema.field(name))
            elif name == ROW_NUMBER_COLUMN and (input_schema is None or name not in input_schema.names):
                fields.append(pa.field(name, pa.int64()))
            elif input_schema is not None and name in input_schema.names:
                fields.append(input_schema.field(name))
            else:
                fields.append(pa.field(name, pa.string()))
        return pa.schema(fields)

    def write_part(self, rows: list[dict[str, Any]], path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        if self.kind == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            data = {name: [self._arrow_value(r.get(name), self.schema.field(name).type) for r in rows]
                    for name in self.columns}
            pq.write_table(pa.Table.from_pydict(data, schema=self.schema), tmp)
        else:
            with open(tmp, "w", encoding="utf-8", newline="") as f:
                if self.kind == "csv":
                    writer = csv.writer(f)
                    writer.writerows([[_csv_cell(r.get(c)) for c in self.columns] for r in rows])
                else:
                    for r in rows:
                        f.write(json.dumps({c: _plain(r.get(c)) for c in self.columns}, ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)

    @staticmethod
    def _arrow_value(value: Any, arrow_type: Any) -> Any:
        import pyarrow as pa

        if value is None:
            return None
        if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
            return value if isinstance(value, str) and not _ESCAPED_BYTE.search(value) else _csv_cell(value)
        return value

    def join(self, parts: Sequence[Path], output: Path) -> None:
        """Concatenate the parts into ``output`` atomically (a temporary file, then a rename)."""
        tmp = output.with_name(f".{output.name}.tmp")
        if self.kind == "parquet":
            import pyarrow.parquet as pq

            with pq.ParquetWriter(tmp, self.schema) as writer:
                for part in parts:
                    writer.write_table(pq.read_table(part, schema=self.schema))
        else:
            with open(tmp, "wb") as out:
                if self.kind == "csv":
                    buffer = io.StringIO()
                    csv.writer(buffer).writerow(self.columns)
                    out.write(buffer.getvalue().encode("utf-8"))
                for part in parts:
                    with open(part, "rb") as f:
                        shutil.copyfileobj(f, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
        os.replace(tmp, output)


# ----------------------------------------------------------------------------- progress

class Progress:
    """A tqdm bar on a terminal; otherwise one JSON line on stderr every ``every`` seconds."""

    def __init__(self, enabled: bool = True, every: float = 10.0, stream: IO[str] | None = None):
        self.stream = stream or sys.stderr
        self.enabled, self.every = enabled, every
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.started = self.last = time.monotonic()
        self.bar = None
        if self.tty:
            from tqdm.auto import tqdm

            self.bar = tqdm(unit="rows", file=self.stream, dynamic_ncols=True)

    def update(self, rows_done: int, rows_labelled_now: int, fraction: float | None) -> None:
        """``rows_done`` counts rows passed so far; the rate counts only rows labelled in this run."""
        if not self.enabled:
            return
        now = time.monotonic()
        estimate = int(rows_done / fraction) if fraction else None
        if self.bar is not None:
            if estimate:
                self.bar.total = max(estimate, rows_done)
            self.bar.update(rows_done - self.bar.n)
            return
        if now - self.last >= self.every:
            self.last = now
            rate = rows_labelled_now / max(now - self.started, 1e-9)
            eta = (estimate - rows_done) / rate if estimate and rate else None
            print(json.dumps({"event": "progress", "rows": rows_done, "rows_estimated": estimate,
                              "rows_per_s": round(rate, 1), "eta_s": None if eta is None else round(eta)}),
                  file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ----------------------------------------------------------------------------- the run

@dataclass
class LabelSummary:
    """What a run did: every row read is either labelled or has an error."""

    rows_read: int = 0
    labelled: int = 0
    errors: int = 0
    errors_by_type: Counter = field(default_factory=Counter)
    by_tier: Counter = field(default_factory=Counter)
    by_category: Counter = field(default_factory=Counter)
    by_emotion: Counter = field(default_factory=Counter)
    not_complaints: int = 0
    resumed_rows: int = 0
    seconds: float = 0.0
    encoding: str | None = None
    output: str | None = None

    def add(self, other: dict[str, Any]) -> None:
        for key in ("rows_read", "labelled", "errors", "not_complaints"):
            setattr(self, key, getattr(self, key) + other[key])
        for key in ("errors_by_type", "by_tier", "by_category", "by_emotion"):
            getattr(self, key).update(other[key])

    def count(self, row: dict[str, Any]) -> None:
        self.rows_read += 1
        if row["error"]:
            self.errors += 1
            self.errors_by_type[row["error"].split(":")[0]] += 1
            return
        self.labelled += 1
        self.by_tier[row["tier"]] += 1
        self.by_emotion[row["emotion"]] += 1
        if row["is_complaint"]:
            self.by_category[row["category"]] += 1
        else:
            self.not_complaints += 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows_read": self.rows_read, "labelled": self.labelled, "errors": self.errors,
            "errors_by_type": dict(self.errors_by_type), "by_tier": dict(sorted(self.by_tier.items())),
            "by_category": dict(self.by_category), "not_complaints": self.not_complaints,
            "by_emotion": dict(self.by_emotion), "resumed_rows": self.resumed_rows,
            "seconds": round(self.seconds, 2),
            "rows_per_s": round((self.rows_read - self.resumed_rows) / self.seconds, 1) if self.seconds else None,
            "encoding": self.encoding, "output": self.output,
        }


def _fingerprint(path: Path, options: dict[str, Any]) -> dict[str, Any]:
    stat = path.stat()
    return {"input": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "options": options}


def _model_identity(classifier: ComplaintClassifier) -> dict[str, Any]:
    """Enough to tell whether a resumed run would label with the same model as the interrupted one."""
    if classifier.model_path is None:
        return {"model": "in-memory", "backend": classifier.backend_name}
    weights = (classifier.model_path / WEIGHTS_NAME).stat()
    return {"model": str(classifier.model_path.resolve()), "backend": classifier.backend_name,
            "weights_size": weights.st_size, "weights_mtime_ns": weights.st_mtime_ns}


def parts_dir_for(output: Path) -> Path:
    """Where a run keeps its finished chunks until the output is complete."""
    return output.with_name(f".{output.name}.parts")


def label_file(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    classifier: ComplaintClassifier | None = None,
    *,
    text_column: str = "text",
    id_column: str | None = None,
    encoding: str | None = None,
    sheet: str | None = None,
    probs: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    resume: bool = False,
    progress: bool = True,
) -> LabelSummary:
    """Label every row of an archive into ``output_path`` (CSV, JSONL or Parquet by suffix).

    The output has the input columns (plus ``row_number`` when no ``id_column``
    is given) and the label columns, one row per input row in input order.
    With ``resume=True`` a run killed part-way continues from its last finished
    chunk and produces the same file an uninterrupted run would.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    out_kind = WRITE_FORMATS.get(output_path.suffix.lower())
    if out_kind is None:
        raise ArchiveError(f"{output_path}: unsupported output type {output_path.suffix!r}; "
                           f"expected one of {sorted(WRITE_FORMATS)}")
    if input_path.resolve() == output_path.resolve():
        raise ArchiveError("the output must not overwrite the input")
    if not 1 <= chunk_size <= 1_000_000:
        raise ArchiveError(f"chunk_size must be from 1 to 1000000, got {chunk_size}")
    started = time.monotonic()
    reader = open_archive(input_path, encoding, sheet)
    try:
        if text_column not in reader.columns:
            raise ArchiveError(f"{input_path}: no text column {text_column!r}; the columns are {reader.columns}")
        if id_column is not None and id_column not in reader.columns:
            raise ArchiveError(f"{input_path}: no id column {id_column!r}; the columns are {reader.columns}")
        label_names = label_column_names(probs)
        clash = [c for c in label_names if c in reader.columns]
        if clash:
            raise ArchiveError(f"{input_path}: input columns {clash} would be overwritten by label columns; "
                               "rename them first")
        leading = [] if id_column else [ROW_NUMBER_COLUMN]
        columns = [*leading, *reader.columns, *label_names]
        writer = PartWriter(out_kind, columns, getattr(reader, "schema", None), probs)

        classifier = classifier or ComplaintClassifier()
        parts_dir = parts_dir_for(output_path)
        options = {"text_column": text_column, "id_column": id_column, "encoding": reader.encoding, "sheet": sheet,
                   "probs": probs, "chunk_size": chunk_size, "output_kind": out_kind,
                   "model": _model_identity(classifier)}
        manifest = _fingerprint(input_path, options)
        summary = LabelSummary(encoding=reader.encoding, output=str(output_path))
        done_parts = _prepare_parts(parts_dir, manifest, resume)
        for meta in sorted(parts_dir.glob("*.json")):
            if meta.stem in done_parts:
                summary.add(json.loads(meta.read_text(encoding="utf-8")))
        summary.resumed_rows = summary.rows_read

        bar = Progress(progress)
        rows_seen, names = 0, []
        for index, chunk in enumerate(_chunks(reader, chunk_size)):
            name = f"{index:08d}"
            names.append(name)
            rows_seen += len(chunk)
            if name not in done_parts:  # finished chunks of a resumed run are read past, not labelled
                rows = _label_chunk(chunk, classifier, text_column, probs, leading)
                part_summary = LabelSummary()
                for r in rows:
                    part_summary.count(r)
                # The summary goes down first; a part counts as done only once its data file exists.
                (parts_dir / f"{name}.json").write_text(json.dumps(part_summary.to_dict()), encoding="utf-8")
                writer.write_part(rows, parts_dir / f"{name}.part")
                summary.add(part_summary.to_dict())
            bar.update(rows_seen, summary.rows_read - summary.resumed_rows, reader.fraction_read())
        bar.close()
        parts = [parts_dir / f"{name}.part" for name in names]
        if rows_seen != summary.rows_read:
            raise ArchiveError(f"{parts_dir}: the parts hold {summary.rows_read} rows but the input has {rows_seen}; "
                               "the input changed since the interrupted run. Run again without --resume.")
        writer.join(parts, output_path)
        shutil.rmtree(parts_dir, ignore_errors=True)
    finally:
        reader.close()
    summary.seconds = time.monotonic() - started
    return summary


def _chunks(rows: Iterator[Row] | ArchiveReader, size: int) -> Iterator[list[Row]]:
    rows = iter(rows)
    while chunk := list(itertools.islice(rows, size)):
        yield chunk


def _prepare_parts(parts_dir: Path, manifest: dict[str, Any], resume: bool) -> set[str]:
    """Start a fresh parts folder, or on resume keep the finished parts of the same input and options."""
    manifest_path = parts_dir / "manifest.json"
    if resume and manifest_path.is_file():
        previous = json.loads(manifest_path.read_text(encoding="utf-8"))
        if previous != manifest:
            raise ArchiveError(f"{parts_dir}: the interrupted run had another input or other options "
                               f"({previous['options']}); run again without --resume to start over")
        done = {p.stem for p in parts_dir.glob("*.part")}
        for stray in parts_dir.glob("*.tmp"):
            stray.unlink()
        return done
    shutil.rmtree(parts_dir, ignore_errors=True)
    parts_dir.mkdir(parents=True)
    tmp = manifest_path.with_name("manifest.json.tmp")
    tmp.write_text(json.dumps(manifest), encoding="utf-8")
    os.replace(tmp, manifest_path)
    return set()


def _label_chunk(chunk: Sequence[Row], classifier: ComplaintClassifier, text_column: str, probs: bool,
                 leading: Sequence[str]) -> list[dict[str, Any]]:
    """Label the readable rows of a chunk in one ``predict`` call; unreadable rows get their error."""
    readable = [r for r in chunk if r.error is None and text_column in r.values]
    results = iter(classifier.predict([r.values[text_column] for r in readable]))
    rows = []
    for row in chunk:
        if row.error is not None:
            result = ComplaintResult(error=row.error)
        elif text_column not in row.values:
            result = ComplaintResult(error=ERROR_MISSING_TEXT)
        else:
            result = next(results)
        out = {ROW_NUMBER_COLUMN: row.number} if leading else {}
        out.update(row.values)
        out.update(label_columns(result, probs))
        out["warnings"] = [*row.warnings, *out["warnings"]]
        rows.append(out)
    return rows


def label_dataset(dataset: Any, classifier: ComplaintClassifier | None = None, text_column: str = "text",
                  batch_size: int = 256, probs: bool = False) -> Any:
    """Add the label columns to a ``datasets.Dataset`` with ``map(batched=True)``."""
    if text_column not in dataset.column_names:
        raise ValueError(f"no text column {text_column!r}; the columns are {dataset.column_names}")
    classifier = classifier or ComplaintClassifier()
    names = label_column_names(probs)
    clash = [c for c in names if c in dataset.column_names]
    if clash:
        raise ValueError(f"columns {clash} would be overwritten by label columns; rename them first")

    def label_batch(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        rows = [label_columns(r, probs) for r in classifier.predict(batch[text_column])]
        return {name: [row[name] for row in rows] for name in names}

    from datasets import Features

    features = Features({**dataset.features, **Features.from_arrow_schema(label_arrow_schema(probs))})
    return dataset.map(label_batch, batched=True, batch_size=batch_size, features=features, desc="labelling")
