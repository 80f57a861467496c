//! The `--report` contract (schema 1): one JSON object per line, an [`Event`] per decision
//! and a [`SummaryLine`] last. `sockstrace run` and `audit` write these types,
//! `sockstrace report` and the end-to-end tests read them.
//!
//! Writing is exact: the same event gives the same bytes in every version of schema 1.
//! Reading is tolerant: fields a reader does not know are ignored, fields an older writer
//! left out are defaulted.

mod event;
mod summary;
mod timestamp;

pub use event::{Action, Event, Frame, Name, SCHEMA};
pub use summary::{LeakRow, RunSummary, SummaryLine};
pub use timestamp::Timestamp;
