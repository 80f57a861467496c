//! Red team: the traced program cannot reach its own supervisor, nor borrow
//! sockets from other processes (non-dumpable supervisor, Landlock domain).
