//! Shared by the unit tests: a broker whose store is closed under it, so any lookup fails loudly.

/// A broker over a migrated SQLite store that has then been closed: an operation that reaches the database
/// returns an error instead of an answer. Keep the directory alive as long as the broker.
pub(crate) fn broker_over_closed_store(
    rt: &tokio::runtime::Runtime,
) -> (crate::Broker, vestibule_tests::server::TempDir) {
    let dir = vestibule_tests::server::TempDir::new("vestibule-closed");
    let broker = rt.block_on(async {
        let store = vestibule_store::Store::connect(&format!("sqlite://{}/c.db", dir.0.display()))
            .await
            .expect("store");
        store.migrate().await.expect("migrate");
        let broker = crate::Broker::builder(store.clone(), "https://app.example.com")
            .build()
            .await
            .expect("broker");
        store.close().await;
        broker
    });
    (broker, dir)
}

/// A current-thread runtime for driving async broker calls from proptest's synchronous runner.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}
