"""The Spark engine: the pipeline's scale-dependent stages on Spark (local mode or EMR Serverless).

``session`` builds the SparkSession, ``read`` reads and indexes the interaction tables, ``split`` holds out
the per-user time split, ``matrix`` aggregates and weights the user×item matrix into row blocks, ``svd`` runs
the randomized truncated SVD over those blocks, and ``engine`` ties them into ``pipeline.engine.Engine``.
"""
