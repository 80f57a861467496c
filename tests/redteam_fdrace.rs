//! Red team: what an fd number names, or what argument memory says, cannot
//! change between the supervisor's decision and the kernel's act.
