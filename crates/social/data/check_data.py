#!/usr/bin/env python3
"""Sanity checks and stats for the seed-data TSV files. Usage: python3 check_data.py"""
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
FILES = {
    "first_names_male.tsv": ["name", "weight"],
    "first_names_female.tsv": ["name", "weight"],
    "surnames.tsv": ["male", "female", "weight"],
    "cities.tsv": ["city", "weight"],
    "interests.tsv": ["phrase"],
    "post_phrases.tsv": ["phrase"],
}
CYR_NAME = re.compile(r"^[А-ЯЁ][а-яё]+(?:[- ][А-ЯЁа-яё][а-яё]+)*$")
# spellings that must use ё (the e-spelling must not appear)
YO_REQUIRED = {"Пётр", "Семён", "Артём", "Алёна", "Фёдор", "Фёдоров", "Соловьёв", "Королёв", "Орёл", "Щёлково"}

errors = []


def err(msg):
    errors.append(msg)


def load(name, cols):
    path = HERE / name
    text = path.read_bytes().decode("utf-8")  # raises on invalid UTF-8
    if "\r" in text:
        err(f"{name}: CR characters found")
    lines = text.split("\n")
    if lines[-1] != "":
        err(f"{name}: missing final newline")
    lines = lines[:-1]
    i = 0
    while i < len(lines) and lines[i].startswith("#"):
        i += 1
    if i == 0 or "compiled by the agora team" not in lines[0]:
        err(f"{name}: missing source comment at top")
    if lines[i].split("\t") != cols:
        err(f"{name}: bad header {lines[i]!r}")
    rows = []
    for n, line in enumerate(lines[i + 1:], start=i + 2):
        if line.startswith("#"):
            err(f"{name}:{n}: comment below header")
            continue
        parts = line.split("\t")
        if len(parts) != len(cols):
            err(f"{name}:{n}: {len(parts)} columns, expected {len(cols)}")
            continue
        if any(p != p.strip() or not p for p in parts):
            err(f"{name}:{n}: empty field or stray whitespace")
        if "weight" in cols:
            w = parts[-1]
            if not w.isdigit() or int(w) <= 0:
                err(f"{name}:{n}: weight {w!r} is not a positive integer")
        rows.append(parts)
    return rows


def uniq(name, values):
    seen = set()
    for v in values:
        if v in seen:
            err(f"{name}: duplicate {v!r}")
        seen.add(v)


def female_of(m):
    if m.endswith(("их", "ых", "ко", "ук", "юк")):
        return m
    if m.endswith(("ский", "цкий", "ой", "ый")):
        return m[:-2] + "ая"
    if m.endswith(("ов", "ев", "ёв", "ин", "ын")):
        return m + "а"
    return None


def shares(weights):
    total = sum(weights)
    top = sorted(weights, reverse=True)
    return 100 * top[0] / total, 100 * sum(top[:10]) / total


data = {name: load(name, cols) for name, cols in FILES.items()}

all_words = set()
for name, rows in data.items():
    key_cols = [0, 1] if name == "surnames.tsv" else [0]
    for c in key_cols:
        uniq(f"{name}[{FILES[name][c]}]", [r[c] for r in rows])
    for r in rows:
        all_words.update(re.findall(r"[А-Яа-яЁё]+", " ".join(r[:2] if name == "surnames.tsv" else r[:1])))
    if name in ("first_names_male.tsv", "first_names_female.tsv", "surnames.tsv", "cities.tsv"):
        for r in rows:
            for v in (r[:2] if name == "surnames.tsv" else r[:1]):
                if not CYR_NAME.match(v):
                    err(f"{name}: {v!r} is not a capitalised Cyrillic name")
    if name in ("interests.tsv", "post_phrases.tsv"):
        for r in rows:
            if len(r[0]) > 120:
                err(f"{name}: phrase too long: {r[0]!r}")

for w in YO_REQUIRED:
    if w.replace("ё", "е") in all_words:
        err(f"spelled without ё: {w.replace('ё', 'е')!r} (should be {w!r})")

for m, f, _ in data["surnames.tsv"]:
    if female_of(m) != f:
        err(f"surnames.tsv: {m} / {f}: female form does not follow the rule")

male = {r[0] for r in data["first_names_male.tsv"]}
female = {r[0] for r in data["first_names_female.tsv"]}
for both in sorted(male & female):
    err(f"name in both male and female lists: {both}")

print(f"{'file':26} {'rows':>5} {'top-1 %':>8} {'top-10 %':>9}  top-1")
for name, rows in data.items():
    if "weight" in FILES[name]:
        ws = [int(r[-1]) for r in rows]
        t1, t10 = shares(ws)
        best = max(rows, key=lambda r: int(r[-1]))[0]
        print(f"{name:26} {len(rows):5} {t1:8.2f} {t10:9.2f}  {best}")
    else:
        print(f"{name:26} {len(rows):5} {'-':>8} {'-':>9}")
prefixes = {r[0].lower()[:3] for r in data["surnames.tsv"]}
print(f"distinct lowercase 3-letter prefixes among surnames (male form): {len(prefixes)}")
endings = {}
for r in data["surnames.tsv"]:
    f = female_of(r[0])
    kind = "invariant" if f == r[0] else r[0][-2:]
    endings[kind] = endings.get(kind, 0) + 1
print("surname endings:", ", ".join(f"{k}={v}" for k, v in sorted(endings.items(), key=lambda kv: -kv[1])))

if errors:
    print(f"\n{len(errors)} problem(s):", file=sys.stderr)
    for e in errors:
        print("  " + e, file=sys.stderr)
    sys.exit(1)
print("OK: all checks passed")
