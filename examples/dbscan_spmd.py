"""DBSCAN on sharded rows; scikit-learn's labels (numbering included) on all rows.

    mpiexec -n 4 python examples/dbscan_spmd.py [--device numpy|cpu|gpu]
"""

import numpy as np
from sklearn.cluster import DBSCAN as SkDBSCAN
from sklearn.datasets import make_moons

from _check import device_arrays, report
from spmdlearn.cluster import DBSCAN
from spmdlearn.comm import get_comm
from spmdlearn.io import shard

comm = get_comm()
to_device, to_host = device_arrays(comm)  # --device numpy|cpu|gpu
X, _ = make_moons(n_samples=3000, noise=0.06, random_state=0)
X = X[np.random.default_rng(0).permutation(len(X))]  # each moon spread over every rank
X_local = to_device(shard(X))
db = DBSCAN(eps=0.08, min_samples=8).fit(X_local)
ref = SkDBSCAN(eps=0.08, min_samples=8).fit(X)
start, _ = comm.offsets(len(X_local))
mine = ref.labels_[start:start + len(X_local)]
same = all(comm.allgather(bool(np.array_equal(to_host(db.labels_), mine))))
n_clusters = len(set(ref.labels_) - {-1})
if comm.rank == 0:
    print(f"DBSCAN of {len(X)} rows over {comm.size} ranks: {n_clusters} clusters, "
          f"{int((ref.labels_ == -1).sum())} noise points; labels identical on every rank: {same}")
report(comm, [("labels identical (1=yes)", float(same), 1.0),
              ("core points (all ranks)", comm.exact_sum(len(db.core_sample_indices_)),
               len(ref.core_sample_indices_))], rtol=0)
