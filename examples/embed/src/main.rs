//! Run with: `cargo run -p example-embed`, then open http://127.0.0.1:3000 and sign in as `demo` / `demo password`.
//!
//! An axum app that embeds Vestibule; the app itself is built by [`example_embed::app`] in `src/lib.rs`.

use std::net::SocketAddr;

use vestibule_store::Store;

#[tokio::main]
async fn main() -> Result<(), example_embed::Error> {
    tracing_subscriber::fmt().with_env_filter("info").init();

    // A store (SQLite file here; any `postgres://` URL works the same) with its migrations applied.
    let store = Store::connect("sqlite://example-embed.db").await?;
    store.migrate().await?;

    let addr = SocketAddr::from(([127, 0, 0, 1], 3000));
    let app = example_embed::app(store, &format!("http://{addr}")).await?;

    println!("example-embed on http://{addr} — sign in as demo / demo password");
    let listener = tokio::net::TcpListener::bind(addr).await?;
    // With the peer address, so that sessions record where they come from (session protection, `/account`).
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
    Ok(())
}
