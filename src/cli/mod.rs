//! The commands besides `serve`: `check` validates manifests offline as the server
//! would (for CI and pre-commit hooks), `explain` asks a running server why it answers
//! a name as it does.

pub mod check;
pub mod explain;
