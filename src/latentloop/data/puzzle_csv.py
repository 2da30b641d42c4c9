"""The `source,question,answer,rating` CSV layout shared by the official Sudoku-Extreme and Maze-Hard files."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from latentloop.errors import DataError

CSV_COLUMNS = ("source", "question", "answer", "rating")


@dataclass
class CsvRows:
    """Raw cell texts (not stripped: a maze's spaces are open cells) and the file line of every row."""

    sources: list[str] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    ratings: list[int] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)


def read_rows(path: str | Path, kind: str) -> CsvRows:
    """Read every row; a missing file, a missing column, a short row, a non-numeric rating or an empty file raises
    DataError naming the file and line. `kind` names the rows in that last message ("puzzle", "maze")."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    rows = CsvRows()
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = [name.strip() for name in next(reader, [])]
            missing = [name for name in CSV_COLUMNS if name not in header]
            if missing:
                raise DataError(f"{path}:1: header {','.join(header)!r} lacks column(s) {', '.join(missing)}")
            columns = [header.index(name) for name in CSV_COLUMNS]
            for row in reader:
                if not row:
                    continue
                if len(row) != len(header):
                    raise DataError(f"{path}:{reader.line_num}: expected {len(header)} columns, got {len(row)}")
                source, question, answer, rating = (row[i] for i in columns)
                try:
                    rows.ratings.append(int(float(rating)))
                except ValueError:
                    raise DataError(f"{path}:{reader.line_num}: rating {rating!r} is not a number") from None
                rows.sources.append(source)
                rows.questions.append(question)
                rows.answers.append(answer)
                rows.lines.append(reader.line_num)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: unreadable CSV ({exc})") from None
    if not rows.questions:
        raise DataError(f"{path}: no {kind} rows")
    return rows
