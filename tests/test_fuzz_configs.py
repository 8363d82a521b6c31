"""Config-mutation fuzz: random edits of the JSON files of a model repository -- the encoder's ``config.json``, the
task adapters' ``adapter_config.json`` and the root and task ``preprocessor_config.json`` (fields set to hostile
values, scaled, deleted or added; the file replaced by another JSON type, truncated or garbage; see
support/mutations.py) -- each loaded with ``ECGTaskClassifier.from_pretrained`` and predicted on CPSC2018 A0001 in a
fresh child capped at 6 GB of address space and 20 s. Every case must end in a prediction or a one-line refusal of
one of the package's own exception types.

``TAC_ECG_FUZZ_CASES`` sets the number of cases (default 200, about 25 s); ``TAC_ECG_FUZZ_SEED`` the seed.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter

import numpy as np
from support.mutations import mutate_json
from test_fuzz_headers import check_outcome

CASES = int(os.environ.get("TAC_ECG_FUZZ_CASES", "200"))
SEED = int(os.environ.get("TAC_ECG_FUZZ_SEED", "0"))
FILES = {
    "config.json": None,
    "cpsc2018/adapter_config.json": "cpsc2018",
    "cinc2017/adapter_config.json": "cinc2017",
    "preprocessor_config.json": None,
    "cinc2017/preprocessor_config.json": "cinc2017",
}


def test_config_mutation_fuzz(capped_runner, tiny_repo, cpsc2018_dir, tmp_path):
    record = str(cpsc2018_dir / "A0001.hea")
    capped_runner.warm_up(tiny_repo, record, "cpsc2018")
    rng = np.random.default_rng(SEED)
    outcomes, failures = Counter(), []
    for i in range(CASES):
        name = list(FILES)[int(rng.integers(len(FILES)))]
        task = FILES[name] or str(rng.choice(["cpsc2018", "cinc2017"]))
        case = tmp_path / f"case{i}"
        shutil.copytree(tiny_repo, case)
        edits, text = mutate_json((case / name).read_text(), rng)
        (case / name).write_text(text, encoding="utf-8", errors="surrogateescape")
        result = capped_runner.call("load_and_predict", model=str(case), record=record, task=task)
        problem = check_outcome(result)
        if problem:
            failures.append(f"case {i} {name} ({edits}): {problem}")
        else:
            outcomes[(name, result.value.get("type", "predicted"))] += 1
        shutil.rmtree(case)
    summary = Counter()
    for (name, kind), count in outcomes.items():
        summary[kind] += count
    print(f"config fuzz: {CASES} cases (seed {SEED}): {dict(summary)}")
    assert not failures, f"{len(failures)} of {CASES} cases failed:\n" + "\n".join(failures[:10])
    for name in FILES:  # every file was edited, and its edits were both refused and accepted
        kinds = {kind for (n, kind) in outcomes if n == name}
        assert "predicted" in kinds and len(kinds) > 1, (name, kinds)
