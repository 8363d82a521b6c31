"""Seeded mutations of a real WFDB header and of a model's JSON files, for the fuzz tests (test_fuzz_*.py).

Each generator yields ``(description, mutated)`` pairs from a ``numpy.random.Generator``: the description says what
was changed, so a failing case can be reproduced from the test's message alone.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

import numpy as np

# ---------------------------------------------------------------------------------------------------------------------
# WFDB headers

SAMPLING_RATES = [
    "0.01", "0.0001", "1e-9", "0", "-500", "nan", "inf", "-inf", "1e9", "20001", "49.9", "50", "125.5", "250", "257",
    "1000", "10000", "abc", "500/250", "1e400", "", "500.000000000001",
]
SAMPLE_COUNTS = ["0", "1", "10", "499", "500", "2500", "3500", "7499", "7500", "7501", "1000000", "1000000000000",
                 "-5", "x", "", "7.5e3"]
SIGNAL_COUNTS = ["0", "1", "11", "13", "100", "-1", "x", "1000000"]
GAINS = ["0", "-1000", "-1", "1e-12", "1e12", "nan", "inf", "x", "1000(5)/mV", "1000(-99999)/mV", "1000/uV",
         "1000/V", "1000/degC", "1000", "", "1000/", "0.0001/mV", "200"]
FORMATS = ["16", "212", "8", "24", "32", "80", "310", "311", "61", "160", "508", "16x", "999", "0", "", "16+99999999",
           "16+-5", "16x3", "16:2", "16x1000000", "16+1"]
LEAD_NAMES = ["I", "II", "", "ECG", "lead II", "V7", "αβγ", "X" * 300, "aVL", "MLII", "V1 V2", "#", "\t"]
NUMBERS = ["0", "1", "-1", "16", "17", "99999999999999999999", "-32768", "32767", "x", "", "1.5", "nan"]
FILE_NAMES = ["nope.mat", "../A0001.mat", "/etc/passwd", "A0001.dat", "A0001.hea", "", "A 0001.mat"]
GARBAGE_BYTES = [b"\x00", b"\n", b"\r\n", b"\xff\xfe", b"#", b" ", b"+", b"/", b"(", b"\xe2\x80\x8b", b"12 500"]


def _line_tokens(text: str) -> list[list[str]]:
    return [line.split(" ") for line in text.splitlines()]


def _join(lines: list[list[str]]) -> str:
    return "\n".join(" ".join(tokens) for tokens in lines) + "\n"


def _signal_lines(lines: list[list[str]]) -> list[int]:
    return [i for i, tokens in enumerate(lines[1:], 1) if tokens and tokens[0] and not tokens[0].startswith("#")]


def _set_signal_field(lines, rng, index: int, values: list[str], what: str) -> str:
    rows = _signal_lines(lines)
    value = str(rng.choice(values))
    if not rows:
        return f"{what}={value!r}: no signal line left"
    chosen = rows if rng.random() < 0.5 else [int(rng.choice(rows))]
    for row in chosen:
        tokens = lines[row]
        if index < len(tokens):
            tokens[index] = value
    return f"{what}={value!r} on {'all signals' if len(chosen) > 1 else f'line {chosen[0]}'}"


def mutate_header(text: str, rng: np.random.Generator) -> tuple[str, bytes]:
    """One to three random edits of a WFDB header: sampling rate, counts, gains, formats, lead names, the other
    numeric fields, file names, dropped/duplicated lines, truncation or byte garbage."""
    lines = _line_tokens(text)
    done = []
    garbage: list[tuple[int, bytes]] = []
    for _ in range(int(rng.integers(1, 4))):
        kind = int(rng.integers(0, 12))
        if kind == 0:
            value = str(rng.choice(SAMPLING_RATES)) if rng.random() < 0.7 else f"{10 ** rng.uniform(-6, 7):.6g}"
            lines[0][2] = value
            done.append(f"sampling rate={value!r}")
        elif kind == 1:
            lines[0][3] = str(rng.choice(SAMPLE_COUNTS))
            done.append(f"samples={lines[0][3]!r}")
        elif kind == 2:
            lines[0][1] = str(rng.choice(SIGNAL_COUNTS))
            done.append(f"signals={lines[0][1]!r}")
        elif kind == 3:
            done.append(_set_signal_field(lines, rng, 2, GAINS, "gain"))
        elif kind == 4:
            done.append(_set_signal_field(lines, rng, 1, FORMATS, "format"))
        elif kind == 5:
            done.append(_set_signal_field(lines, rng, 8, LEAD_NAMES, "lead name"))
        elif kind == 6:
            field = int(rng.integers(3, 8))
            done.append(_set_signal_field(lines, rng, field, NUMBERS, f"field {field}"))
        elif kind == 7:
            done.append(_set_signal_field(lines, rng, 0, FILE_NAMES, "file name"))
        elif kind == 8 and len(lines) > 1:
            row = int(rng.integers(0, len(lines)))
            if rng.random() < 0.5:
                del lines[row]
                done.append(f"deleted line {row}")
            else:
                lines.insert(row, list(lines[row]))
                done.append(f"duplicated line {row}")
        elif kind == 9:
            lines[0] = lines[0][:4] if rng.random() < 0.5 else lines[0] + ["12:00:00", "xx-yy-zz"]
            done.append(f"record line {' '.join(lines[0])!r}")
        elif kind == 10:
            garbage.append((int(rng.integers(0, 10_000)), GARBAGE_BYTES[int(rng.integers(len(GARBAGE_BYTES)))]))
        else:
            chunk = rng.integers(0, 256, size=int(rng.integers(1, 24))).astype(np.uint8).tobytes()
            garbage.append((int(rng.integers(0, 10_000)), chunk))
    data = _join(lines).encode("utf-8")
    for offset, chunk in garbage:
        at = offset % (len(data) + 1)
        if rng.random() < 0.5:
            data = data[:at] + chunk + data[at:]
            done.append(f"inserted {chunk!r} at byte {at}")
        else:
            data = data[:at] + chunk + data[at + len(chunk):]
            done.append(f"overwrote bytes {at}-{at + len(chunk)} with {chunk!r}")
    if rng.random() < 0.05:
        cut = int(rng.integers(0, len(data) + 1))
        data = data[:cut]
        done.append(f"truncated at byte {cut}")
    return "; ".join(done), data


def header_cases(text: str, count: int, seed: int = 0) -> Iterator[tuple[str, bytes]]:
    rng = np.random.default_rng(seed)
    for _ in range(count):
        yield mutate_header(text, rng)


# ---------------------------------------------------------------------------------------------------------------------
# JSON configs

HOSTILE_NUMBERS = [0, -1, 1, 2, 3, 7, 64, 1000, 65536, 100_000, 200_000, 10**9, 10**18, 2**63, -(2**63), 1e9, 0.5,
                   -0.5, 1e-9, 1e308, math.nan, math.inf, -math.inf]
HOSTILE_STRINGS = ["", "x", "(", "[a-", ".*", "(a+)+$", "none", "null", "1e9", "float16", "bfloat16", "I", "head",
                   "encoder.stem.0.conv", "sha256:0", "\u0000", "é" * 50]


def random_json(rng: np.random.Generator, depth: int = 0):
    """A random JSON value: numbers from the edge list, strings, booleans, null, lists and small objects."""
    kind = int(rng.integers(0, 8 if depth < 2 else 5))
    if kind == 0:
        return HOSTILE_NUMBERS[int(rng.integers(len(HOSTILE_NUMBERS)))]
    if kind == 1:
        return HOSTILE_STRINGS[int(rng.integers(len(HOSTILE_STRINGS)))]
    if kind == 2:
        return bool(rng.integers(0, 2))
    if kind == 3:
        return None
    if kind == 4:
        return int(rng.integers(-3, 5))
    if kind in (5, 6):
        n = int(rng.integers(0, 6)) if rng.random() < 0.9 else int(rng.integers(50, 2000))
        return [random_json(rng, depth + 1) for _ in range(min(n, 6))] * (1 if n <= 6 else n // 6)
    keys = ["a", "layers", "r", "x", "0"]
    return {str(rng.choice(keys)): random_json(rng, depth + 1) for _ in range(int(rng.integers(0, 3)))}


def mutate_json(text: str, rng: np.random.Generator, extra_keys: tuple[str, ...] = ()) -> tuple[str, str]:
    """One to three edits of a JSON object: a field set to a random or scaled value, deleted, or added (an unknown or
    a known key); or the whole file replaced by another JSON type, truncated, or garbage."""
    roll = rng.random()
    if roll < 0.08:
        value = random_json(rng)
        if isinstance(value, dict):
            value = [value]
        return f"whole file = {json.dumps(value)[:60]}", json.dumps(value)
    if roll < 0.12:
        cut = int(rng.integers(0, len(text)))
        return f"truncated at character {cut}", text[:cut]
    if roll < 0.14:
        return "binary garbage", rng.integers(0, 256, size=64).astype(np.uint8).tobytes().decode("latin-1")
    data = json.loads(text)
    keys = sorted(data)
    done = []
    for _ in range(int(rng.integers(1, 4))):
        kind = int(rng.integers(0, 10))
        key = str(rng.choice(keys + list(extra_keys)))
        if kind <= 4:
            data[key] = random_json(rng)
            done.append(f"{key}={json.dumps(data[key])[:60]}")
        elif kind <= 6 and isinstance(data.get(key), (int, float, list)) and not isinstance(data.get(key), bool):
            factor = [0, -1, 2, 1000, 10**6][int(rng.integers(0, 5))]
            old = data[key]
            if isinstance(old, list):
                data[key] = [v * factor if isinstance(v, (int, float)) else v for v in old]
            else:
                data[key] = old * factor
            done.append(f"{key} x {factor}")
        elif kind == 7:
            data.pop(key, None)
            done.append(f"deleted {key}")
        else:
            name = str(rng.choice(["layrs", "unknown_field", "_private", "transformers_version", "torch_dtype"]))
            data[name] = random_json(rng)
            done.append(f"added {name}={json.dumps(data[name])[:40]}")
    return "; ".join(done), json.dumps(data)
