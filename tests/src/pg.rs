//! A fresh PostgreSQL database per test, dropped afterwards.

use sqlx::{Connection, Executor, PgConnection};

/// The server tests use: `VESTIBULE_TEST_PG_ADMIN` or the local trust-auth default.
pub fn admin_url() -> String {
    std::env::var("VESTIBULE_TEST_PG_ADMIN").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database that exists for one test.
#[derive(Debug)]
pub struct TempDatabase {
    name: String,
    /// Its URL.
    pub url: String,
}

impl TempDatabase {
    /// Creates `vestibule_t_<random>`. Panics with a fix when no server answers: tests never skip.
    pub async fn create() -> TempDatabase {
        let admin = admin_url();
        let mut conn = PgConnection::connect(&admin).await.unwrap_or_else(|e| {
            panic!("PostgreSQL is not answering at {admin} ({e}); run scripts/test, which starts one")
        });
        let name = format!("vestibule_t_{}", crate::random_suffix());
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create database");
        let _ = conn.close().await;
        let base = admin.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap_or(admin);
        TempDatabase {
            url: format!("{base}/{name}"),
            name,
        }
    }

    /// Drops the database (forcibly closing connections left open).
    pub async fn drop_db(self) {
        if let Ok(mut conn) = PgConnection::connect(&admin_url()).await {
            let _ = conn
                .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str())
                .await;
        }
    }
}
