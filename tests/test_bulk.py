"""Bulk prediction: ``tac-ecg predict DIR|GLOB|FILE... --out results.csv|.jsonl|.parquet`` over copies of real records
and corrupt files -- one row per record and task, errors as rows, resume without duplicates, several tasks in one
pass, the same probabilities as ``ECGTaskClassifier.predict``, flat memory, DataLoader workers, and ``accelerate
launch`` splitting the files between processes and merging their rows."""

from __future__ import annotations

import json
import os
import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support.hf_repos import save_task_repo, strict_json
from support.launch import launch_two_processes
from support.local_hub import local_hub_env

from tac_ecg_hf.bulk import ResultWriter, _merge_ranks, bulk_predict, expand_inputs
from tac_ecg_hf.cli import main
from tac_ecg_hf.inference import ECGTaskClassifier

MODEL = "tac-ecg/xresnet1d101-cetp"
CPSC = ["A0001", "A0002", "A0005"]


@pytest.fixture(autouse=True)
def _offline(tmp_path, monkeypatch):
    local_hub_env(monkeypatch, None, cache_dir=tmp_path / "hf_home", offline=True)


def copy_records(src: Path, ids, dst: Path) -> list[Path]:
    dst.mkdir(parents=True, exist_ok=True)
    for rid in ids:
        for ext in (".hea", ".mat"):
            shutil.copyfile(src / f"{rid}{ext}", dst / f"{rid}{ext}")
    return [dst / f"{rid}.hea" for rid in ids]


@pytest.fixture(scope="module")
def archive(tmp_path_factory, data_root):
    """A folder like a hospital export: 12-lead CPSC2018 and raw PTB-XL records, a single-lead CinC 2017 record in a
    subfolder, a truncated signal file behind a valid header, a bare .npy without a sampling rate, and a text file."""
    folder = tmp_path_factory.mktemp("archive")
    good = copy_records(data_root / "cpsc2018", CPSC, folder)
    good += copy_records(data_root / "cinc2020", ["HR00001"], folder)
    single = copy_records(data_root / "cinc2017", ["A00001"], folder / "single")
    shutil.copyfile(data_root / "cpsc2018" / "A0006.hea", folder / "A0006.hea")
    (folder / "A0006.mat").write_bytes((data_root / "cpsc2018" / "A0006.mat").read_bytes()[:300])
    np.save(folder / "nofs.npy", np.zeros((12, 5000), dtype=np.float32))
    (folder / "README.txt").write_text("not a record")
    return {"folder": folder, "good": good, "single": single, "corrupt": [folder / "A0006.hea", folder / "nofs.npy"]}


@pytest.fixture(scope="module")
def classifier():
    return ECGTaskClassifier.from_pretrained(MODEL, tasks=["cpsc2018", "cinc2017"])


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_repo")
    save_task_repo(folder, tasks=("cpsc2018",))
    return str(folder)


def read_rows(path: Path) -> pd.DataFrame:
    if path.suffix == ".csv":
        return pd.read_csv(path, dtype={"path": str, "error": str, "decision": str, "notes": str})
    if path.suffix == ".jsonl":
        return pd.DataFrame([strict_json(line) for line in path.read_text().splitlines()])
    return pd.read_parquet(path)


