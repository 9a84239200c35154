//! The data plane: a reverse proxy that splits, pins, mirrors and measures traffic per version.
