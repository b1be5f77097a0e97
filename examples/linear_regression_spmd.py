"""LinearRegression and Ridge on sharded rows; checked against scikit-learn on all rows.

    mpiexec -n 4 python examples/linear_regression_spmd.py [--device numpy|cpu|gpu]
"""

from sklearn import linear_model as sk
from sklearn.datasets import make_regression

from _check import device_arrays, report
from spmdlearn.comm import get_comm
from spmdlearn.io import shard
from spmdlearn.linear_model import LinearRegression, Ridge

comm = get_comm()
to_device, to_host = device_arrays(comm)  # --device numpy|cpu|gpu
# Every rank generates the same data and keeps its own rows (in real use each rank reads its
# own rows: see spmdlearn.io).
X, y = make_regression(n_samples=10_000, n_features=20, noise=5.0, random_state=0)
X_local, y_local = to_device(shard(X)), to_device(shard(y))

ols = LinearRegression().fit(X_local, y_local)
ridge = Ridge(alpha=10.0).fit(X_local, y_local)
r2 = ols.score(X_local, y_local)  # R^2 over all ranks' rows

ref_ols = sk.LinearRegression().fit(X, y)
ref_ridge = sk.Ridge(alpha=10.0).fit(X, y)
if comm.rank == 0:
    print(f"LinearRegression and Ridge on {len(X)} rows over {comm.size} ranks "
          f"(this rank: {len(X_local)} rows)")
report(comm, [
    ("LinearRegression.coef_", ols.coef_, ref_ols.coef_),
    ("LinearRegression.intercept_", ols.intercept_, ref_ols.intercept_),
    ("LinearRegression R^2", r2, ref_ols.score(X, y)),
    ("Ridge.coef_", ridge.coef_, ref_ridge.coef_),
    ("Ridge.intercept_", ridge.intercept_, ref_ridge.intercept_),
], rtol=1e-7)
