//! The andon binary: CLI over the local runner and the server.
