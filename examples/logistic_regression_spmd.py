"""LogisticRegression on sharded rows: scikit-learn's coefficients and iterations on all rows.

    mpiexec -n 4 python examples/logistic_regression_spmd.py [--device numpy|cpu|gpu]
"""

from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression as SkLogisticRegression

from _check import device_arrays, report
from spmdlearn.comm import get_comm
from spmdlearn.io import shard
from spmdlearn.linear_model import LogisticRegression

comm = get_comm()
to_device, to_host = device_arrays(comm)  # --device numpy|cpu|gpu
X, y = make_classification(n_samples=20_000, n_features=12, n_informative=6, n_classes=3,
                           random_state=0)
X_local, y_local = to_device(shard(X)), to_device(shard(y))
rows = []
for solver in ("lbfgs", "newton-cg"):
    clf = LogisticRegression(solver=solver, tol=1e-10, max_iter=500).fit(X_local, y_local)
    ref = SkLogisticRegression(solver=solver, tol=1e-10, max_iter=500).fit(X, y)
    rows += [(f"{solver}: coef_", clf.coef_, ref.coef_),
             (f"{solver}: n_iter_", clf.n_iter_, ref.n_iter_),
             (f"{solver}: accuracy", clf.score(X_local, y_local), ref.score(X, y))]
if comm.rank == 0:
    print(f"multinomial LogisticRegression, {len(X)} rows over {comm.size} ranks")
report(comm, rows, rtol=1e-6)
