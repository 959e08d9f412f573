"""Table preprocessing (`data.preprocess`): feature and target encoding, fitted on the training
split and replayed at predict time.

What `data.preprocess` asks for, column by column: imputation (with an optional indicator
column), outlier bounds, scaling or binning for numbers; one-hot, ordinal or embedding codes for
categories; then feature selection. Settings come from the type's defaults (`numeric`,
`categorical`) overridden field by field by `columns`; a field that cannot apply to a column is
refused (`SpecMismatch` naming it) before anything is fitted.

One module per step, in the order training runs them:
- `columns`: which columns are features, and the settings each one gets
- `checks`: the spec against the dataset's columns, before anything is fitted (the dry run)
- `cleaning`: rows removed from the training split only
- `fit`: the encoders fitted on the kept rows, then feature selection
- `encoding`: the fitted `Preprocessor`, its JSON state and the encoding it replays; predict
  time needs only this one

This package defines nothing itself: import each name from the module that holds it.
"""
