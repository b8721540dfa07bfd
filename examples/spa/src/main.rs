//! Run with: `cargo run -p example-spa`, then open http://127.0.0.1:3001 and sign in as `demo` / `demo password`.
//!
//! A single-page app over Vestibule's JSON API; the app itself is built by [`example_spa::app`] in `src/lib.rs`,
//! the page is `static/index.html` with `static/app.js`.

use std::net::SocketAddr;

use vestibule_store::Store;

#[tokio::main]
async fn main() -> Result<(), example_spa::Error> {
    tracing_subscriber::fmt().with_env_filter("info").init();

    // A store (SQLite file here; any `postgres://` URL works the same) with its migrations applied.
    let store = Store::connect("sqlite://example-spa.db").await?;
    store.migrate().await?;

    // The public URL is the page's origin: the JSON API refuses state-changing requests from any other, so open
    // the page at exactly this address (not `localhost:3001`).
    let addr = SocketAddr::from(([127, 0, 0, 1], 3001));
    let app = example_spa::app(store, &format!("http://{addr}")).await?;

    println!("example-spa on http://{addr} — sign in as demo / demo password");
    let listener = tokio::net::TcpListener::bind(addr).await?;
    // With the peer address, so that sessions record where they come from (the page's session list shows it).
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
    Ok(())
}
