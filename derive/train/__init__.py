"""The training stage: numbers from the generated kernels.

data.py reads datasets (the bundled digits, .npz files, a spec's [values]),
training.py runs mini-batch gradient descent with a compiled kernel, and
gradcheck.py compares a kernel's gradient with the symbolic one and with
central differences.
"""
