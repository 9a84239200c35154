//! Deploys versions: process targets, strategies (recreate, rolling, blue/green, canary), rollback.
