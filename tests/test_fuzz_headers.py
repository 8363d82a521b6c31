"""Header-mutation fuzz: random edits of the real WFDB header of CPSC2018 A0001 (sampling rate, sample and signal
counts, gains, formats, lead names, the other numeric fields, file names, lines, byte garbage; see
support/mutations.py), each read and predicted with the bundled xresnet1d101-cetp model in a fresh child capped at
6 GB of address space and 20 s. Every case must end in a prediction with finite probabilities or a one-line refusal
of one of the package's own exception types; a MemoryError, a hang or any other exception fails the test with the
edits that caused it.

``TAC_ECG_FUZZ_CASES`` sets the number of cases (default 200, about 20 s); ``TAC_ECG_FUZZ_SEED`` the seed.
"""

from __future__ import annotations

import math
import os
import shutil
from collections import Counter

from support.mutations import header_cases

CASES = int(os.environ.get("TAC_ECG_FUZZ_CASES", "200"))
SEED = int(os.environ.get("TAC_ECG_FUZZ_SEED", "0"))
CASE_TIME_LIMIT = 20.0


def check_outcome(result, limit: float = CASE_TIME_LIMIT) -> str | None:
    """Why a capped case failed, or None: it must end by itself, under the time limit, in a prediction with
    probabilities in [0, 1] or in a one-line refusal of the package's own type (support.fuzz_cases)."""
    if result.timed_out or result.signal is not None:
        return f"killed (timed out: {result.timed_out}, signal {result.signal})"
    if result.exit_code != 0:
        return f"exit {result.exit_code}: {result.stderr.strip().splitlines()[-1] if result.stderr.strip() else ''}"
    if result.seconds > limit:
        return f"took {result.seconds:.1f} s"
    value = result.value
    if value["outcome"] == "refused":
        if "\n" in value["message"] or not value["message"].strip():
            return f"{value['type']} message is not one line: {value['message']!r}"
        return None
    probabilities = value["probabilities"]
    if not probabilities or not all(p is not None and 0.0 <= p <= 1.0 and math.isfinite(p) for p in probabilities):
        return f"probabilities {probabilities}"
    return None


def test_header_mutation_fuzz(capped_runner, bundled_xresnet, cpsc2018_dir, tmp_path):
    folder = tmp_path / "record"
    folder.mkdir()
    shutil.copyfile(cpsc2018_dir / "A0001.mat", folder / "A0001.mat")
    header = (cpsc2018_dir / "A0001.hea").read_text()
    model = str(bundled_xresnet)
    capped_runner.preload(model, ["cpsc2018"])
    outcomes, failures, peak_mb, slowest = Counter(), [], 0.0, 0.0
    for i, (edits, data) in enumerate(header_cases(header, CASES, seed=SEED)):
        (folder / "A0001.hea").write_bytes(data)
        result = capped_runner.call("predict_file", path=str(folder / "A0001.hea"), task="cpsc2018", model=model)
        peak_mb, slowest = max(peak_mb, result.max_rss_mb), max(slowest, result.seconds)
        problem = check_outcome(result)
        if problem:
            failures.append(f"case {i} ({edits}): {problem}")
        else:
            outcomes[result.value.get("type", "predicted")] += 1
    print(f"header fuzz: {CASES} cases (seed {SEED}): {dict(outcomes)}; peak RSS {peak_mb:.0f} MB, "
          f"slowest {slowest:.2f} s")
    assert not failures, f"{len(failures)} of {CASES} cases failed:\n" + "\n".join(failures[:10])
    assert outcomes["predicted"] and sum(outcomes.values()) - outcomes["predicted"]  # both kinds of outcome occur
