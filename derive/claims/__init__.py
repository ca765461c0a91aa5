"""The claims stage: a student's or an author's formulas, read and decided.

claimsfile.py reads a claims file; vocabulary.py says what a claim's names
mean (sharing derive/proof/vocabulary.py with the formula sets); latex*.py
read LaTeX as typed (tokens, names and scripts, sums, the grammar, the
per-example and cost names of latex_examples.py); indices.py finds a claim's
free index letters and their ranges, generic.py reads a claim at every value
of them and link by link, decide.py decides those parts and parts_output.py
reports them; matrix.py and matrix_read.py read a formula that names whole
layers (Nielsen's matrix form) into its components; check.py decides each
claim with the prover; diagnosis.py (and diagnosis_units.py) names the
mistake of a refuted one, from the table in mistakes.py.
"""
