"""asv benchmarks for fastmlp (configuration: ../asv.conf.json; see bench_gemm.py)."""
