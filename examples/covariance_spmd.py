"""EmpiricalCovariance on sharded rows; checked against scikit-learn on all rows.

    mpiexec -n 4 python examples/covariance_spmd.py [--device numpy|cpu|gpu]
"""

from sklearn.covariance import EmpiricalCovariance as SkEmpiricalCovariance
from sklearn.datasets import load_wine

from _check import device_arrays, report
from spmdlearn.comm import get_comm
from spmdlearn.covariance import EmpiricalCovariance
from spmdlearn.io import shard

comm = get_comm()
to_device, to_host = device_arrays(comm)  # --device numpy|cpu|gpu
X = load_wine().data
X_local = to_device(shard(X))
cov = EmpiricalCovariance().fit(X_local)
ref = SkEmpiricalCovariance().fit(X)
if comm.rank == 0:
    print(f"EmpiricalCovariance of {len(X)} rows over {comm.size} ranks")
report(comm, [
    ("covariance_", cov.covariance_, ref.covariance_),
    ("location_", cov.location_, ref.location_),
    ("precision_", cov.precision_, ref.precision_),
    ("score (log-likelihood)", cov.score(X_local), ref.score(X)),
], rtol=1e-7)
