"""The recommend service: a FastAPI app served through Mangum on Lambda (or uvicorn locally)."""

import os

# Each request multiplies one vector by the item matrix: BLAS thread hand-offs cost more than
# they save (measured 490 µs vs 70 µs for 10k×50 on 2 busy cores), and Lambda has 1-2 vCPUs.
# Set before numpy is first imported; an explicit setting in the environment wins.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")
