"""KMeans on sharded rows; the same labels, centers and iterations as scikit-learn on all rows.

    mpiexec -n 4 python examples/kmeans_spmd.py [--device numpy|cpu|gpu]
"""

import numpy as np
from sklearn.cluster import KMeans as SkKMeans
from sklearn.datasets import make_blobs

from _check import device_arrays, report
from spmdlearn.cluster import KMeans
from spmdlearn.comm import get_comm
from spmdlearn.io import shard

comm = get_comm()
to_device, to_host = device_arrays(comm)  # --device numpy|cpu|gpu
X, _ = make_blobs(n_samples=20_000, centers=8, n_features=10, cluster_std=3.0, random_state=0)
X_local = to_device(shard(X))
km = KMeans(n_clusters=8, random_state=0).fit(X_local)
ref = SkKMeans(n_clusters=8, random_state=0).fit(X)
start, _ = comm.offsets(len(X_local))
same_labels = bool(np.array_equal(to_host(km.labels_), ref.labels_[start:start + len(X_local)]))
all_same = all(comm.allgather(same_labels))
if comm.rank == 0:
    print(f"KMeans of {len(X)} rows over {comm.size} ranks: labels identical to scikit-learn's "
          f"on every rank: {all_same}; n_iter_ {km.n_iter_} vs {ref.n_iter_}")
report(comm, [
    ("cluster_centers_", km.cluster_centers_, ref.cluster_centers_),
    ("inertia_", km.inertia_, ref.inertia_),
    ("n_iter_", km.n_iter_, ref.n_iter_),
    ("labels identical (1=yes)", float(all_same), 1.0),
], rtol=1e-6)
