"""The mistakes a checker names, by id and title.

One table, read by the claims file (`expect_diagnosis`), the diagnosis search
(candidates in this order) and the report labels (`diagnosis_title` in
reports/labels/*.toml has a title for each). It imports nothing, so that the
claims file need not import the search that reads its claims.
"""

DIAGNOSES = {
    "sign": "sign flipped",
    "constant-factor": "off by a constant factor",
    "wrong-quantity": "∂C/∂a where ∂C/∂z belongs, or the reverse",
    "missing-sigma-prime": "the σ' factor is missing",
    "sigma-for-sigma-prime": "σ written where σ' belongs",
    "transposed-index": "a transposed index: w_jk where w_kj belongs",
    "wrong-weight": "a weight that does not connect those units",
    "wrong-unit": "a unit's quantity where another unit's belongs",
    "shared-parameter": "a shared parameter counted once",
    "missing-path": "a missing path: a term of the sum over the units fed is missing",
    "one-hot": "holds only for one-hot targets (entries summing to 1), which the file does not assume",
    "shape": "a matrix product or sum whose shapes do not conform (a transpose missing or misplaced)",
}
