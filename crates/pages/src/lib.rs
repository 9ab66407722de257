//! Web pages paycore serves to people rather than to services, on an HTTP
//! listener of their own (`paycore serve --pages-listen`; off unless asked
//! for, never on the gRPC port): today the sandbox's 3-D Secure challenge,
//! where a cardholder sent to a payin's `authentication_url` passes or
//! fails the challenge and is sent back to the merchant's redirect URL.
//!
//! Plain server-rendered HTML (maud escapes everything it interpolates), no
//! script, styles inline; readable on a phone-sized screen, every control
//! labelled and reachable with the keyboard. Each answer forbids caching and
//! sends no `Referer` onward, since the URL carries the link's token.

mod challenge;
mod layout;

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use paycore_grpc::challenge::Challenges;
use tokio::net::TcpListener;

/// Where the challenge pages are, under the listener's root:
/// `<base>/<card payin ID>?token=…` (the `authentication_url` base is the
/// public URL of the listener followed by this).
pub const CHALLENGE_PATH: &str = "/3ds";

/// The pages' routes.
pub fn router(challenges: Challenges) -> Router {
    Router::new()
        .route("/3ds/{payin}", get(challenge::show).post(challenge::answer))
        .fallback(layout::not_found)
        .with_state(challenges)
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Binds the pages' listener (port 0 picks a free one).
pub async fn bind(listen: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(listen).await
}
