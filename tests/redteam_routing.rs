//! Red team: socket options and control messages that would move the first
//! hop away from the judged address are refused.
