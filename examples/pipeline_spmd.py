"""A scikit-learn Pipeline under mpiexec: StandardScaler + LogisticRegression, scored with a
global metric.

    mpiexec -n 4 python examples/pipeline_spmd.py [--device numpy|cpu|gpu]
"""

from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler as SkStandardScaler

from _check import device_arrays, report
from spmdlearn.comm import get_comm
from spmdlearn.io import shard
from spmdlearn.linear_model import LogisticRegression
from spmdlearn.metrics import f1_score, roc_auc_score
from spmdlearn.preprocessing import StandardScaler

comm = get_comm()
to_device, to_host = device_arrays(comm)  # --device numpy|cpu|gpu
X, y = load_breast_cancer(return_X_y=True)
X_local, y_local = to_device(shard(X)), to_device(shard(y))
pipe = make_pipeline(StandardScaler(), LogisticRegression(tol=1e-10)).fit(X_local, y_local)
f1 = f1_score(y_local, pipe.predict(X_local))  # over all ranks' rows
auc = roc_auc_score(y_local, pipe.predict_proba(X_local)[:, 1])

ref = make_pipeline(SkStandardScaler(), SkLogisticRegression(tol=1e-10)).fit(X, y)
from sklearn.metrics import f1_score as sk_f1, roc_auc_score as sk_auc  # noqa: E402

if comm.rank == 0:
    print(f"Pipeline(StandardScaler, LogisticRegression) on {len(X)} rows over {comm.size} ranks")
report(comm, [("scaler mean_", pipe[0].mean_, ref[0].mean_),
              ("coef_", pipe[-1].coef_, ref[-1].coef_),
              ("F1 (global)", f1, sk_f1(y, ref.predict(X))),
              ("ROC AUC (global)", auc, sk_auc(y, ref.predict_proba(X)[:, 1]))], rtol=1e-6)
