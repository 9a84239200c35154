//! Runs a pipeline: DAG scheduling (fastest first, fail fast) and the local executor.
