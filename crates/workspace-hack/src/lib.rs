//! No code: this crate exists for its `Cargo.toml`, which gives the
//! dependencies the Lambdas share one feature set (see the comment there).
