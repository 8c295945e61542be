"""Separate benchmark scripts of the repository (the suite that `graphc bench` runs is graphc/bench/).

graph_sizes.py, optimizer_scaling.py, llvm_bench.py, vecmath_speed.py, vecmath_accuracy.py,
w3_numpy_fusion.py, w7_rnn.py, explore_size.py, conv_lowering.py, sparse_scaling.py,
distributed_scaling.py and named_dims.py each measure one thing in depth; each docstring
says how to run it.
`python -m benchmarks ...` runs the suite, as `graphc bench ...` does.
"""
