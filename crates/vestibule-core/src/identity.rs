use serde::{Deserialize, Serialize};

use crate::{SourceId, Subject};

/// What a source proved about a person. The broker keys it by `(source, subject)` and never by `email` or `login`,
/// which people can change or recycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalIdentity {
    /// The source that proved it.
    pub source: SourceId,
    /// The stable id at that source.
    pub subject: Subject,
    /// The name the person typed or the provider calls them by (`uid`, `preferred_username`, GitHub login).
    pub login: Option<String>,
    /// A human name for pages.
    pub display_name: Option<String>,
    /// An email address as the source asserts it.
    pub email: Option<String>,
    /// `true` only when the source explicitly asserted the email as verified (a real boolean, not a string).
    pub email_verified: bool,
    /// Short group names (`admins`, not a DN).
    pub groups: Vec<String>,
    /// How the source says the person authenticated, as RFC 8176 `amr` names (an OpenID provider's `amr`
    /// claim); empty when it does not say. The broker counts it as a second factor only where configured to.
    #[serde(default)]
    pub amr: Vec<String>,
    /// When the person last actively authenticated at the source (an OpenID provider's `auth_time`), if it says;
    /// a provider may answer from a single sign-on session that is hours old. A trusted upstream second factor
    /// counts as proven at this time, not at the callback, so step-up is not satisfied by an old provider login.
    #[serde(default)]
    pub auth_time: Option<crate::Timestamp>,
}

impl ExternalIdentity {
    /// An identity with nothing but its key.
    pub fn new(source: SourceId, subject: Subject) -> Self {
        ExternalIdentity {
            source,
            subject,
            login: None,
            display_name: None,
            email: None,
            email_verified: false,
            groups: Vec::new(),
            amr: Vec::new(),
            auth_time: None,
        }
    }
    /// Sets the login name.
    pub fn with_login(mut self, login: impl Into<String>) -> Self {
        self.login = Some(login.into());
        self
    }
    /// Sets the display name.
    pub fn with_display_name(mut self, name: impl Into<String>) -> Self {
        self.display_name = Some(name.into());
        self
    }
    /// Sets the email and whether the source verified it.
    pub fn with_email(mut self, email: impl Into<String>, verified: bool) -> Self {
        self.email = Some(email.into());
        self.email_verified = verified;
        self
    }
    /// Sets the authentication methods the source reports (`amr`).
    pub fn with_amr(mut self, amr: Vec<String>) -> Self {
        self.amr = amr;
        self
    }
    /// Sets when the person last authenticated at the source (`auth_time`).
    pub fn with_auth_time(mut self, at: crate::Timestamp) -> Self {
        self.auth_time = Some(at);
        self
    }
    /// Sets the groups.
    pub fn with_groups(mut self, groups: Vec<String>) -> Self {
        self.groups = groups;
        self
    }
}
