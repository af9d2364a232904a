//! The loom model of ferry's concurrent core. The tests are in `tests/`; they run ferry's real
//! code (`ferry::loom_api`, built with `--cfg loom`), not a restatement of it. Without `--cfg loom`
//! this crate is empty.
