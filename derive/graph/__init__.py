"""The graph stage: what a network is, built from a spec file or from Python.

registry.py holds one entry per function (its SymPy class in functions.py,
evaluation, kernels, labels), numeric.py evaluates expressions exactly,
with intervals or in 60 digits; parser.py reads formula strings through a
whitelist; network.py is the `Network` object; layered.py, free_form.py,
zhou.py and convolutional.py build the four kinds (a convolutional network
from the layer classes of derive/layers/); naming.py names what the formulas
name but the graph does not (the neuron errors δ); spec.py reads spec files.
"""