def predict(argv, capsys) -> tuple[int, str, str]:
    code = main(["predict", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_expand_inputs(archive):
    found = expand_inputs([archive["folder"]])
    assert all(type(p) is str for p in found)  # strings: an archive's bookkeeping stays small (RESULTS.md, memory)
    # one path per record
    assert sorted(found) == sorted(map(str, archive["good"] + archive["single"] + archive["corrupt"]))
    assert expand_inputs([archive["folder"] / "A000*.hea", archive["good"][0]]) == sorted(
        [str(p) for p in archive["good"] if p.name.startswith("A000")] + [str(archive["folder"] / "A0006.hea")])
    # the same record given twice (a folder and a file in it) is listed once
    assert expand_inputs([archive["folder"], archive["good"][0]]) == found


def test_folder_to_csv_errors_are_rows_and_probabilities_match_predict(archive, classifier, tmp_path, capsys):
    out = tmp_path / "results.csv"
    # fp32 so that rows equal predict() exactly (bulk runs default to bf16; its tolerance has its own test below)
    code, stdout, stderr = predict([archive["folder"], "--task", "cpsc2018", "--out", out, "--dtype", "fp32"], capsys)
    assert code == 0, stderr
    assert "rec/s" in stderr  # the progress bar reports records per second
    assert "3 failed" in stdout
    rows = read_rows(out)
    paths = [str(p) for p in expand_inputs([archive["folder"]])]
    assert sorted(rows["path"]) == sorted(paths) and (rows["task"] == "cpsc2018").all()
    errors = rows.set_index("path")["error"]
    for bad in archive["corrupt"] + archive["single"]:  # unreadable, or lacking the 12 leads the task reads
        assert isinstance(errors[str(bad)], str) and errors[str(bad)], bad
    assert "truncated" in errors[str(archive["folder"] / "A0006.hea")]
    labels = list(classifier.adapter_config("cpsc2018").labels)
    for path in archive["good"]:
        row = rows.set_index("path").loc[str(path)]
        assert pd.isna(row["error"])
        prediction = classifier.predict(path, task="cpsc2018")
        probs = row[[f"prob/{label}" for label in labels]].to_numpy(float)
        np.testing.assert_allclose(probs, prediction.probabilities, atol=2e-6, rtol=0)
        assert row["decision"].split(";") == prediction.decision
        assert row["record_id"] == prediction.record_id


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_other_formats_hold_the_same_rows(archive, tiny_repo, tmp_path, capsys, suffix):
    csv_out, other = tmp_path / "a.csv", tmp_path / f"a{suffix}"
    for out in (csv_out, other):
        assert predict([archive["folder"], "--task", "cpsc2018", "--out", out, "--quiet", "--model", tiny_repo],
                       capsys)[0] == 0
    expected = read_rows(csv_out).sort_values("path").reset_index(drop=True)
    got = read_rows(other).sort_values("path").reset_index(drop=True)
    assert list(got.columns) == list(expected.columns)
    probs = [c for c in expected.columns if c.startswith("prob/")]
    np.testing.assert_allclose(got[probs].to_numpy(float), expected[probs].to_numpy(float), atol=1e-12, equal_nan=True)
    for column in ("path", "record_id", "task", "decision", "error"):
        assert got[column].fillna("").astype(str).tolist() == expected[column].fillna("").astype(str).tolist(), column
    assert not list(tmp_path.glob("*.parts")) and not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_rerun_skips_and_an_interrupted_run_resumes(archive, tiny_repo, tmp_path, capsys, suffix):
    out = tmp_path / f"r{suffix}"
    options = ["--task", "cpsc2018", "--out", out, "--quiet", "--model", tiny_repo]
    half = archive["good"][:2]
    assert predict([*half, *options], capsys)[0] == 0
    assert sorted(read_rows(out)["path"]) == sorted(map(str, half))
    code, stdout, _ = predict([archive["folder"], *options], capsys)
    assert code == 0 and "2 already in" in stdout
    everything = sorted(str(p) for p in expand_inputs([archive["folder"]]))
    assert sorted(read_rows(out)["path"]) == everything
    code, stdout, _ = predict([archive["folder"], *options], capsys)
    assert code == 0 and stdout.startswith("0 record(s)") and "0 row(s) written" in stdout
    assert sorted(read_rows(out)["path"]) == everything  # no row written twice
    if suffix != ".parquet":  # killed in the middle of writing a row: the cut row is dropped and predicted again
        text = out.read_bytes()
        out.write_bytes(text[: len(text) - 25])
        code, stdout, _ = predict([archive["folder"], *options], capsys)
        assert code == 0 and stdout.startswith("1 record(s)")
        assert sorted(read_rows(out)["path"]) == everything


def test_several_tasks_in_one_pass(archive, classifier, tmp_path, capsys):
    out = tmp_path / "both.jsonl"
    assert predict([archive["folder"], "--tasks", "cpsc2018,cinc2017", "--out", out, "--quiet", "--dtype", "fp32"],
                   capsys)[0] == 0
    rows = read_rows(out)
    assert len(rows) == 2 * len(expand_inputs([archive["folder"]]))
    assert rows.groupby("path")["task"].apply(sorted).tolist() == [["cinc2017", "cpsc2018"]] * (len(rows) // 2)
    by_key = rows.set_index(["path", "task"])
    single = str(archive["single"][0])
    # a single-lead record: no 12-lead cpsc2018 prediction, but its lead-I cinc2017 one
    assert isinstance(by_key.loc[(single, "cpsc2018"), "error"], str)
    assert pd.isna(by_key.loc[(single, "cinc2017"), "error"])
    for path in archive["good"][:2] + archive["single"]:
        prediction = classifier.predict(path, task="cinc2017")
        row = by_key.loc[(str(path), "cinc2017")]
        np.testing.assert_allclose([row[f"prob/{label}"] for label in prediction.labels], prediction.probabilities,
                                   atol=2e-6, rtol=0)
        assert row["decision"] == ";".join(prediction.decision)


def test_workers_give_the_same_rows(archive, tiny_repo, tmp_path, capsys):
    results = []
    for workers in (0, 2):
        out = tmp_path / f"w{workers}.csv"
        argv = [archive["folder"], "--task", "cpsc2018", "--out", out, "--quiet", "--workers", workers,
                "--batch-size", 3, "--model", tiny_repo]
        assert predict(argv, capsys)[0] == 0
        results.append(read_rows(out).sort_values("path").reset_index(drop=True))
    pd.testing.assert_frame_equal(results[0], results[1])


def test_default_workers_and_threads_follow_the_usable_cpus(monkeypatch):
    from tac_ecg_hf import bulk

    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    # (CPUs, local processes) -> (reader workers, model threads): no worker on one CPU, two readers beside the model
    # on two (the 2-core machine of benchmarks/RESULTS.md), about two thirds of the CPUs reading on more
    expected = {(1, 1): (0, 1), (2, 1): (2, 1), (3, 1): (2, 1), (4, 1): (3, 1), (16, 1): (11, 5), (200, 1): (64, 136),
                (16, 2): (5, 3), (16, 8): (2, 1), (2, 4): (0, 1)}
    for (cpus, local), (workers, threads) in expected.items():
        monkeypatch.setattr(bulk.os, "sched_getaffinity", lambda pid, n=cpus: set(range(n)), raising=False)
        monkeypatch.setenv("LOCAL_WORLD_SIZE", str(local))
        assert bulk.usable_cpus() == max(1, cpus // local)
        assert bulk.default_resources() == (workers, threads), (cpus, local)
        assert bulk.default_num_workers() == workers == bulk._check_num_workers(None)
        # workers the caller chose leave the rest of the CPUs to the model
        assert bulk.default_resources(num_workers=0) == (0, max(1, cpus // local))
    assert bulk.default_resources(cpus=8, num_workers=6) == (6, 2)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "not a number")  # a launcher's garbage is one process, not a crash
    assert bulk.usable_cpus() == 2
    assert bulk._check_num_workers(0) == 0
    for bad in (-1, 65, 1.5, True, "2"):
        with pytest.raises(bulk.InvalidArgumentError, match="--workers must be a whole number"):
            bulk._check_num_workers(bad)
    for bad in (0, -2, bulk.MAX_THREADS + 1, 2.0, False, "4"):
        with pytest.raises(bulk.InvalidArgumentError, match="--threads must be a whole number from 1 to 1024"):
            bulk.check_num_threads(bad)


def test_bulk_runs_the_model_on_the_threads_the_readers_leave_and_restores_torchs(tiny_repo, data_root, tmp_path,
                                                                                    monkeypatch, capsys):
    import torch

    from tac_ecg_hf import bulk

    clf = ECGTaskClassifier.from_pretrained(tiny_repo)
    paths = copy_records(data_root / "cpsc2018", CPSC[:2], tmp_path / "in")
    seen = []
    real_logits = clf.logits
    monkeypatch.setattr(clf, "logits", lambda *a, **k: seen.append(torch.get_num_threads()) or real_logits(*a, **k))
    monkeypatch.setattr(bulk, "usable_cpus", lambda: 2)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        for n, (workers, threads, used) in enumerate(((0, None, 2), (0, 1, 1), (1, None, 1))):
            seen.clear()
            bulk_predict(clf, paths, ["cpsc2018"], tmp_path / f"out{n}.csv", batch_size=4, num_workers=workers,
                         num_threads=threads, progress=False)
            assert seen and set(seen) == {used}, (workers, threads, seen)
            assert torch.get_num_threads() == 2  # the caller's setting is back
        with pytest.raises(bulk.InvalidArgumentError, match="--threads must be a whole number"):
            bulk_predict(clf, paths, ["cpsc2018"], tmp_path / "bad.csv", num_workers=0, num_threads=0)
        assert not (tmp_path / "bad.csv").exists() and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    # the command line: a bad --threads is one line and exit code 2, before anything is loaded or written
    capsys.readouterr()
    for bad in ("0", "5000"):
        code, out, err = predict([*paths, "--task", "cpsc2018", "--out", tmp_path / "cli.csv", "--threads", bad,
                                  "--model", tiny_repo], capsys)
        assert code == 2 and "--threads must be a whole number from 1 to 1024" in err, err
        assert len(err.strip().splitlines()) == 1 and not (tmp_path / "cli.csv").exists()


def test_bf16_rows_are_within_the_parity_tolerance(archive, classifier, tmp_path, capsys):
    out = {dtype: tmp_path / f"{dtype}.csv" for dtype in ("fp32", "bf16")}
    for dtype, path in out.items():
        assert predict([*archive["good"], "--task", "cpsc2018", "--out", path, "--quiet", "--dtype", dtype],
                       capsys)[0] == 0
    fp32, bf16 = (read_rows(p).sort_values("path") for p in out.values())
    probs = [c for c in fp32.columns if c.startswith("prob/")]
    difference = np.abs(fp32[probs].to_numpy(float) - bf16[probs].to_numpy(float)).max()
    assert 0 < difference <= 0.02


def test_bad_bulk_arguments_exit_2_with_one_line(archive, tmp_path, capsys):
    records = [str(p) for p in archive["good"][:2]]
    cases = {
        "several records: give --out": [*records, "--task", "cpsc2018"],
        "--plot draws one record": [*records, "--task", "cpsc2018", "--out", tmp_path / "x.csv", "--plot", "p.png"],
        "use a .csv, .jsonl or .parquet": [*records, "--task", "cpsc2018", "--out", tmp_path / "x.txt"],
        "would overwrite the input record": [records[0], "--task", "cpsc2018", "--out", records[0]],
        "--workers must be a whole number from 0": [*records, "--task", "cpsc2018", "--out", tmp_path / "x.csv",
                                                    "--workers", "-1"],
        "to 64, got 10000": [*records, "--task", "cpsc2018", "--out", tmp_path / "x.csv", "--workers", "10000"],
        "--threads must be a whole number from 1 to 1024 (torch CPU threads), got 0": [records[0], "--task",
                                                                                      "cpsc2018", "--threads", "0"],
    }
    for message, argv in cases.items():
        code, stdout, stderr = predict(argv, capsys)
        assert code == 2 and stderr.count("\n") == 1 and message in stderr, (message, stderr)
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "x.txt").exists()


def test_memory_stays_flat_as_the_record_count_grows(tiny_repo, data_root, tmp_path):
    """Peak memory allocated while predicting (tracemalloc: numpy arrays and Python objects, in-process with
    ``num_workers=0`` so that reading and preparing happen where it is measured) for 200 records is that of 25: only a
    bounded number of records is in flight, and rows go to the file as they finish. The records are links to one real
    record saved as .npy + sidecar (the quickest format to read)."""
    from tac_ecg_hf.data import read_record

    record = read_record(data_root / "cinc2020" / "HR00001.hea")
    np.save(tmp_path / "source.npy", record.signal)
    (tmp_path / "source.json").write_text(json.dumps({"sampling_rate": record.sampling_rate,
                                                      "lead_names": list(record.lead_names)}))
    clf = ECGTaskClassifier.from_pretrained(tiny_repo)
    peaks = {}
    for n in (25, 200):
        folder = tmp_path / f"in{n}"
        folder.mkdir()
        for i in range(n):
            for ext in (".npy", ".json"):
                os.symlink(tmp_path / f"source{ext}", folder / f"r{i:04d}{ext}")
        tracemalloc.start()
        summary = bulk_predict(clf, [folder], ["cpsc2018"], tmp_path / f"out{n}.csv", batch_size=16, num_workers=0,
                               progress=False)
        peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert summary.records == n and summary.failed == 0
        assert len(read_rows(tmp_path / f"out{n}.csv")) == n
    # 8x the records: the same records in flight; what grows is the list of paths and the set of rows written
    # (about a kilobyte per record), which resuming needs
    assert peaks[200] < 1.2 * peaks[25] + 2**20, peaks


def test_long_records_travel_in_pieces_of_one_batch(tiny_repo, data_root, tmp_path):
    """A 10-minute record among short ones: the workers send packs of about one batch of windows (so that two packs
    ahead per worker bound memory whatever the records' length), a long record's windows a batch at a time after its
    head, and its row is the window average ``ECGTaskClassifier.predict`` gives."""
    from tac_ecg_hf.bulk import _RecordStream
    from tac_ecg_hf.data import read_record

    record = read_record(data_root / "cinc2020" / "HR00001.hea")  # 10 s at 500 Hz
    for name, repeat in (("long", 60), ("short1", 1), ("short2", 1)):
        np.save(tmp_path / f"{name}.npy", np.tile(record.signal, (1, repeat)))
        (tmp_path / f"{name}.json").write_text(json.dumps({"sampling_rate": record.sampling_rate,
                                                           "lead_names": list(record.lead_names)}))
    clf = ECGTaskClassifier.from_pretrained(tiny_repo)
    paths = [tmp_path / f"{name}.npy" for name in ("short1", "long", "short2")]
    batch = 4
    import warnings

    filters, packs = list(warnings.filters), []
    for pack in _RecordStream(paths + [tmp_path / "missing.npy"], {"cpsc2018": clf.feature_extractor("cpsc2018")},
                              {}, batch):
        assert warnings.filters == filters  # the stream silences warnings only while it reads, never across a yield
        packs.append(pack)
    assert packs[-1][-1]["errors"] and packs[-1][-1]["index"] == 3  # the missing file: a head with its error
    packs[-1] = packs[-1][:-1]
    entries = [entry for pack in packs for entry in pack]
    heads = {e["index"]: e for e in entries if "task" not in e}
    assert sorted(heads) == [0, 1, 2] and heads[1]["total"]["cpsc2018"] > 10 * batch
    for i, head in heads.items():  # each record's pieces come after its head and add up to its windows
        position = next(k for k, e in enumerate(entries) if e is head)
        pieces = [(k, e) for k, e in enumerate(entries) if e.get("task") and e["index"] == i]
        assert all(k > position and len(e["windows"]) <= batch for k, e in pieces)
        pieces = [e for _, e in pieces]
        assert sum(len(p["windows"]) for p in pieces) == head["total"]["cpsc2018"]
    assert max(sum(len(e.get("windows", ())) for e in pack) for pack in packs) < 2 * batch

    out = tmp_path / "out.csv"
    bulk_predict(clf, paths, ["cpsc2018"], out, batch_size=batch, num_workers=1, progress=False)
    rows = read_rows(out).set_index("record_id")
    expected = clf.predict(paths[1], "cpsc2018")
    assert expected.num_windows == heads[1]["total"]["cpsc2018"]
    got = rows.loc["long", [f"prob/{label}" for label in expected.labels]].to_numpy(float)
    np.testing.assert_allclose(got, expected.probabilities, atol=2e-6)


def test_merge_ranks_joins_every_process_output(tmp_path):
    """The main process appends each process's rows to the requested file (also onto rows of an earlier run) and
    removes the per-process files."""

    class State:
        num_processes, is_main_process = 3, True

        def wait_for_everyone(self):
            pass

    labels = ["N", "A"]
    for suffix in (".csv", ".jsonl", ".parquet"):
        target = tmp_path / f"out{suffix}"
        earlier = ResultWriter(target, labels)
        earlier.write({"path": "old.hea", "record_id": "old", "task": "t", "prob/N": 0.5, "prob/A": 0.5})
        earlier.close()
        for rank in range(3):
            writer = ResultWriter(tmp_path / f"out.rank{rank}{suffix}", labels)
            for i in range(rank + 1):  # rank 0 one row, rank 1 two, rank 2 three
                writer.write({"path": f"r{rank}-{i}.hea", "record_id": f"r{rank}-{i}", "task": "t", "prob/N": 0.1,
                              "prob/A": 0.9})
            writer.close()
        _merge_ranks(State(), tmp_path / f"out.rank0{suffix}")
        rows = read_rows(target)
        assert sorted(rows["path"]) == sorted(["old.hea"] + [f"r{r}-{i}.hea" for r in range(3) for i in range(r + 1)])
        assert not list(tmp_path.glob(f"out.rank*{suffix}"))
        assert ResultWriter(target, labels).done == {(p, "t") for p in rows["path"]}


@pytest.mark.slow  # two processes each import the package and load a model: 15-25 s on 2 shared cores
def test_under_accelerate_launch_the_files_are_split_and_merged(tiny_repo, archive, tmp_path, capsys):
    """Two processes predict alternate files into per-process files that the main process merges into the requested
    one; records an earlier run wrote there are skipped by both."""
    out = tmp_path / "merged.csv"
    first = archive["good"][0]
    assert predict([first, "--task", "cpsc2018", "--model", tiny_repo, "--out", out, "--quiet"], capsys)[0] == 0
    argv = ["-m", "tac_ecg_hf.cli", "predict", str(archive["folder"]), "--task", "cpsc2018", "--model", tiny_repo,
            "--out", str(out), "--quiet", "--workers", "0", "--dtype", "fp32"]
    run = launch_two_processes(argv, tmp_path / "hf_home_launch")
    assert run.returncode == 0, run.stderr[-4000:]
    everything = sorted(str(p) for p in expand_inputs([archive["folder"]]))
    rows = read_rows(out)
    assert sorted(rows["path"]) == everything  # every record exactly once
    assert not list(tmp_path.glob("merged.rank*"))
    clf = ECGTaskClassifier.from_pretrained(tiny_repo)
    for path in archive["good"][1:]:
        row = rows.set_index("path").loc[str(path)]
        np.testing.assert_allclose([row[f"prob/{label}"] for label in clf.adapter_config("cpsc2018").labels],
                                   clf.predict(path, task="cpsc2018").probabilities, atol=2e-6, rtol=0)
    assert run.stdout.count("record(s) predicted") == 2  # one summary per process
