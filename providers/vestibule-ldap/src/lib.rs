//! LDAP and Active Directory as a Vestibule password source, on [`ldap3`].
//!
//! A person types a login name and a password; [`LdapSource`] proves them against the directory and returns
//! an [`ExternalIdentity`](vestibule_core::ExternalIdentity) keyed by a stable subject (`entryUUID`, or
//! `objectGUID` on Active Directory), never by the DN or the name, which change on renames.
//!
//! # Configuring a source
//!
//! In the broker's TOML file, one `[[sources]]` table per directory. **Search-then-bind** (preferred) uses a
//! service account to find the person's entry, then checks the password with a bind as that entry:
//!
//! ```toml
//! [[sources]]
//! kind = "ldap"
//! id = "corp"
//! display_name = "Company directory"
//! url = "ldap://ldap.example.com"            # or ldaps://ldap.example.com
//! starttls = true                             # required for ldap:// to anything but loopback
//! ca_file = "/etc/vestibule/corp-ca.pem"      # trust this CA instead of the system store, or instead
//! # tls_pinned_cert_file = "/etc/vestibule/corp-ldap.pem"   # trust exactly the server's own certificate
//! bind_dn = "cn=vestibule,ou=services,dc=example,dc=com"
//! bind_password_file = "/run/secrets/ldap"    # or bind_password_env = "LDAP_BIND_PASSWORD"
//! user_base = "ou=people,dc=example,dc=com"
//! user_filter = "(uid={username})"            # AD: "(sAMAccountName={username})"
//! require_group = "vpn-users"                 # optional: short name or full DN
//! ```
//!
//! Without `bind_dn`, search mode searches anonymously, which only works if the directory lets anyone search
//! it; the source says so at warn when it is built.
//!
//! **Direct bind** builds the DN from a template instead (no search, so no service account is needed; the
//! person's own connection then reads their entry and groups):
//!
//! ```toml
//! [[sources]]
//! kind = "ldap"
//! id = "lab"
//! url = "ldaps://ldap.lab.example.org"
//! user_dn_template = "uid={username},ou=people,dc=lab,dc=example,dc=org"
//! ```
//!
//! For Active Directory, set `subject_attribute = "objectGUID"`, `login_attribute = "sAMAccountName"` and
//! `display_name_attribute = "displayName"`. Groups come from `memberOf` by default, or from a search with
//! `group_base` and `group_filter = "(member={dn})"`; either way they are reported as short names (`admins`,
//! the first RDN's value). Every key and its default is documented on [`LdapConfig`].
//!
//! # Asking the directory again
//!
//! A session outlives the sign-in that made it. Every `recheck_secs` (default 300) the broker asks the source
//! again about the person ([`Recheck`](vestibule_core::Recheck), offered through
//! [`AuthSource::recheck`](vestibule_core::AuthSource::recheck)): a search by their subject on the service
//! connection, no password. Today's groups, email and name come back while they are still admitted by the same
//! rules as at sign-in (`user_filter`, `require_group`, Active Directory's disabled flag); someone deleted or no
//! longer admitted comes back as `None` and loses their sessions; a directory that cannot answer is an error, and
//! sessions are kept until it can. Search mode without `bind_dn` searches anonymously here too. Direct bind
//! without `bind_dn` has nothing to search with, so it offers no recheck: sessions from such a source end only
//! when their lifetime does.
//!
//! # Using it in code
//!
//! ```no_run
//! use vestibule_core::{AuthSource, Flow, SecretString, SourceId};
//! use vestibule_ldap::{LdapConfig, LdapSource};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = LdapConfig::new(SourceId::new("corp")?, "ldaps://ldap.example.com");
//! config.user_base = Some("ou=people,dc=example,dc=com".into());
//! config.check()?;                        // what `vestibule check-config` runs: no network
//! let source = LdapSource::new(config)?;  // no network either: the directory may be down at start
//! let Flow::Password(flow) = source.flow() else { unreachable!() };
//! let who = flow.authenticate("alice", &SecretString::from("correct horse")).await?;
//! println!("{} is in {:?}", who.subject, who.groups);
//! # Ok(()) }
//! ```
//!
//! # What it guarantees
//!
//! - Empty passwords, and passwords containing NUL, are refused before any bind
//!   ([`RejectReason::EmptyPassword`](vestibule_core::RejectReason)): a DN with an empty password is an
//!   anonymous bind on many servers (RFC 4513 5.1.2).
//! - Login names are escaped for filters (RFC 4515) and DN templates (RFC 4514). A search that finds more than
//!   one entry is refused (`Ambiguous`).
//! - Passwords are checked on a fresh connection, closed afterwards; the service account's connections are
//!   kept open, shared, and replaced when they break.
//! - TLS: ldaps or StartTLS (no plaintext fallback), certificates verified unless `tls_verify = false`, which is
//!   logged at warn. A server with a self-signed certificate is trusted by pinning that certificate
//!   (`tls_pinned_cert_file`: exactly those bytes, host name and dates still checked), not by turning
//!   verification off; a `ca_file` holding the server's own CA-marked certificate is refused with a message
//!   saying so. Referrals are never chased.
//! - Every step has a timeout; a directory that is down or silent gives
//!   [`SourceError::Unavailable`](vestibule_core::SourceError) in bounded time, and sign-in works again when it
//!   comes back.
//! - An unknown login name costs a connection and a bind like a known one (to a DN that cannot exist, with a
//!   fixed password), so response times do not reveal which names exist.
//! - An Active Directory account marked disabled (`userAccountControl` bit 0x2) is refused from its entry as
//!   well as by the directory's bind, so a recheck, which does not bind, refuses it too.
//! - Wrong password, unknown user and account-state refusals (Active Directory sub-codes) are all
//!   `InvalidCredentials`; the detail goes to the `tracing` log only. The service password never appears in
//!   `Debug` output, logs or errors.

mod config;
mod dn;
mod escape;
mod source;
mod template;
mod tls;

pub use config::{LdapConfig, UserScope};
pub use source::{DirectoryUnavailable, LdapSource};
