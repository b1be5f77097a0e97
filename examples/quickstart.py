"""Quickstart: four estimators fitted on sharded rows, next to scikit-learn on all rows.

    mpiexec -n 4 python examples/quickstart.py [--device numpy|cpu|gpu]

Every rank runs this script; each keeps its own rows; every rank ends with the same models.
"""

from sklearn import covariance as skcov
from sklearn import linear_model as sklin
from sklearn.datasets import load_diabetes

from _check import device_arrays, report
from spmdlearn.basic_statistics import BasicStatistics
from spmdlearn.comm import get_comm
from spmdlearn.covariance import EmpiricalCovariance
from spmdlearn.io import shard
from spmdlearn.linear_model import LinearRegression, Ridge

comm = get_comm()
to_device, to_host = device_arrays(comm)  # --device numpy|cpu|gpu
X, y = load_diabetes(return_X_y=True)  # ships with scikit-learn: nothing is downloaded
X_local, y_local = to_device(shard(X)), to_device(shard(y))  # this rank's rows

ols = LinearRegression().fit(X_local, y_local)
ridge = Ridge(alpha=0.5).fit(X_local, y_local)
cov = EmpiricalCovariance().fit(X_local)
stats = BasicStatistics().fit(X_local)
r2 = ols.score(X_local, y_local)

if comm.rank == 0:
    print(f"diabetes: {len(X)} rows over {comm.size} ranks; rank 0 holds {len(X_local)}")
    print("spmdlearn (sharded) vs scikit-learn / NumPy (all rows on one process):")
ref_ols = sklin.LinearRegression().fit(X, y)
report(comm, [
    ("LinearRegression.coef_", ols.coef_, ref_ols.coef_),
    ("LinearRegression R^2", r2, ref_ols.score(X, y)),
    ("Ridge.coef_", ridge.coef_, sklin.Ridge(alpha=0.5).fit(X, y).coef_),
    ("covariance_", cov.covariance_, skcov.EmpiricalCovariance().fit(X).covariance_),
    ("BasicStatistics.std", stats.standard_deviation_, X.std(0, ddof=1)),
], rtol=1e-7)
