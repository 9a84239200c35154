//! Andon's web dashboard: static files the server serves as they are.
//!
//! The dashboard is plain HTML, CSS and JavaScript modules compiled into the
//! binary with `include_bytes!`: no Node.js at run time, no build step, no
//! file to install next to the binary. It talks only to the server's JSON API
//! (`/api/v1/...`, with the bearer token the user pastes once) and follows
//! the event stream, so it shows what `andon` on the command line shows.
//!
//! The server mounts [`router`] next to its API. Every answer carries a strict
//! Content-Security-Policy (scripts and styles only from this origin, no
//! inline code) and an `ETag`, so a browser revalidates instead of
//! downloading again.
//!
//! # Layout
//! - `assets`: the embedded files, each with its content type and ETag.
//! - `serve`: the handlers for `/` and `/assets/{*path}`, conditional
//!   requests and the security headers.
//! - `assets/` (next to `src/`): the dashboard itself; `assets/js/main.js` is
//!   the entry point and `assets/js/pages/` holds one module per page.

mod assets;
mod serve;

use axum::Router;
use axum::routing::get;

/// Routes `/` (the dashboard's page) and `/assets/{*path}` (its files).
///
/// Generic over the state so the server can merge it into its own router
/// before it supplies its state; the dashboard needs none.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(serve::index))
        .route("/assets/{*path}", get(serve::asset))
}
