//! The sandbox bank over the Berlin Group NextGenPSD2 (AIS) interface:
//!
//! ```sh
//! cargo run -p paycore-bank-connector --example berlin_group_bank -- --listen 127.0.0.1:8090
//! ```
//!
//! Each sandbox institution is one bank at `http://<listen>/<institution>`
//! (`…/sandbox_de_rheinbank/v1/consents`, …). Options: `--page-size N`
//! (transactions per page, 500), `--public-url URL` (the base of the links
//! it hands out, by default `http://` and the request's `Host`). Ctrl-C
//! stops it.

use std::net::SocketAddr;
use std::sync::Arc;

use paycore_bank_connector::SandboxBank;
use paycore_bank_connector::berlin_group::{ServerConfig, router, server};

fn usage() -> ! {
    eprintln!("usage: berlin_group_bank [--listen ADDR] [--page-size N] [--public-url URL]");
    std::process::exit(2)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut listen: SocketAddr = "127.0.0.1:8090".parse()?;
    let mut config = ServerConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--listen" => listen = value().parse()?,
            "--page-size" => config.page_size = value().parse()?,
            "--public-url" => config.public_url = Some(value()),
            _ => usage(),
        }
    }
    let listener = server::bind(listen).await?;
    let address = listener.local_addr()?;
    for institution in paycore_bank_connector::sandbox::catalog::INSTITUTIONS {
        println!(
            "{}: http://{address}/{}/v1/consents",
            institution.name, institution.id
        );
    }
    let app = router(Arc::new(SandboxBank::new()), config);
    server::serve(listener, app, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
