//! Messages from templates: `templates/mail/{kind}.txt` and `.html`. askama escapes HTML in the `.html` files
//! and nothing in the `.txt` ones (by extension).

use askama::Template;
use vestibule::{Mail, Message};

/// A message ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The `Subject` header.
    pub subject: &'static str,
    /// The `text/plain` part.
    pub text: String,
    /// The `text/html` part.
    pub html: String,
}

macro_rules! message_templates {
    ($($kind:ident ($txt:tt, $html:tt) { $($field:ident: $ty:ty),* }),* $(,)?) => {
        $(
            mod $kind {
                #[derive(askama::Template)]
                #[template(path = $txt)]
                pub(super) struct Text<'a> {
                    pub(super) name: Option<&'a str>,
                    $(pub(super) $field: $ty,)*
                }
                #[derive(askama::Template)]
                #[template(path = $html)]
                pub(super) struct Html<'a> {
                    pub(super) name: Option<&'a str>,
                    $(pub(super) $field: $ty,)*
                }
            }
        )*
    };
}

message_templates! {
    password_reset("mail/password_reset.txt", "mail/password_reset.html") { link: &'a str, valid_minutes: i64 },
    reset_elsewhere("mail/reset_elsewhere.txt", "mail/reset_elsewhere.html") { all: &'a str, directories: &'a str, providers: &'a str },
    verify_email("mail/verify_email.txt", "mail/verify_email.html") { link: &'a str, valid_hours: i64 },
    password_changed("mail/password_changed.txt", "mail/password_changed.html") {},
    password_was_reset("mail/password_was_reset.txt", "mail/password_was_reset.html") {},
    identity_linked("mail/identity_linked.txt", "mail/identity_linked.html") { source: &'a str },
    identity_unlinked("mail/identity_unlinked.txt", "mail/identity_unlinked.html") { source: &'a str },
    remember_theft("mail/remember_theft.txt", "mail/remember_theft.html") {},
    account_disabled("mail/account_disabled.txt", "mail/account_disabled.html") {},
    second_factor_changed("mail/second_factor_changed.txt", "mail/second_factor_changed.html") { sentence: &'a str },
    confirm_email_change("mail/confirm_email_change.txt", "mail/confirm_email_change.html") { link: &'a str, valid_hours: i64 },
    email_in_use("mail/email_in_use.txt", "mail/email_in_use.html") {},
    email_change_requested("mail/email_change_requested.txt", "mail/email_change_requested.html") { new_address: &'a str },
    email_changed("mail/email_changed.txt", "mail/email_changed.html") { new_address: &'a str },
}

/// Renders both parts of a message.
macro_rules! both {
    ($kind:ident, $subject:expr, $name:expr $(, $field:ident: $value:expr)*) => {{
        let text = $kind::Text { name: $name $(, $field: $value)* }.render()?;
        let html = $kind::Html { name: $name $(, $field: $value)* }.render()?;
        Rendered { subject: $subject, text, html }
    }};
}

/// Renders a mail's message.
pub fn render(mail: &Mail) -> Result<Rendered, askama::Error> {
    let name = mail.name.as_deref();
    Ok(match &mail.message {
        Message::PasswordReset { link, valid_minutes } => both!(
            password_reset,
            "Reset your password",
            name,
            link: link.expose(),
            valid_minutes: *valid_minutes
        ),
        Message::ResetElsewhere { directories, providers } => {
            let all = directories
                .iter()
                .chain(providers)
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            both!(
                reset_elsewhere,
                "About your password reset request",
                name,
                all: &all,
                directories: &directories.join(", "),
                providers: &providers.join(", ")
            )
        }
        Message::VerifyEmail { link, valid_hours } => both!(
            verify_email,
            "Confirm your email address",
            name,
            link: link.expose(),
            valid_hours: *valid_hours
        ),
        Message::PasswordChanged => both!(password_changed, "Your password was changed", name),
        Message::PasswordWasReset => both!(password_was_reset, "Your password was reset", name),
        Message::IdentityLinked { source } => {
            both!(identity_linked, "A sign-in method was added to your account", name, source: source)
        }
        Message::IdentityUnlinked { source } => {
            both!(identity_unlinked, "A sign-in method was removed from your account", name, source: source)
        }
        Message::RememberTheft => both!(remember_theft, "Your sessions were signed out", name),
        Message::AccountDisabled => both!(account_disabled, "Your account was disabled", name),
        Message::SecondFactorChanged { change } => both!(
            second_factor_changed,
            "Your account's second sign-in step changed",
            name,
            sentence: change.sentence()
        ),
        Message::ConfirmEmailChange { link, valid_hours } => both!(
            confirm_email_change,
            "Confirm your new email address",
            name,
            link: link.expose(),
            valid_hours: *valid_hours
        ),
        Message::EmailInUse => both!(email_in_use, "This email address is already in use", name),
        Message::EmailChangeRequested { new_address } => both!(
            email_change_requested,
            "A change of your email address was requested",
            name,
            new_address: new_address
        ),
        Message::EmailChanged { new_address } => {
            both!(email_changed, "Your email address was changed", name, new_address: new_address)
        }
        // `Message` may grow; a kind this version does not know is not sent rather than sent empty.
        _ => return Err(askama::Error::Custom("no template for this message".into())),
    })
}

#[cfg(test)]
mod tests {
    use vestibule::MailLink;

    use super::*;

    fn mail(message: Message) -> Mail {
        Mail {
            to: "ann@example.org".into(),
            name: Some("Ann <script>".into()),
            message,
        }
    }

    #[test]
    fn the_reset_link_is_in_both_parts_and_html_is_escaped() {
        let link = "https://id.example.com/reset/abc_DEF-123";
        let r = render(&mail(Message::PasswordReset {
            link: MailLink::new(link),
            valid_minutes: 30,
        }))
        .expect("renders");
        assert!(r.text.contains(link) && r.text.contains("30 minutes"), "{}", r.text);
        assert!(r.html.contains(&format!("href=\"{link}\"")), "{}", r.html);
        assert!(
            r.text.contains("Hello Ann <script>,"),
            "plain text is not escaped: {}",
            r.text
        );
        assert!(!r.html.contains("<script>"), "{}", r.html);
    }

    #[test]
    fn every_kind_renders() {
        let all = [
            Message::ResetElsewhere {
                directories: vec!["Corporate directory".into()],
                providers: vec![],
            },
            Message::VerifyEmail {
                link: MailLink::new("https://x/email/verify/t"),
                valid_hours: 24,
            },
            Message::PasswordChanged,
            Message::PasswordWasReset,
            Message::IdentityLinked {
                source: "GitHub".into(),
            },
            Message::IdentityUnlinked {
                source: "GitHub".into(),
            },
            Message::RememberTheft,
            Message::AccountDisabled,
            Message::SecondFactorChanged {
                change: vestibule::FactorChange::RecoveryCodeUsed,
            },
            Message::ConfirmEmailChange {
                link: MailLink::new("https://x/email/verify/t"),
                valid_hours: 24,
            },
            Message::EmailInUse,
            Message::EmailChangeRequested {
                new_address: "n***@example.org".into(),
            },
            Message::EmailChanged {
                new_address: "n***@example.org".into(),
            },
        ];
        for m in all {
            let r = render(&mail(m.clone())).expect("renders");
            assert!(!r.subject.is_empty() && r.text.len() > 60 && r.html.len() > 60, "{m:?}");
        }
        let r = render(&mail(Message::ResetElsewhere {
            directories: vec!["Corporate directory".into()],
            providers: vec![],
        }))
        .expect("ok");
        assert!(r.text.contains("Corporate directory"), "{}", r.text);
    }

    /// Where the password is kept is said in words that fit the source: a directory is the organisation's, a
    /// provider's password is the provider's (no "directory" for a Google account).
    #[test]
    fn reset_elsewhere_names_where_the_password_is_kept_by_kind() {
        let elsewhere = |directories: &[&str], providers: &[&str]| {
            let to_vec = |names: &[&str]| names.iter().map(|n| n.to_string()).collect();
            render(&mail(Message::ResetElsewhere {
                directories: to_vec(directories),
                providers: to_vec(providers),
            }))
            .expect("renders")
        };
        let r = elsewhere(&[], &["Google"]);
        for part in [&r.text, &r.html] {
            assert!(part.contains("Google"), "{part}");
            assert!(!part.contains("directory"), "{part}");
            assert!(part.contains("kept by that provider"), "{part}");
        }
        let r = elsewhere(&["Corp LDAP"], &[]);
        for part in [&r.text, &r.html] {
            assert!(
                part.contains("Corp LDAP") && part.contains("organisation's directory"),
                "{part}"
            );
            assert!(!part.contains("provider"), "{part}");
        }
        let r = elsewhere(&["Corp LDAP"], &["GitHub", "Google"]);
        assert!(
            r.text.contains("you sign in with Corp LDAP, GitHub, Google"),
            "{}",
            r.text
        );
        assert!(r.text.contains("organisation's directory") && r.text.contains("kept by that provider"));
        // A source that is no longer configured names nothing: the message still says what to do.
        let r = elsewhere(&[], &[]);
        assert!(r.text.contains("Ask your administrator how"), "{}", r.text);
    }
}
