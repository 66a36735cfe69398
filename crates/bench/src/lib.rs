//! `ponder bench` and `ponder report`: strategies run over a dataset at several budgets, graded
//! by `ponder eval`, summarized as scaling curves; and the simulated policy that lets search be
//! studied without a model.

pub mod html;
pub mod record;
pub mod report;
pub mod runner;
pub mod sim;
