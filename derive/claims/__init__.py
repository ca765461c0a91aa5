"""The claims stage: a student's or an author's formulas, read and decided.

claimsfile.py reads a claims file; vocabulary.py says what a claim's names
mean (sharing derive/proof/vocabulary.py with the formula sets); latex*.py
read LaTeX as typed (tokens, names and scripts, sums, the grammar); check.py
decides each claim with the prover; diagnosis.py names the mistake of a
refuted one, from the table in mistakes.py.
"""
