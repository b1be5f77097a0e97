"""PCA on sharded rows, both exact solvers; checked against scikit-learn on all rows.

    mpiexec -n 4 python examples/pca_spmd.py [--device numpy|cpu|gpu]
"""

from sklearn.datasets import load_digits
from sklearn.decomposition import PCA as SkPCA

from _check import device_arrays, report
from spmdlearn.comm import get_comm
from spmdlearn.decomposition import PCA
from spmdlearn.io import shard

comm = get_comm()
to_device, to_host = device_arrays(comm)  # --device numpy|cpu|gpu
X = load_digits().data  # 1797 x 64, ships with scikit-learn
X_local = to_device(shard(X))
rows = []
for solver in ("covariance_eigh", "full"):
    pca = PCA(n_components=10, svd_solver=solver).fit(X_local)
    ref = SkPCA(n_components=10, svd_solver=solver).fit(X)
    rows += [(f"{solver}: explained_var", pca.explained_variance_, ref.explained_variance_),
             (f"{solver}: components_", pca.components_, ref.components_),
             (f"{solver}: score", pca.score(X_local), ref.score(X))]
if comm.rank == 0:
    print(f"PCA of digits ({X.shape[0]} x {X.shape[1]}) over {comm.size} ranks")
report(comm, rows, rtol=1e-7)
