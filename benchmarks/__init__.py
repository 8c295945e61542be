"""Separate benchmark scripts of the repository (the suite that `graphc bench` runs is graphc/bench/).

graph_sizes.py, optimizer_scaling.py, llvm_bench.py, vecmath_speed.py, w3_numpy_fusion.py,
w7_rnn.py and explore_size.py each measure one thing in depth; each docstring says how to
run it. `python -m benchmarks ...` runs the suite, as `graphc bench ...` does.
"""
