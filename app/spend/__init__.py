"""Spend: what each key and each of its end users was charged, by model and UTC day, as their
generations settle (`tally`: a worker's sums, written once a second), kept where the keys are
(Redis, else DATA_DIR's SQLite file: `store`) for the spend report (`report`)."""
