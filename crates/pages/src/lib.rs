//! Web pages paycore serves to people rather than to services, on an HTTP
//! listener of their own (`paycore serve --pages-listen`; off unless asked
//! for, never on the gRPC port): the sandbox's 3-D Secure challenge, where
//! a cardholder sent to a payin's `authentication_url` passes or fails the
//! challenge and is sent back to the merchant's redirect URL
//! (`challenge.rs`), the bank connection pages a connection's
//! `authentication_url` opens (`connect.rs`), and the sandbox bank's own
//! sign-in page its web authentication user is sent to (`sandbox_bank.rs`).
//!
//! Plain server-rendered HTML (maud escapes everything it interpolates), no
//! script, styles inline; readable on a phone-sized screen, every control
//! labelled and reachable with the keyboard. Each answer forbids caching and
//! sends no `Referer` onward, since the URL carries the link's token.

mod challenge;
mod connect;
mod layout;
mod sandbox_bank;

use std::net::SocketAddr;

use axum::Router;
use axum::routing::{get, post};
use paycore_grpc::challenge::Challenges;
use paycore_grpc::connect::Connections;
use tokio::net::TcpListener;

/// Where the challenge pages are, under the listener's root:
/// `<base>/<card payin ID>?token=…` (the `authentication_url` base is the
/// public URL of the listener followed by this).
pub const CHALLENGE_PATH: &str = "/3ds";

pub use connect::{CALLBACK_PATH, CONNECT_PATH};
pub use sandbox_bank::SANDBOX_BANK_PATH;

/// The pages' routes.
pub fn router(challenges: Challenges, connections: Connections) -> Router {
    let challenge = Router::new()
        .route("/3ds/{payin}", get(challenge::show).post(challenge::answer))
        .with_state(challenges);
    let connect = Router::new()
        .route("/connect/callback/{connection}", get(connect::callback))
        .route("/connect/{connection}", get(connect::show))
        .route("/connect/{connection}/institution", post(connect::choose))
        .route("/connect/{connection}/credentials", post(connect::credentials))
        .route("/connect/{connection}/code", post(connect::code))
        .route("/connect/{connection}/approved", post(connect::approved))
        .route("/connect/{connection}/consent", post(connect::consent))
        .route(
            "/sandbox-bank/{institution}/authorize",
            get(sandbox_bank::show).post(sandbox_bank::decide),
        )
        .with_state(connections);
    challenge.merge(connect).fallback(layout::not_found)
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
