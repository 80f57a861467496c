//! The parts of sockstrace that other programs read: the report's schema
//! (`sockstrace::schema`), shared by the `sockstrace` binary, which writes and reads
//! reports, and by the end-to-end tests.

pub mod schema;
