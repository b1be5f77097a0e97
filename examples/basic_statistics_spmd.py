"""BasicStatistics on sharded rows; checked against NumPy on all rows.

    mpiexec -n 4 python examples/basic_statistics_spmd.py [--device numpy|cpu|gpu]
"""

from sklearn.datasets import load_diabetes

from _check import device_arrays, report
from spmdlearn.basic_statistics import BasicStatistics
from spmdlearn.comm import get_comm
from spmdlearn.io import shard

comm = get_comm()
to_device, to_host = device_arrays(comm)  # --device numpy|cpu|gpu
X = load_diabetes().data + 1e8  # far from the origin: the merge must stay stable
X_local = to_device(shard(X))
stats = BasicStatistics(result_options=["mean", "variance", "min", "max", "sum"]).fit(X_local)
if comm.rank == 0:
    print(f"BasicStatistics of {len(X)} rows over {comm.size} ranks (columns shifted by 1e8)")
report(comm, [
    ("mean_", stats.mean_, X.mean(0)),
    ("variance_", stats.variance_, ((X - X.mean(0)) ** 2).sum(0) / (len(X) - 1)),
    ("min_", stats.min_, X.min(0)),
    ("max_", stats.max_, X.max(0)),
    ("sum_", stats.sum_, X.sum(0)),
], rtol=1e-6)  # the shift itself rounds the data at ~1e-8: the variance is known to ~1e-7
